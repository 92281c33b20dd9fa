import type { Kysely } from 'kysely';
import { DuplicateCredentialsError, SessionExistsError, SessionNotFoundError } from '../../errors.js';
import type { CheckpointBackend } from '../../checkpoint/contract.js';
import type { JsonValue } from '../../types.js';
import {
  touchesCredentials,
  type AuditEntry,
  type AuditInput,
  type AuditQuery,
  type AuditStore,
  type CounterStore,
  type CredentialRewrite,
  type HistoryStore,
  type KvEntry,
  type KvOperation,
  type KvStore,
  type NewSessionRecord,
  type SessionPatch,
  type SessionRecord,
  type SessionStore,
  type StatDelta,
  type StatusUpdate,
  type StorageDriver,
  type TransitionRecord,
  type WriteOptions,
} from '../contract.js';
import { guardStore, storageError } from '../guarded-storage.js';
import * as check from '../input-checks.js';
import { STORAGE_MIGRATION_SETS } from '../sql/migration-sets.js';
import * as reads from '../sql/queries.js';
import {
  charLength,
  collapseKvOps,
  jsonText,
  kvValueFromText,
  mergeStatusUpdates,
  patchToRow,
  sessionFromRow,
  sessionToRow,
  sumStatDeltas,
  transitionFromRow,
  type TransitionRow,
} from '../sql/rows.js';
import type { SessionRow, StorageDatabase } from '../sql/schema.js';
import { sqliteCheckpointBackend } from './sqlite-checkpoint.js';
import {
  closeSqlite,
  isPersistent,
  openSqlite,
  parseSqliteConfig,
  sqliteError,
  type ResolvedSqliteOptions,
  type SqliteConnection,
  type SqliteOptions,
  type SqliteTarget,
} from './sqlite-connection.js';
import { sqliteKysely } from './sqlite-kysely.js';
import { prepareStatements, type SqliteStatements } from './sqlite-statements.js';

/**
 * `multisession/sqlite`: the embedded, persistent storage driver on better-sqlite3, with every
 * capability (sessions, KV, counters, history, audit, and the checkpoint in the same file).
 *
 * - WAL journal, a busy timeout, `synchronous = NORMAL` by default (a committed write survives a
 *   crash of the process; pass `synchronous: 'FULL'` to survive power loss too).
 * - Every write is one synchronous better-sqlite3 transaction opened with `BEGIN IMMEDIATE`, so the
 *   write lock is never held across an `await` and read-then-write sequences cannot interleave with
 *   another process. Compare-and-swap updates are `UPDATE … WHERE id = ? AND version = ? RETURNING *`.
 * - Schema migrations (the session tables, then the checkpoint tables) run through Kysely's
 *   `Migrator` in `init()`; several processes may call `init()` on one file at once.
 *
 * better-sqlite3 is an optional peer dependency, loaded only by this module (and only when a
 * `filename` is given; pass your own `database` to control how it is opened).
 *
 * @param target `{ filename }` to open (and create) a database file, or `{ database }` to use a
 *   better-sqlite3 `Database` you opened; a database you pass is not closed by `close()`.
 *
 * @example
 * ```ts
 * import { SessionManager } from 'multisession';
 * import { sqliteStorage } from 'multisession/sqlite';
 * const manager = new SessionManager({ storage: sqliteStorage({ filename: './sessions.db' }), adapters, secretKey });
 * await manager.open();
 * ```
 */
export function sqliteStorage(target: SqliteTarget, options?: SqliteOptions): StorageDriver {
  const config = parseSqliteConfig(target, options, 'sqliteStorage');
  return guardStore(new SqliteStorage(config.target, config.options));
}

interface Open {
  readonly c: SqliteConnection;
  /** The query builder of the reads written once for both SQL drivers (sql/queries.ts). */
  readonly kysely: Kysely<StorageDatabase>;
  readonly s: SqliteStatements;
}

class SqliteStorage implements StorageDriver {
  readonly kind = 'sqlite';
  readonly persistent: boolean;
  readonly sessions: SessionStore;
  readonly kv: KvStore;
  readonly counters: CounterStore;
  readonly history: HistoryStore;
  readonly audit: AuditStore;
  /** The distributed-lock checkpoint in this same database file (see docs/checkpoint.md). */
  readonly checkpoint: CheckpointBackend;
  readonly #target: SqliteTarget;
  readonly #options: ResolvedSqliteOptions;
  #open: Open | null = null;

  constructor(target: SqliteTarget, options: ResolvedSqliteOptions) {
    this.#target = target;
    this.#options = options;
    this.persistent = isPersistent(target);
    const open = (): Open => {
      if (!this.#open) throw storageError('sqlite', 'the store is not open; call init() first.');
      return this.#open;
    };
    this.sessions = new SqliteSessions(open);
    this.kv = new SqliteKv(open);
    this.counters = new SqliteCounters(open);
    this.history = new SqliteHistory(open);
    this.audit = new SqliteAudit(open);
    this.checkpoint = sqliteCheckpointBackend(() => open().c.db);
  }

  async init(): Promise<void> {
    const c = await openSqlite(this.#target, this.#options, STORAGE_MIGRATION_SETS);
    try {
      this.#open = { c, kysely: sqliteKysely(c.db), s: prepareStatements(c.db) };
    } catch (err) {
      closeSqlite(c);
      throw sqliteError('init', err);
    }
  }

  async close(): Promise<void> {
    const open = this.#open;
    this.#open = null;
    if (!open) return;
    await open.kysely.destroy();
    closeSqlite(open.c);
  }

  async ping(): Promise<void> {
    const db = this.#open?.c.db;
    run('ping', () => {
      if (!db) throw storageError('sqlite', 'the store is not open; call init() first.');
      db.prepare('select 1').get();
    });
  }
}

function run<T>(operation: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw sqliteError(operation, err);
  }
}

/** One synchronous `BEGIN IMMEDIATE` transaction: all or nothing, no `await` inside. */
function write<T>(operation: string, p: Open, fn: () => T): T {
  return run(operation, () => p.c.db.transaction(fn).immediate() as T);
}

async function wrapAsync<T>(operation: string, promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw sqliteError(operation, err);
  }
}

class SqliteSessions implements SessionStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async create(input: NewSessionRecord, options?: WriteOptions): Promise<SessionRecord> {
    const p = this.#open();
    const record = check.checkNewRecord(input);
    const audit = check.checkWriteOptions(options);
    const row = sessionToRow('sqlite', record);
    return write('createSession', p, () => {
      if (p.s.exists.get(record.id)) throw new SessionExistsError(record.id);
      if (record.credentialsFingerprint && !record.allowSharedCredentials) checkDuplicate(p, record.id, record.credentialsFingerprint);
      const created = sessionFromRow(p.s.insert.get(row) as SessionRow);
      if (audit) addAudit(p, audit);
      return created;
    });
  }

  async get(id: string): Promise<SessionRecord | null> {
    const p = this.#open();
    check.checkId(id);
    return run('getSession', () => {
      const row = p.s.byId.get(id) as SessionRow | undefined;
      return row ? sessionFromRow(row) : null;
    });
  }

  async list(): Promise<SessionRecord[]> {
    return wrapAsync('listSessions', reads.listSessions(this.#open().kysely));
  }

  async update(id: string, input: SessionPatch, expectedVersion: number, options?: WriteOptions): Promise<SessionRecord | null> {
    const p = this.#open();
    check.checkId(id);
    const patch = check.checkPatch(input);
    check.checkVersion(expectedVersion);
    const audit = check.checkWriteOptions(options);
    const row = patchToRow('sqlite', patch);
    const columns = Object.keys(row).sort();
    const values: Record<string, unknown> = { where_id: id, where_version: expectedVersion };
    for (const c of columns) values[c] = (row as Record<string, unknown>)[c];
    return write('updateSession', p, () => {
      const current = p.s.byId.get(id) as SessionRow | undefined;
      if (!current || current.version !== expectedVersion) return null;
      const fingerprint = patch.credentialsFingerprint !== undefined ? patch.credentialsFingerprint : current.credentials_fingerprint;
      const allow = patch.allowSharedCredentials ?? (current.allow_shared_credentials === 1 || current.allow_shared_credentials === true);
      if (fingerprint && !allow && touchesCredentials(patch)) checkDuplicate(p, id, fingerprint);
      const updated = p.s.update(columns).get(values) as SessionRow | undefined;
      if (!updated) return null;
      if (audit) addAudit(p, audit);
      return sessionFromRow(updated);
    });
  }

  async saveStatus(updates: StatusUpdate[]): Promise<void> {
    const p = this.#open();
    const merged = mergeStatusUpdates(check.checkStatus(updates));
    if (merged.length === 0) return;
    write('saveStatus', p, () => {
      for (const m of merged) {
        p.s.status.run({
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

  async delete(id: string, options?: WriteOptions): Promise<boolean> {
    const p = this.#open();
    check.checkId(id);
    const audit = check.checkWriteOptions(options);
    return write('deleteSession', p, () => {
      const deleted = Number(p.s.delete.run(id).changes) > 0;
      if (deleted && audit) addAudit(p, audit);
      return deleted;
    });
  }

  async replaceCredentials(input: CredentialRewrite[], options?: WriteOptions): Promise<SessionRecord[] | null> {
    const p = this.#open();
    const rows = check.checkRewrites(input);
    const audit = check.checkWriteOptions(options);
    if (rows.length === 0 && !audit) return [];
    return run('replaceCredentials', () => {
      try {
        return p.c.db
          .transaction(() => {
            const written = rows.map((r) => {
              const row = p.s.rewriteCredentials.get(r.credentials, r.credentialsFingerprint, r.updatedAt, r.id, r.expectedVersion) as SessionRow | undefined;
              if (!row) throw LOST; // rolls back the rows written before it
              return sessionFromRow(row);
            });
            if (audit) addAudit(p, audit);
            return written;
          })
          .immediate();
      } catch (err) {
        if (err === LOST) return null;
        throw err;
      }
    });
  }
}

/** Thrown inside a transaction to roll it back when a compare-and-swap is lost. */
const LOST = Symbol('lost compare-and-swap');

/** The audit entry of a session write, inside its transaction. */
function addAudit(p: Open, e: AuditInput): void {
  p.s.auditAdd.run(e.at, e.sessionId, e.action, e.actor, jsonText(e.details));
}

function checkDuplicate(p: Open, id: string, fingerprint: string): void {
  const other = p.s.duplicate.get(fingerprint, id) as { id: string } | undefined;
  if (other) throw new DuplicateCredentialsError(id, other.id);
}

class SqliteKv implements KvStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async get(sessionId: string, key: string): Promise<JsonValue | undefined> {
    const p = this.#open();
    check.checkId(sessionId);
    check.checkKey(key);
    return run('kvGet', () => {
      const row = p.s.kvGet.get(sessionId, key) as { value: string } | undefined;
      return row ? kvValueFromText(row.value) : undefined;
    });
  }

  async list(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]> {
    const p = this.#open();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV list options');
    return run('kvList', () => {
      const rows = (
        prefix ? p.s.kvListPrefix.all(sessionId, prefix, charLength(prefix), prefix) : p.s.kvListAll.all(sessionId)
      ) as { key: string; value: string }[];
      return rows.map((r) => ({ key: r.key, value: kvValueFromText(r.value) }));
    });
  }

  async write(sessionId: string, ops: KvOperation[]): Promise<void> {
    const p = this.#open();
    check.checkId(sessionId);
    check.assertKvOperations(ops);
    const { sets, deletes } = collapseKvOps(ops);
    write('kvWrite', p, () => {
      if (!p.s.exists.get(sessionId)) throw new SessionNotFoundError(sessionId);
      for (const [key, value] of sets) p.s.kvSet.run(sessionId, key, value);
      for (const key of deletes) p.s.kvDelete.run(sessionId, key);
    });
  }

  async clear(sessionId: string, options?: { prefix?: string }): Promise<number> {
    const p = this.#open();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV clear options');
    return write('kvClear', p, () =>
      Number(prefix ? p.s.kvClearPrefix.run(sessionId, prefix, charLength(prefix), prefix).changes : p.s.kvClearAll.run(sessionId).changes),
    );
  }
}

class SqliteCounters implements CounterStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async increment(deltas: StatDelta[]): Promise<void> {
    const p = this.#open();
    const sums = sumStatDeltas(check.checkDeltas(deltas));
    if (sums.length === 0) return;
    write('incrementStats', p, () => {
      for (const d of sums) p.s.statAdd.run(d.sessionId, d.name, d.delta, d.sessionId);
    });
  }

  async get(sessionId: string): Promise<Record<string, number>> {
    const p = this.#open();
    check.checkId(sessionId);
    return run('getStats', () => {
      const out: Record<string, number> = {};
      for (const r of p.s.stats.all(sessionId) as { name: string; value: number }[]) out[r.name] = r.value;
      return out;
    });
  }
}

class SqliteHistory implements HistoryStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async append(entries: TransitionRecord[], keepPerSession: number): Promise<void> {
    const p = this.#open();
    check.checkTransitions(entries);
    const keep = check.checkPositive(keepPerSession, 'keepPerSession');
    if (entries.length === 0) return;
    write('appendTransitions', p, () => {
      const touched = new Set<string>();
      for (const e of entries) {
        if (Number(p.s.transitionAdd.run(e.sessionId, e.from, e.to, e.reason, e.at, e.sessionId).changes) > 0) touched.add(e.sessionId);
      }
      for (const id of touched) p.s.transitionTrim.run(id, id, keep);
    });
  }

  async list(sessionId: string, limit: number): Promise<TransitionRecord[]> {
    const p = this.#open();
    check.checkId(sessionId);
    check.checkPositive(limit, 'transition limit');
    return run('listTransitions', () => (p.s.transitions.all(sessionId, Math.floor(limit)) as TransitionRow[]).reverse().map(transitionFromRow));
  }
}

class SqliteAudit implements AuditStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async append(entries: AuditInput[]): Promise<void> {
    const p = this.#open();
    check.checkAuditInputs(entries);
    if (entries.length === 0) return;
    write('appendAudit', p, () => {
      for (const e of entries) addAudit(p, e);
    });
  }

  async list(query: AuditQuery): Promise<AuditEntry[]> {
    const p = this.#open();
    return wrapAsync('listAudit', reads.listAudit(p.kysely, check.checkAuditQuery(query)));
  }

  async prune(before: number): Promise<number> {
    const p = this.#open();
    check.checkTime(before, 'before');
    return write('pruneAudit', p, () => Number(p.s.auditPrune.run(before).changes));
  }
}
