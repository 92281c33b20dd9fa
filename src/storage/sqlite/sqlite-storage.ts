import { CompiledQuery, Kysely, Migrator, SqliteAdapter, SqliteDialect, SqliteDriver } from 'kysely';
import type { DatabaseConnection, DialectAdapter, Driver, SqliteDialectConfig } from 'kysely';
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
import { createSqliteCheckpointBackend, type SqliteCheckpointDatabase } from '../checkpoint/sqlite-backend.js';
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
  kvValueFromText,
  transitionFromRow,
  type TransitionRow,
} from './sql/rows.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE } from './sql/schema.js';
import * as check from './input-checks.js';
import type { SessionRow, StorageDatabase } from './sql/schema.js';

/**
 * `multisession/sqlite`: the embedded, persistent storage driver on better-sqlite3.
 *
 * - WAL journal, a busy timeout, `synchronous = NORMAL` by default (a committed write survives a
 *   crash of the process; pass `synchronous: 'FULL'` to survive power loss too).
 * - Every write is one synchronous better-sqlite3 transaction opened with `BEGIN IMMEDIATE`, so the
 *   write lock is never held across an `await` and read-then-write sequences cannot interleave with
 *   another process. Compare-and-swap updates are `UPDATE … WHERE id = ? AND version = ? RETURNING *`.
 * - Schema migrations run through Kysely's `Migrator` in `init()`; several processes may call
 *   `init()` on one file at once (the migration runs inside `BEGIN IMMEDIATE`).
 *
 * better-sqlite3 is an optional peer dependency, loaded only by this module (and only when a
 * `filename` is given; pass your own `database` to control how it is opened).
 *
 * @example
 * ```ts
 * import { SessionManager } from 'multisession';
 * import { sqliteStorage } from 'multisession/sqlite';
 * const manager = new SessionManager({ storage: sqliteStorage({ filename: './sessions.db' }), adapters, secretKey });
 * await manager.open();
 * ```
 */

/** The part of a better-sqlite3 statement this driver uses. */
export interface SqliteStatementLike {
  readonly reader: boolean;
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): IterableIterator<unknown>;
}

/** The part of a better-sqlite3 `Database` this driver uses (any compatible client will do). */
export interface SqliteClient {
  readonly memory: boolean;
  readonly open: boolean;
  prepare(source: string): SqliteStatementLike;
  transaction(fn: (...args: any[]) => any): { immediate(...args: any[]): any };
  pragma(source: string, options?: { simple?: boolean }): unknown;
  exec(source: string): unknown;
  close(): unknown;
}

const filenameTarget = z.strictObject({
  filename: z.string().min(1, 'give a file path, or ":memory:" for a throw-away database'),
});
const databaseTarget = z.strictObject({
  database: z.custom<SqliteClient>(
    (v) => !!v && typeof (v as SqliteClient).prepare === 'function' && typeof (v as SqliteClient).transaction === 'function',
    'must be a better-sqlite3 Database (new Database(filename))',
  ),
});
type Target = z.output<typeof filenameTarget> | z.output<typeof databaseTarget>;

function parseTarget(target: unknown): Target {
  if (target && typeof target === 'object' && 'database' in target) return parseWith(databaseTarget, target, 'sqliteStorage target');
  return parseWith(filenameTarget, target, 'sqliteStorage target (pass { filename } or { database })');
}

const optionsSchema = z
  .strictObject({
    /** `NORMAL` (default): safe against process crashes. `FULL`: also against power loss, slower. */
    synchronous: z.enum(['NORMAL', 'FULL']).default('NORMAL'),
    /** How long a write waits for another connection's lock before failing (default 5000 ms). */
    busyTimeoutMs: z.number().int().min(0).max(600_000).default(5_000),
  })
  .default({ synchronous: 'NORMAL', busyTimeoutMs: 5_000 });

export type SqliteStorageTarget = { filename: string } | { database: SqliteClient };
export type SqliteStorageOptions = z.input<typeof optionsSchema>;

/**
 * Creates the SQLite storage driver. Nothing is opened until `init()` (the manager's `open()`).
 *
 * @param target `{ filename }` to open (and create) a database file, or `{ database }` to use a
 *   better-sqlite3 `Database` you opened; a database you pass is not closed by `close()`.
 */
export function sqliteStorage(target: SqliteStorageTarget, options?: SqliteStorageOptions): StorageDriver {
  const t = parseTarget(target);
  const o = parseWith(optionsSchema, options, 'sqliteStorage options');
  return new SqliteStorage(t, o);
}

type Options = z.output<typeof optionsSchema>;
type Statement = SqliteStatementLike;

/** Kysely transactions on this connection take the write lock up front (used by migrations). */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
  override async destroy(): Promise<void> {
    // The storage driver closes the client itself (and only when it opened it).
  }
}

/** SQLite runs DDL in transactions: the migrator then holds `BEGIN IMMEDIATE` for the whole run. */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class MultisessionSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter();
  }
}

interface Prepared {
  db: SqliteClient;
  kysely: Kysely<StorageDatabase>;
  byId: Statement;
  exists: Statement;
  duplicate: Statement;
  insert: Statement;
  delete: Statement;
  status: Statement;
  rewriteCredentials: Statement;
  kvSet: Statement;
  kvDelete: Statement;
  kvClearAll: Statement;
  kvClearPrefix: Statement;
  statAdd: Statement;
  transitionAdd: Statement;
  transitionTrim: Statement;
  auditAdd: Statement;
  kvGet: Statement;
  kvListAll: Statement;
  kvListPrefix: Statement;
  stats: Statement;
  transitions: Statement;
  updates: Map<string, Statement>;
}

const isBusy = (err: unknown): boolean =>
  typeof (err as { code?: unknown })?.code === 'string' && (err as { code: string }).code.startsWith('SQLITE_BUSY');

/** True unless every migration this version knows has run on this database. */
async function hasPendingMigrations(db: SqliteClient): Promise<boolean> {
  const known = Object.keys(await migrationProvider('sqlite').getMigrations());
  let done: Set<string>;
  try {
    done = new Set((db.prepare(`SELECT name FROM ${MIGRATION_TABLE}`).all() as { name: string }[]).map((r) => r.name));
  } catch {
    return true; // a new file: no bookkeeping table yet
  }
  return known.some((name) => !done.has(name));
}

/**
 * Migrations of every SQLite driver in this process run one at a time: two drivers on one file in
 * one thread would otherwise wait on each other's `BEGIN IMMEDIATE` (better-sqlite3 blocks the
 * thread while it waits). Other processes are handled by the busy timeout and a retry.
 */
let migrationQueue: Promise<unknown> = Promise.resolve();
function serialised<T>(fn: () => Promise<T>): Promise<T> {
  const run = migrationQueue.then(fn, fn);
  migrationQueue = run.catch(() => undefined);
  return run;
}

// Ref'd on purpose: a short wait inside an operation the caller awaits (init retry) must keep
// the process alive, or a script awaiting init() would exit mid-way.
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class SqliteStorage implements StorageDriver {
  readonly kind = 'sqlite';
  readonly persistent: boolean;
  readonly #target: Target;
  readonly #options: Options;
  #initPromise: Promise<Prepared> | null = null;
  #prepared: Prepared | null = null;
  #closed = false;
  #closing: Promise<void> = Promise.resolve();
  #checkpoint: CheckpointBackend | null = null;

  constructor(target: Target, options: Options) {
    this.#target = target;
    this.#options = Object.freeze({ ...options });
    this.persistent = 'filename' in target ? target.filename !== ':memory:' : !target.database.memory;
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
    this.#prepared = null;
    if (!pending) return;
    const prepared = await pending.catch(() => null);
    if (!prepared) return;
    await prepared.kysely.destroy();
    if ('filename' in this.#target && prepared.db.open) prepared.db.close();
  }

  async ping(): Promise<void> {
    const p = await this.#ready();
    this.#run('ping', () => p.db.prepare('select 1').get());
  }

  // ---------------------------------------------------------------- sessions

  async createSession(input: NewSessionRecord): Promise<SessionRecord> {
    const p = await this.#ready();
    const record = check.checkNewRecord(input);
    const row = sessionToRow('sqlite', record);
    return this.#write('createSession', p, () => {
      if (p.exists.get(record.id)) throw new SessionExistsError(record.id);
      if (record.credentialsFingerprint && !record.allowSharedCredentials) this.#checkDuplicate(p, record.id, record.credentialsFingerprint);
      return sessionFromRow(p.insert.get(row) as SessionRow);
    });
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    const p = await this.#ready();
    check.checkId(id);
    return this.#run('getSession', () => {
      const row = p.byId.get(id) as SessionRow | undefined;
      return row ? sessionFromRow(row) : null;
    });
  }

  async listSessions(): Promise<SessionRecord[]> {
    const p = await this.#ready();
    return this.#wrapAsync('listSessions', reads.listSessions(p.kysely));
  }

  async updateSession(id: string, input: SessionPatch, expectedVersion: number): Promise<SessionRecord> {
    const p = await this.#ready();
    check.checkId(id);
    const patch = check.checkPatch(input);
    check.checkVersion(expectedVersion);
    const row = patchToRow('sqlite', patch);
    const columns = Object.keys(row).sort();
    const values: Record<string, unknown> = { where_id: id, where_version: expectedVersion };
    for (const c of columns) values[c] = (row as Record<string, unknown>)[c];
    return this.#write('updateSession', p, () => {
      const current = p.byId.get(id) as SessionRow | undefined;
      if (!current) throw new SessionNotFoundError(id);
      if (current.version !== expectedVersion) throw conflict(id, expectedVersion, current.version);
      const fingerprint = patch.credentialsFingerprint !== undefined ? patch.credentialsFingerprint : current.credentials_fingerprint;
      const allow = patch.allowSharedCredentials ?? (current.allow_shared_credentials === 1 || current.allow_shared_credentials === true);
      if (fingerprint && !allow && touchesCredentials(patch)) this.#checkDuplicate(p, id, fingerprint);
      const updated = this.#updateStatement(p, columns).get(values) as SessionRow | undefined;
      if (!updated) throw conflict(id, expectedVersion, null);
      return sessionFromRow(updated);
    });
  }

  async saveStatus(updates: StatusUpdate[]): Promise<void> {
    const p = await this.#ready();
    const merged = mergeStatusUpdates(check.checkStatus(updates));
    if (merged.length === 0) return;
    this.#write('saveStatus', p, () => {
      for (const m of merged) {
        p.status.run({
          id: m.id,
          state: m.state ?? null,
          health: m.health ?? null,
          set_error: m.lastError === undefined ? 0 : 1,
          last_error: m.lastError ?? null,
          set_activity: m.lastActivityAt === undefined ? 0 : 1,
          last_activity_at: m.lastActivityAt ?? null,
        });
      }
    });
  }

  async deleteSession(id: string): Promise<boolean> {
    const p = await this.#ready();
    check.checkId(id);
    return this.#write('deleteSession', p, () => Number(p.delete.run(id).changes) > 0);
  }

  async replaceCredentials(input: CredentialRewrite[]): Promise<SessionRecord[]> {
    const p = await this.#ready();
    const rows = check.checkRewrites(input);
    if (rows.length === 0) return [];
    return this.#write('replaceCredentials', p, () =>
      rows.map((r) => {
        const row = p.rewriteCredentials.get(r.credentials, r.credentialsFingerprint, r.updatedAt, r.id, r.expectedVersion) as SessionRow | undefined;
        if (!row) {
          const current = p.byId.get(r.id) as SessionRow | undefined;
          throw current ? conflict(r.id, r.expectedVersion, current.version) : new SessionNotFoundError(r.id);
        }
        return sessionFromRow(row);
      }),
    );
  }

  // ---------------------------------------------------------------- per-session KV

  async kvGet(sessionId: string, key: string): Promise<JsonValue | undefined> {
    const p = await this.#ready();
    check.checkId(sessionId);
    check.checkKey(key);
    return this.#run('kvGet', () => {
      const row = p.kvGet.get(sessionId, key) as { value: string } | undefined;
      return row ? kvValueFromText(row.value) : undefined;
    });
  }

  async kvList(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]> {
    const p = await this.#ready();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV list options');
    return this.#run('kvList', () => {
      const rows = (
        prefix ? p.kvListPrefix.all(sessionId, prefix, charLength(prefix), prefix) : p.kvListAll.all(sessionId)
      ) as { key: string; value: string }[];
      return rows.map((r) => ({ key: r.key, value: kvValueFromText(r.value) }));
    });
  }

  async kvWrite(sessionId: string, ops: KvOperation[]): Promise<void> {
    const p = await this.#ready();
    check.checkId(sessionId);
    check.assertKvOperations(ops);
    const { sets, deletes } = collapseKvOps(ops);
    this.#write('kvWrite', p, () => {
      if (!p.exists.get(sessionId)) throw new SessionNotFoundError(sessionId);
      for (const [key, value] of sets) p.kvSet.run(sessionId, key, value);
      for (const key of deletes) p.kvDelete.run(sessionId, key);
    });
  }

  async kvClear(sessionId: string, options?: { prefix?: string }): Promise<number> {
    const p = await this.#ready();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV clear options');
    return this.#write('kvClear', p, () =>
      Number(
        prefix
          ? p.kvClearPrefix.run(sessionId, prefix, charLength(prefix), prefix).changes
          : p.kvClearAll.run(sessionId).changes,
      ),
    );
  }

  // ---------------------------------------------------------------- counters

  async incrementStats(deltas: StatDelta[]): Promise<void> {
    const p = await this.#ready();
    const sums = sumStatDeltas(check.checkDeltas(deltas));
    if (sums.length === 0) return;
    this.#write('incrementStats', p, () => {
      for (const d of sums) p.statAdd.run(d.sessionId, d.name, d.delta, d.sessionId);
    });
  }

  async getStats(sessionId: string): Promise<Record<string, number>> {
    const p = await this.#ready();
    check.checkId(sessionId);
    return this.#run('getStats', () => {
      const out: Record<string, number> = {};
      for (const r of p.stats.all(sessionId) as { name: string; value: number }[]) out[r.name] = r.value;
      return out;
    });
  }

  // ---------------------------------------------------------------- history

  async appendTransitions(entries: TransitionRecord[], keepPerSession: number): Promise<void> {
    const p = await this.#ready();
    check.checkTransitions(entries);
    const keep = check.checkPositive(keepPerSession, 'keepPerSession');
    if (entries.length === 0) return;
    this.#write('appendTransitions', p, () => {
      const touched = new Set<string>();
      for (const e of entries) {
        if (Number(p.transitionAdd.run(e.sessionId, e.from, e.to, e.reason, e.at, e.sessionId).changes) > 0) touched.add(e.sessionId);
      }
      for (const id of touched) p.transitionTrim.run(id, id, keep);
    });
  }

  async listTransitions(sessionId: string, limit: number): Promise<TransitionRecord[]> {
    const p = await this.#ready();
    check.checkId(sessionId);
    check.checkPositive(limit, 'transition limit');
    return this.#run('listTransitions', () =>
      (p.transitions.all(sessionId, Math.floor(limit)) as TransitionRow[]).reverse().map(transitionFromRow),
    );
  }

  // ---------------------------------------------------------------- audit

  async appendAudit(entries: AuditInput[]): Promise<void> {
    const p = await this.#ready();
    check.checkAuditInputs(entries);
    if (entries.length === 0) return;
    this.#write('appendAudit', p, () => {
      for (const e of entries) p.auditAdd.run(e.at, e.sessionId, e.action, e.actor, jsonText(e.details));
    });
  }

  async listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    const p = await this.#ready();
    return this.#wrapAsync('listAudit', reads.listAudit(p.kysely, check.checkAuditQuery(query)));
  }

  // ---------------------------------------------------------------- checkpoint

  /** The distributed-lock checkpoint on this same database file (see docs/checkpoint.md). */
  checkpoint(): CheckpointBackend {
    this.#checkpoint ??= lazyCheckpointBackend('sqlite', async () => {
      const p = await this.#ready();
      const backend = createSqliteCheckpointBackend(p.db as unknown as SqliteCheckpointDatabase);
      await backend.init();
      return backend;
    });
    return this.#checkpoint;
  }

  // ---------------------------------------------------------------- internals

  #ready(): Promise<Prepared> {
    if (this.#closed) return Promise.reject(new StorageError('[sqlite] The storage driver is closed; create a new one.'));
    if (this.#prepared) return Promise.resolve(this.#prepared);
    if (!this.#initPromise) {
      const attempt = this.#open().then(
        (prepared) => {
          if (this.#initPromise === attempt) this.#prepared = prepared;
          return prepared;
        },
        (err: unknown) => {
          // A failed init may be retried by calling init() again.
          if (this.#initPromise === attempt) this.#initPromise = null;
          throw err;
        },
      );
      this.#initPromise = attempt;
    }
    return this.#initPromise;
  }

  async #open(): Promise<Prepared> {
    let db: SqliteClient;
    const owned = 'filename' in this.#target;
    if ('filename' in this.#target) {
      let Database: new (filename: string, options?: { timeout?: number }) => SqliteClient;
      try {
        Database = (await import('better-sqlite3')).default as unknown as typeof Database;
      } catch (cause) {
        throw new StorageError('[sqlite] better-sqlite3 is not installed; run `npm install better-sqlite3` to use multisession/sqlite.', { cause });
      }
      try {
        db = new Database(this.#target.filename, { timeout: this.#options.busyTimeoutMs });
      } catch (cause) {
        throw new StorageError(`[sqlite] Cannot open "${this.#target.filename}": ${(cause as Error).message}. Check that the folder exists and is writable.`, { cause });
      }
    } else {
      db = this.#target.database;
    }
    try {
      return await this.#prepare(db);
    } catch (err) {
      if (owned && db.open) db.close();
      throw wrapError('init', err);
    }
  }

  async #prepare(db: SqliteClient): Promise<Prepared> {
    const kysely = new Kysely<StorageDatabase>({ dialect: new MultisessionSqliteDialect({ database: db as never }) });
    // Another process may hold the lock while it migrates or switches to WAL: wait and retry.
    for (let attempt = 1; ; attempt++) {
      try {
        db.pragma(`busy_timeout = ${this.#options.busyTimeoutMs}`);
        db.pragma('foreign_keys = ON');
        if (!db.memory) db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${this.#options.synchronous}`);
        // Up to date (the usual case): skip the Migrator, whose BEGIN IMMEDIATE across awaits
        // would block another connection of this process that writes meanwhile.
        if (!(await hasPendingMigrations(db))) break;
        const migrator = new Migrator({
          db: kysely,
          provider: migrationProvider('sqlite'),
          migrationTableName: MIGRATION_TABLE,
          migrationLockTableName: MIGRATION_LOCK_TABLE,
        });
        const { error } = await serialised(() => migrator.migrateToLatest());
        if (error) throw error;
        break;
      } catch (err) {
        if (!isBusy(err) || attempt >= 20) {
          await kysely.destroy();
          throw err;
        }
        await sleep(Math.min(1000, 25 * attempt));
      }
    }
    const columns = Object.keys(sessionToRow('sqlite', SAMPLE));
    return {
      db,
      kysely,
      byId: db.prepare('SELECT * FROM sessions WHERE id = ?'),
      exists: db.prepare('SELECT 1 FROM sessions WHERE id = ?'),
      duplicate: db.prepare('SELECT id FROM sessions WHERE credentials_fingerprint = ? AND id <> ? ORDER BY id LIMIT 1'),
      insert: db.prepare(`INSERT INTO sessions (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')}) RETURNING *`),
      delete: db.prepare('DELETE FROM sessions WHERE id = ?'),
      status: db.prepare(
        `UPDATE sessions SET state = coalesce(@state, state), health = coalesce(@health, health),
           last_error = CASE WHEN @set_error THEN @last_error ELSE last_error END,
           last_activity_at = CASE WHEN @set_activity THEN @last_activity_at ELSE last_activity_at END
         WHERE id = @id`,
      ),
      rewriteCredentials: db.prepare(
        `UPDATE sessions SET credentials = ?, credentials_fingerprint = ?, updated_at = ?, version = version + 1
         WHERE id = ? AND version = ? RETURNING *`,
      ),
      kvSet: db.prepare(
        'INSERT INTO session_kv (session_id, key, value) VALUES (?, ?, ?) ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value',
      ),
      kvDelete: db.prepare('DELETE FROM session_kv WHERE session_id = ? AND key = ?'),
      kvClearAll: db.prepare('DELETE FROM session_kv WHERE session_id = ?'),
      kvClearPrefix: db.prepare('DELETE FROM session_kv WHERE session_id = ? AND key >= ? AND substr(key, 1, ?) = ?'),
      statAdd: db.prepare(
        `INSERT INTO session_stats (session_id, name, value) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?)
         ON CONFLICT (session_id, name) DO UPDATE SET value = value + excluded.value`,
      ),
      transitionAdd: db.prepare(
        `INSERT INTO session_transitions (session_id, from_state, to_state, reason, at)
         SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?)`,
      ),
      transitionTrim: db.prepare(
        `DELETE FROM session_transitions WHERE session_id = ? AND id <= (
           SELECT id FROM session_transitions WHERE session_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
      ),
      auditAdd: db.prepare('INSERT INTO audit_log (at, session_id, action, actor, details) VALUES (?, ?, ?, ?, ?)'),
      // Hot per-session reads (the manager makes them per session on restore and from adapters):
      // prepared once and run synchronously, without a trip through the query builder.
      kvGet: db.prepare('SELECT value FROM session_kv WHERE session_id = ? AND key = ?'),
      kvListAll: db.prepare('SELECT key, value FROM session_kv WHERE session_id = ? ORDER BY key'),
      kvListPrefix: db.prepare('SELECT key, value FROM session_kv WHERE session_id = ? AND key >= ? AND substr(key, 1, ?) = ? ORDER BY key'),
      stats: db.prepare('SELECT name, value FROM session_stats WHERE session_id = ?'),
      transitions: db.prepare(
        'SELECT session_id, from_state, to_state, reason, at FROM session_transitions WHERE session_id = ? ORDER BY id DESC LIMIT ?',
      ),
      updates: new Map(),
    };
  }

  #updateStatement(p: Prepared, columns: string[]): Statement {
    const key = columns.join(',');
    let stmt = p.updates.get(key);
    if (!stmt) {
      stmt = p.db.prepare(
        `UPDATE sessions SET ${columns.map((c) => `${c} = @${c}`).join(', ')}, version = version + 1
         WHERE id = @where_id AND version = @where_version RETURNING *`,
      );
      p.updates.set(key, stmt);
    }
    return stmt;
  }

  #checkDuplicate(p: Prepared, id: string, fingerprint: string): void {
    const other = p.duplicate.get(fingerprint, id) as { id: string } | undefined;
    if (other) throw new DuplicateCredentialsError(id, other.id);
  }

  /** One synchronous `BEGIN IMMEDIATE` transaction: all or nothing, no `await` inside. */
  #write<T>(operation: string, p: Prepared, fn: () => T): T {
    return this.#run(operation, () => p.db.transaction(fn).immediate() as T);
  }

  #run<T>(operation: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw wrapError(operation, err);
    }
  }

  async #wrapAsync<T>(operation: string, promise: Promise<T>): Promise<T> {
    try {
      return await promise;
    } catch (err) {
      throw wrapError(operation, err);
    }
  }
}

/** A record used only to learn the column list of an insert. */
const SAMPLE: NewSessionRecord = {
  id: '',
  platform: '',
  config: {},
  labels: {},
  metadata: null,
  priority: 0,
  capacity: null,
  autoStart: false,
  idleTimeoutMs: null,
  allowSharedCredentials: false,
  desiredState: 'stopped',
  credentials: null,
  credentialsFingerprint: null,
  state: 'stopped',
  health: 'unknown',
  lastError: null,
  lastActivityAt: null,
  createdAt: 0,
  updatedAt: 0,
};

function conflict(id: string, expected: number, actual: number | null): ConflictError {
  return new ConflictError(
    `Session "${id}" was changed by someone else (expected version ${expected}${actual === null ? '' : `, stored version ${actual}`}); read it again and retry.`,
    { context: { sessionId: id, expectedVersion: expected, actualVersion: actual } },
  );
}

function wrapError(operation: string, err: unknown): Error {
  if (err instanceof MultisessionError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const hint = isBusy(err) ? ' Another connection held the database lock too long; raise busyTimeoutMs or shorten its transactions.' : '';
  return new StorageError(`[sqlite] ${operation} failed: ${message}.${hint}`, { cause: err });
}
