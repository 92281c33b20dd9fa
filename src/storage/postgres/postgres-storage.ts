import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';
import type { PostgresPool, RawBuilder, Transaction } from 'kysely';
import { z } from 'zod';
import {
  ConflictError,
  DuplicateCredentialsError,
  MultisessionError,
  SessionExistsError,
  SessionNotFoundError,
  StorageError,
} from '../errors.js';
import { parseWith } from '../validation.js';
import type { JsonValue } from '../types.js';
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  CredentialRewrite,
  KvEntry,
  KvOperation,
  NewSessionRecord,
  SessionPatch,
  SessionRecord,
  StatDelta,
  StatusUpdate,
  StorageDriver,
  TransitionRecord,
} from './driver.js';
import { touchesCredentials } from './driver.js';
import type { CheckpointBackend } from '../checkpoint/contract.js';
import { createPostgresCheckpointBackend } from '../checkpoint/postgres-backend.js';
import { lazyCheckpointBackend } from './sql/checkpoint.js';
import { migrationProvider } from './sql/migrations.js';
import * as reads from './sql/queries.js';
import {
  charLength,
  collapseKvOps,
  jsonText,
  mergeStatusUpdates,
  patchToRow,
  sessionFromRow,
  sessionToRow,
  sumStatDeltas,
  transitionFromRow,
  type TransitionRow,
} from './sql/rows.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE } from './sql/schema.js';
import type { SessionRow, StorageDatabase } from './sql/schema.js';
import * as check from './input-checks.js';

/**
 * `multisession/postgres`: the storage driver for PostgreSQL, on pg 8 through Kysely.
 *
 * - Every table lives in one schema (default `multisession`, created if missing), so several apps
 *   (and test runs) can share a database.
 * - Writes that read first run in one transaction; the duplicate-credential check and the write
 *   it guards are serialised per fingerprint with `pg_advisory_xact_lock`. Batches (status,
 *   counters, history, audit) are single multi-row statements over `unnest` arrays.
 * - Schema migrations run through Kysely's `Migrator` in `init()`, under an advisory lock: several
 *   processes may call `init()` on the same schema at once.
 *
 * pg is an optional peer dependency, loaded only by this module (and only when a
 * `connectionString` is given; pass your own `pool` to share one). A pool you pass is not ended
 * by `close()`.
 *
 * @example
 * ```ts
 * import { postgresStorage } from 'multisession/postgres';
 * const storage = postgresStorage({ connectionString: process.env.DATABASE_URL! }, { schema: 'bots' });
 * ```
 */

/** The part of a pg `Pool` this driver uses (any compatible pool will do). */
export interface PgPoolLike {
  connect(): Promise<{
    query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null; command: string }>;
    release(err?: Error | boolean): void;
  }>;
  end(): Promise<void>;
}

const urlTarget = z.strictObject({ connectionString: z.string().min(1, 'give a postgres:// URL') });
const poolTarget = z.strictObject({
  pool: z.custom<PgPoolLike>(
    (v) => !!v && typeof (v as PgPoolLike).connect === 'function' && typeof (v as PgPoolLike).end === 'function',
    'must be a pg Pool (new pg.Pool({ connectionString }))',
  ),
});
type Target = z.output<typeof urlTarget> | z.output<typeof poolTarget>;

function parseTarget(target: unknown): Target {
  if (target && typeof target === 'object' && 'pool' in target) return parseWith(poolTarget, target, 'postgresStorage target');
  return parseWith(urlTarget, target, 'postgresStorage target (pass { connectionString } or { pool })');
}

const optionsSchema = z
  .strictObject({
    /** Schema that holds every table; created if missing. */
    schema: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be 1-63 of A-Z, a-z, 0-9 and _, not starting with a digit')
      .default('multisession'),
    /** Connections in the pool this driver creates (ignored with your own `pool`). Default 10. */
    poolSize: z.number().int().min(1).max(1000).default(10),
  })
  .default({ schema: 'multisession', poolSize: 10 });

export type PostgresStorageTarget = { connectionString: string } | { pool: PgPoolLike };
export type PostgresStorageOptions = z.input<typeof optionsSchema>;

/**
 * Creates the PostgreSQL storage driver. Nothing connects until `init()` (the manager's `open()`).
 */
export function postgresStorage(target: PostgresStorageTarget, options?: PostgresStorageOptions): StorageDriver {
  const t = parseTarget(target);
  const o = parseWith(optionsSchema, options, 'postgresStorage options');
  return new PostgresStorage(t, o);
}

type Options = z.output<typeof optionsSchema>;
type Db = Kysely<StorageDatabase>;

interface Connected {
  pool: PgPoolLike;
  owned: boolean;
  /** Without the schema plugin (raw statements name the schema themselves). */
  base: Db;
  /** Every table reference goes to the configured schema. */
  db: Db;
}

/** Errors worth retrying while two processes create the same schema objects at once. */
const RACE_CODES = new Set(['23505', '42P06', '42P07', '40P01', '40001']);
interface HistoryRequest {
  sessionId: string;
  limit: number;
  resolve(records: TransitionRecord[]): void;
  reject(error: unknown): void;
}

/** Errors after which the rolled-back statement or transaction is simply run again. */
const RETRY_CODES = new Set(['40P01', '40001', '23503']);
const pgCode = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
};

// Ref'd on purpose: a short wait inside an operation the caller awaits (init retry) must keep
// the process alive, or a script awaiting init() would exit mid-way.
const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class PostgresStorage implements StorageDriver {
  readonly kind = 'postgres';
  readonly persistent = true;
  readonly #target: Target;
  readonly #options: Options;
  #initPromise: Promise<Connected> | null = null;
  #connected: Connected | null = null;
  #closed = false;
  #closing: Promise<void> = Promise.resolve();
  #checkpoint: CheckpointBackend | null = null;
  #historyQueue: HistoryRequest[] = [];
  #historyInFlight = 0;

  constructor(target: Target, options: Options) {
    this.#target = target;
    this.#options = Object.freeze({ ...options });
  }

  /** Opens the store and runs migrations. Idempotent; after `close()` it opens the store again. */
  async init(): Promise<void> {
    if (this.#closed) {
      await this.#closing;
      this.#closed = false;
      this.#checkpoint = null;
    }
    await this.#ready();
  }

  /** Closes what the driver opened (never a client passed in). Idempotent; `init()` reopens. */
  close(): Promise<void> {
    if (this.#closed) return this.#closing;
    this.#closed = true;
    this.#closing = this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const pending = this.#initPromise;
    this.#initPromise = null;
    this.#connected = null;
    const c = pending ? await pending.catch(() => null) : null;
    if (c) await c.base.destroy();
  }

  async ping(): Promise<void> {
    const c = await this.#ready();
    await this.#wrap('ping', sql`select 1`.execute(c.base));
  }

  // ---------------------------------------------------------------- sessions

  async createSession(input: NewSessionRecord): Promise<SessionRecord> {
    const c = await this.#ready();
    const record = check.checkNewRecord(input);
    const row = sessionToRow('postgres', record);
    return this.#tx('createSession', c, async (trx) => {
      const fingerprint = record.credentialsFingerprint;
      if (fingerprint) {
        await this.#lockFingerprint(trx, fingerprint);
        if (!record.allowSharedCredentials) await this.#checkDuplicate(trx, record.id, fingerprint);
      }
      const inserted = await trx
        .insertInto('sessions')
        .values(row)
        .onConflict((oc) => oc.column('id').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!inserted) throw new SessionExistsError(record.id);
      return sessionFromRow(inserted as SessionRow);
    });
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    const c = await this.#ready();
    check.checkId(id);
    return this.#wrap('getSession', reads.getSession(c.db, id));
  }

  async listSessions(): Promise<SessionRecord[]> {
    const c = await this.#ready();
    return this.#wrap('listSessions', reads.listSessions(c.db));
  }

  async updateSession(id: string, input: SessionPatch, expectedVersion: number): Promise<SessionRecord> {
    const c = await this.#ready();
    check.checkId(id);
    const patch = check.checkPatch(input);
    check.checkVersion(expectedVersion);
    const row = patchToRow('postgres', patch);
    return this.#tx('updateSession', c, async (trx) => {
      const current = (await trx.selectFrom('sessions').selectAll().where('id', '=', id).forUpdate().executeTakeFirst()) as
        | SessionRow
        | undefined;
      if (!current) throw new SessionNotFoundError(id);
      if (current.version !== expectedVersion) throw conflict(id, expectedVersion, current.version);
      const fingerprint = patch.credentialsFingerprint !== undefined ? patch.credentialsFingerprint : current.credentials_fingerprint;
      const allow = patch.allowSharedCredentials ?? current.allow_shared_credentials === true;
      if (fingerprint && touchesCredentials(patch)) {
        await this.#lockFingerprint(trx, fingerprint);
        if (!allow) await this.#checkDuplicate(trx, id, fingerprint);
      }
      const updated = await trx
        .updateTable('sessions')
        .set({ ...row, version: sql<number>`version + 1` })
        .where('id', '=', id)
        .where('version', '=', expectedVersion)
        .returningAll()
        .executeTakeFirst();
      if (!updated) throw conflict(id, expectedVersion, null);
      return sessionFromRow(updated as SessionRow);
    });
  }

  async saveStatus(updates: StatusUpdate[]): Promise<void> {
    const c = await this.#ready();
    const merged = mergeStatusUpdates(check.checkStatus(updates));
    if (merged.length === 0) return;
    const t = this.#table('sessions');
    // Rows are locked in id order, so concurrent batches do not deadlock on each other.
    merged.sort((a, b) => byText(a.id, b.id));
    await this.#retry('saveStatus', () =>
      sql`
        update ${t} as s set
          state = coalesce(u.state, s.state),
          health = coalesce(u.health, s.health),
          last_error = case when u.set_error then u.last_error else s.last_error end,
          last_activity_at = case when u.set_activity then u.last_activity_at else s.last_activity_at end
        from unnest(
          ${merged.map((m) => m.id)}::text[], ${merged.map((m) => m.state ?? null)}::text[],
          ${merged.map((m) => m.health ?? null)}::text[], ${merged.map((m) => m.lastError !== undefined)}::boolean[],
          ${merged.map((m) => m.lastError ?? null)}::text[], ${merged.map((m) => m.lastActivityAt !== undefined)}::boolean[],
          ${merged.map((m) => m.lastActivityAt ?? null)}::bigint[]
        ) as u(id, state, health, set_error, last_error, set_activity, last_activity_at)
        where s.id = u.id`.execute(c.base),
    );
  }

  async deleteSession(id: string): Promise<boolean> {
    const c = await this.#ready();
    check.checkId(id);
    const result = await this.#retry('deleteSession', () => c.db.deleteFrom('sessions').where('id', '=', id).executeTakeFirst());
    return Number(result.numDeletedRows) > 0;
  }

  async replaceCredentials(input: CredentialRewrite[]): Promise<SessionRecord[]> {
    const c = await this.#ready();
    const rows = check.checkRewrites(input);
    if (rows.length === 0) return [];
    const t = this.#table('sessions');
    return this.#tx('replaceCredentials', c, async (trx) => {
      const result = await sql<SessionRow & { ord: string }>`
        update ${t} as s set credentials = u.credentials, credentials_fingerprint = u.fingerprint,
          updated_at = u.updated_at, version = s.version + 1
        from unnest(
          ${rows.map((r) => r.id)}::text[], ${rows.map((r) => r.credentials)}::text[],
          ${rows.map((r) => r.credentialsFingerprint)}::text[], ${rows.map((r) => r.updatedAt)}::bigint[],
          ${rows.map((r) => r.expectedVersion)}::integer[]
        ) with ordinality as u(id, credentials, fingerprint, updated_at, expected, ord)
        where s.id = u.id and s.version = u.expected
        returning s.*, u.ord`.execute(trx);
      if (result.rows.length !== rows.length) {
        const done = new Set(result.rows.map((r) => r.id));
        const failed = rows.find((r) => !done.has(r.id))!;
        const current = await trx.selectFrom('sessions').select('version').where('id', '=', failed.id).executeTakeFirst();
        throw current ? conflict(failed.id, failed.expectedVersion, current.version) : new SessionNotFoundError(failed.id);
      }
      return result.rows
        .sort((a, b) => Number(a.ord) - Number(b.ord))
        .map(({ ord: _ord, ...row }) => sessionFromRow(row));
    });
  }

  // ---------------------------------------------------------------- per-session KV

  async kvGet(sessionId: string, key: string): Promise<JsonValue | undefined> {
    const c = await this.#ready();
    check.checkId(sessionId);
    check.checkKey(key);
    return this.#wrap('kvGet', reads.kvGet(c.db, sessionId, key));
  }

  async kvList(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]> {
    const c = await this.#ready();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV list options');
    return this.#wrap('kvList', reads.kvList(c.db, sessionId, prefix));
  }

  async kvWrite(sessionId: string, ops: KvOperation[]): Promise<void> {
    const c = await this.#ready();
    check.checkId(sessionId);
    check.assertKvOperations(ops);
    const { sets, deletes } = collapseKvOps(ops);
    const kv = this.#table('session_kv');
    await this.#tx('kvWrite', c, async (trx) => {
      // KEY SHARE keeps the session from being deleted meanwhile without blocking its updates.
      const exists = await trx.selectFrom('sessions').select('id').where('id', '=', sessionId).forKeyShare().executeTakeFirst();
      if (!exists) throw new SessionNotFoundError(sessionId);
      if (sets.length > 0) {
        await sql`
          insert into ${kv} (session_id, key, value)
          select ${sessionId}, u.key, u.value from unnest(${sets.map((s) => s[0])}::text[], ${sets.map((s) => s[1])}::text[]) as u(key, value)
          on conflict (session_id, key) do update set value = excluded.value`.execute(trx);
      }
      if (deletes.length > 0) {
        await sql`delete from ${kv} where session_id = ${sessionId} and key = any(${deletes}::text[])`.execute(trx);
      }
    });
  }

  async kvClear(sessionId: string, options?: { prefix?: string }): Promise<number> {
    const c = await this.#ready();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV clear options');
    let q = c.db.deleteFrom('session_kv').where('session_id', '=', sessionId);
    if (prefix) q = q.where('key', '>=', prefix).where(sql<string>`substr(key, 1, ${charLength(prefix)})`, '=', prefix);
    const result = await this.#retry('kvClear', () => q.executeTakeFirst());
    return Number(result.numDeletedRows);
  }

  // ---------------------------------------------------------------- counters

  async incrementStats(deltas: StatDelta[]): Promise<void> {
    const c = await this.#ready();
    const sums = sumStatDeltas(check.checkDeltas(deltas));
    if (sums.length === 0) return;
    sums.sort((a, b) => byText(a.sessionId, b.sessionId) || byText(a.name, b.name)); // lock order
    const stats = this.#table('session_stats');
    const sessions = this.#table('sessions');
    await this.#retry('incrementStats', () =>
      sql`
        insert into ${stats} as st (session_id, name, value)
        select u.session_id, u.name, u.delta
        from unnest(${sums.map((d) => d.sessionId)}::text[], ${sums.map((d) => d.name)}::text[], ${sums.map((d) => d.delta)}::float8[])
          as u(session_id, name, delta)
        where exists (select 1 from ${sessions} s where s.id = u.session_id)
        on conflict (session_id, name) do update set value = st.value + excluded.value`.execute(c.base),
    );
  }

  async getStats(sessionId: string): Promise<Record<string, number>> {
    const c = await this.#ready();
    check.checkId(sessionId);
    return this.#wrap('getStats', reads.getStats(c.db, sessionId));
  }

  // ---------------------------------------------------------------- history

  async appendTransitions(entries: TransitionRecord[], keepPerSession: number): Promise<void> {
    const c = await this.#ready();
    check.checkTransitions(entries);
    const keep = check.checkPositive(keepPerSession, 'keepPerSession');
    if (entries.length === 0) return;
    // Grouped by session (a stable sort keeps each session's order), so locks come in id order.
    entries = [...entries].sort((a, b) => byText(a.sessionId, b.sessionId));
    const t = this.#table('session_transitions');
    const sessions = this.#table('sessions');
    // One statement: insert the newest `keep` entries per session (in the order given) and trim
    // older stored rows so at most `keep` remain. The trim sees the rows as they were before this
    // statement, so it keeps `keep - new` of them.
    await this.#retry('appendTransitions', () =>
      sql`
        with given as (
          select u.*, row_number() over (partition by u.session_id order by u.ord desc) as rn
          from unnest(
            ${entries.map((e) => e.sessionId)}::text[], ${entries.map((e) => e.from)}::text[], ${entries.map((e) => e.to)}::text[],
            ${entries.map((e) => e.reason)}::text[], ${entries.map((e) => e.at)}::bigint[]
          ) with ordinality as u(session_id, from_state, to_state, reason, at, ord)
          where exists (select 1 from ${sessions} s where s.id = u.session_id)
        ),
        inserted as (
          insert into ${t} (session_id, from_state, to_state, reason, at)
          select session_id, from_state, to_state, reason, at from given where rn <= ${keep} order by ord
        ),
        cutoffs as (
          select c.session_id, (
            select old.id from ${t} old where old.session_id = c.session_id
            order by old.id desc offset greatest(${keep} - c.added, 0) limit 1
          ) as cutoff
          from (select session_id, least(count(*), ${keep}) as added from given group by session_id) c
        )
        delete from ${t} d using cutoffs
        where d.session_id = cutoffs.session_id and cutoffs.cutoff is not null and d.id <= cutoffs.cutoff`.execute(c.base),
    );
  }

  async listTransitions(sessionId: string, limit: number): Promise<TransitionRecord[]> {
    const c = await this.#ready();
    check.checkId(sessionId);
    check.checkPositive(limit, 'transition limit');
    return new Promise<TransitionRecord[]>((resolve, reject) => {
      this.#historyQueue.push({ sessionId, limit: Math.floor(limit), resolve, reject });
      this.#pumpHistory(c);
    });
  }

  /**
   * History reads are batched: a manager restoring many sessions asks for each one's history, and
   * one round trip per session would dominate. While up to two batch queries are in flight, new
   * requests wait and go out together in the next one (one `LATERAL` index scan per session).
   */
  #pumpHistory(c: Connected): void {
    while (this.#historyInFlight < 2 && this.#historyQueue.length > 0) {
      const batch = this.#historyQueue.splice(0, 1000);
      this.#historyInFlight++;
      void this.#readHistory(c, batch).finally(() => {
        this.#historyInFlight--;
        this.#pumpHistory(c);
      });
    }
  }

  async #readHistory(c: Connected, batch: HistoryRequest[]): Promise<void> {
    try {
      const ids = [...new Set(batch.map((r) => r.sessionId))];
      const limit = Math.max(...batch.map((r) => r.limit));
      const t = this.#table('session_transitions');
      const { rows } = await sql<TransitionRow>`
        select u.session_id, x.from_state, x.to_state, x.reason, x.at
        from unnest(${ids}::text[]) as u(session_id)
        cross join lateral (
          select id, from_state, to_state, reason, at from ${t} h
          where h.session_id = u.session_id order by h.id desc limit ${limit}
        ) x
        order by u.session_id, x.id desc`.execute(c.base);
      const bySession = new Map<string, TransitionRecord[]>();
      for (const row of rows) {
        let list = bySession.get(row.session_id);
        if (!list) bySession.set(row.session_id, (list = []));
        list.push(transitionFromRow(row));
      }
      for (const r of batch) r.resolve((bySession.get(r.sessionId) ?? []).slice(0, r.limit).reverse());
    } catch (err) {
      const error = wrapError('listTransitions', err, this.#target);
      for (const r of batch) r.reject(error);
    }
  }

  // ---------------------------------------------------------------- audit

  async appendAudit(entries: AuditInput[]): Promise<void> {
    const c = await this.#ready();
    check.checkAuditInputs(entries);
    if (entries.length === 0) return;
    const t = this.#table('audit_log');
    await this.#wrap(
      'appendAudit',
      sql`
        insert into ${t} (at, session_id, action, actor, details)
        select u.at, u.session_id, u.action, u.actor, u.details
        from unnest(
          ${entries.map((e) => e.at)}::bigint[], ${entries.map((e) => e.sessionId)}::text[], ${entries.map((e) => e.action)}::text[],
          ${entries.map((e) => e.actor)}::text[], ${entries.map((e) => jsonText(e.details))}::text[]
        ) with ordinality as u(at, session_id, action, actor, details, ord)
        order by u.ord`.execute(c.base),
    );
  }

  async listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    const c = await this.#ready();
    return this.#wrap('listAudit', reads.listAudit(c.db, check.checkAuditQuery(query)));
  }

  // ---------------------------------------------------------------- checkpoint

  /** The distributed-lock checkpoint in this same schema, on this driver's pool (see docs/checkpoint.md). */
  checkpoint(): CheckpointBackend {
    this.#checkpoint ??= lazyCheckpointBackend('postgres', async () => {
      const { pool } = await this.#ready();
      const backend = createPostgresCheckpointBackend(
        {
          connect: () => pool.connect(),
          query: async (text, values) => {
            const client = await pool.connect();
            try {
              return await client.query(text, values);
            } finally {
              client.release();
            }
          },
        },
        { schema: this.#options.schema },
      );
      await backend.init();
      return backend;
    });
    return this.#checkpoint;
  }

  // ---------------------------------------------------------------- internals

  #table(name: keyof StorageDatabase): RawBuilder<unknown> {
    return sql.id(this.#options.schema, name);
  }

  /** Serialises every write that involves this fingerprint (two-key advisory lock, per schema). */
  async #lockFingerprint(trx: Transaction<StorageDatabase>, fingerprint: string): Promise<void> {
    await sql`select pg_advisory_xact_lock(hashtext(${`multisession:${this.#options.schema}:fingerprint`}), hashtext(${fingerprint}))`.execute(trx);
  }

  async #checkDuplicate(trx: Transaction<StorageDatabase>, id: string, fingerprint: string): Promise<void> {
    const other = await trx
      .selectFrom('sessions')
      .select('id')
      .where('credentials_fingerprint', '=', fingerprint)
      .where('id', '<>', id)
      .orderBy('id')
      .limit(1)
      .executeTakeFirst();
    if (other) throw new DuplicateCredentialsError(id, other.id);
  }

  #ready(): Promise<Connected> {
    if (this.#closed) return Promise.reject(new StorageError('[postgres] The storage driver is closed; create a new one.'));
    if (this.#connected) return Promise.resolve(this.#connected);
    if (!this.#initPromise) {
      const attempt = this.#connect().then(
        (connected) => {
          if (this.#initPromise === attempt) this.#connected = connected;
          return connected;
        },
        (err: unknown) => {
          if (this.#initPromise === attempt) this.#initPromise = null;
          throw err;
        },
      );
      this.#initPromise = attempt;
    }
    return this.#initPromise;
  }

  async #connect(): Promise<Connected> {
    let pool: PgPoolLike;
    const owned = 'connectionString' in this.#target;
    if ('connectionString' in this.#target) {
      let Pool: new (config: object) => PgPoolLike & { on(event: 'error', fn: (err: Error) => void): unknown };
      try {
        const pg = (await import('pg')) as unknown as { default?: { Pool: typeof Pool }; Pool?: typeof Pool };
        Pool = (pg.default?.Pool ?? pg.Pool)!;
      } catch (cause) {
        throw new StorageError('[postgres] pg is not installed; run `npm install pg` to use multisession/postgres.', { cause });
      }
      const created = new Pool({ connectionString: this.#target.connectionString, max: this.#options.poolSize, allowExitOnIdle: true });
      // An idle client losing its connection must not crash the process; the next query reconnects.
      created.on('error', () => {});
      pool = created;
    } else {
      pool = this.#target.pool;
    }
    // Kysely ends the pool it was given on destroy(): hand it one that ends ours only if we made it.
    const kyselyPool: PostgresPool = {
      connect: () => pool.connect() as ReturnType<PostgresPool['connect']>,
      end: () => (owned ? pool.end() : Promise.resolve()),
    };
    const base = new Kysely<StorageDatabase>({ dialect: new PostgresDialect({ pool: kyselyPool }) });
    try {
      await this.#migrate(base);
    } catch (err) {
      await base.destroy().catch(() => {});
      throw wrapError('init', err, this.#target);
    }
    return { pool, owned, base, db: base.withSchema(this.#options.schema) };
  }

  async #migrate(base: Db): Promise<void> {
    const schema = this.#options.schema;
    for (let attempt = 1; ; attempt++) {
      try {
        await sql`create schema if not exists ${sql.id(schema)}`.execute(base);
        const migrator = new Migrator({
          db: base,
          provider: migrationProvider('postgres', schema),
          migrationTableSchema: schema,
          migrationTableName: MIGRATION_TABLE,
          migrationLockTableName: MIGRATION_LOCK_TABLE,
        });
        const { error } = await migrator.migrateToLatest();
        if (error) throw error;
        return;
      } catch (err) {
        // Two processes creating the same schema or bookkeeping tables at once: the loser retries.
        const code = pgCode(err);
        if (!code || !RACE_CODES.has(code) || attempt >= 10) throw err;
        await sleep(20 * attempt);
      }
    }
  }

  /** One transaction, run again when PostgreSQL picked it as a deadlock or serialization victim. */
  async #tx<T>(operation: string, c: Connected, fn: (trx: Transaction<StorageDatabase>) => Promise<T>): Promise<T> {
    return this.#retry(operation, () => c.db.transaction().execute(fn));
  }

  /**
   * Runs an atomic statement or transaction again when it was rolled back for a reason that a
   * second try resolves: a deadlock or serialization victim (40P01, 40001; several nodes writing
   * batches for the same sessions), or a session deleted between the existence check and the
   * insert (23503; skipped on the next try). Nothing of a rolled-back try remains.
   */
  async #retry<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const code = pgCode(err);
        if (code && RETRY_CODES.has(code) && attempt < 8) {
          await sleep(Math.floor(Math.random() * 10 * attempt));
          continue;
        }
        throw wrapError(operation, err, this.#target);
      }
    }
  }

  async #wrap<T>(operation: string, promise: Promise<T>): Promise<T> {
    try {
      return await promise;
    } catch (err) {
      throw wrapError(operation, err, this.#target);
    }
  }
}

function conflict(id: string, expected: number, actual: number | null): ConflictError {
  return new ConflictError(
    `Session "${id}" was changed by someone else (expected version ${expected}${actual === null ? '' : `, stored version ${actual}`}); read it again and retry.`,
    { context: { sessionId: id, expectedVersion: expected, actualVersion: actual } },
  );
}

function wrapError(operation: string, err: unknown, target: Target): Error {
  if (err instanceof MultisessionError) return err;
  let message = err instanceof Error ? err.message : String(err);
  // Never echo a password from the connection string.
  if ('connectionString' in target) {
    try {
      const password = new URL(target.connectionString).password;
      if (password) message = message.split(password).join('***');
    } catch {
      // not a URL: nothing to hide
    }
  }
  const code = pgCode(err);
  return new StorageError(`[postgres] ${operation} failed: ${message}${code ? ` (SQLSTATE ${code})` : ''}.`, {
    cause: err,
    context: code ? { sqlState: code } : {},
  });
}
