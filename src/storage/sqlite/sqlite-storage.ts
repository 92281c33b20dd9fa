import { DuplicateCredentialsError, SessionExistsError } from '../../errors.js';
import type { CheckpointBackend } from '../../checkpoint/contract.js';
import type { ClusterStore } from '../cluster-contract.js';
import type { WebhookStore } from '../webhook-contract.js';
import { SqlWebhooks } from '../sql/webhook-store.js';
import {
  touchesCredentials,
  type AuditStore,
  type CounterStore,
  type CredentialRewrite,
  type HistoryStore,
  type KvStore,
  type NewSessionRecord,
  type SessionPatch,
  type SessionRecord,
  type SessionStore,
  type StatusUpdate,
  type StorageDriver,
  type CreateOptions,
  type WriteOptions,
} from '../contract.js';
import { guardStore, storageError } from '../guarded-storage.js';
import * as check from '../input-checks.js';
import { STORAGE_MIGRATION_SETS } from '../sql/migration-sets.js';
import * as reads from '../sql/queries.js';
import { mergeStatusUpdates, patchToRow, sessionFromRow, sessionToRow } from '../sql/rows.js';
import type { SessionRow } from '../sql/schema.js';
import { sqliteCheckpointBackend } from './sqlite-checkpoint.js';
import { SqliteCluster } from './sqlite-cluster.js';
import {
  closeSqlite,
  isPersistent,
  openSqlite,
  parseSqliteConfig,
  sqliteError,
  type ResolvedSqliteOptions,
  type SqliteOptions,
  type SqliteTarget,
} from './sqlite-connection.js';
import { sqliteKysely } from './sqlite-kysely.js';
import { run, write, wrapAsync, type Open } from './sqlite-open.js';
import { addAudit, fenceHolds, SqliteAudit, SqliteCounters, SqliteHistory, SqliteKv } from './sqlite-session-data.js';
import { prepareStatements } from './sqlite-statements.js';
import { SqliteUnits } from './sqlite-units.js';
import type { UnitStore } from '../units-contract.js';

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
  /** Nodes and session ownership leases: several processes on this file run each session once. */
  readonly cluster: ClusterStore;
  /** Webhook endpoints and deliveries (`multisession/webhooks`). */
  readonly webhooks: WebhookStore;
  /** Work units (`manager.units`). */
  readonly units: UnitStore;
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
    this.cluster = new SqliteCluster(open);
    this.webhooks = new SqlWebhooks({ dialect: 'sqlite', db: () => open().kysely, wrap: wrapAsync });
    this.units = new SqliteUnits(open);
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

class SqliteSessions implements SessionStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async create(input: NewSessionRecord, options?: CreateOptions): Promise<SessionRecord> {
    const p = this.#open();
    const record = check.checkNewRecord(input);
    const { audit, maxSessions } = check.checkCreateOptions(options);
    const row = sessionToRow('sqlite', record);
    return write('createSession', p, () => {
      if (p.s.exists.get(record.id)) throw new SessionExistsError(record.id);
      // In the write transaction: no other process inserts between the count and the insert.
      if (maxSessions !== undefined && (p.s.countUpTo.get(maxSessions) as { n: number }).n >= maxSessions) throw check.storeFull(maxSessions);
      if (record.credentialsFingerprint && !record.allowSharedCredentials) checkDuplicate(p, record.id, record.credentialsFingerprint);
      const created = sessionFromRow(p.s.insert.get(row) as SessionRow);
      p.s.changeAdd.run(record.id);
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
      p.s.changeAdd.run(id);
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
        if (!fenceHolds(p, m.id, m.fence)) continue;
        // A cluster node's status change is in the feed, so the other nodes show it.
        if (m.fence !== undefined) p.s.changeAdd.run(m.id);
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
      if (deleted) p.s.changeAdd.run(id);
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
              p.s.changeAdd.run(r.id);
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

function checkDuplicate(p: Open, id: string, fingerprint: string): void {
  const other = p.s.duplicate.get(fingerprint, id) as { id: string } | undefined;
  if (other) throw new DuplicateCredentialsError(id, other.id);
}
