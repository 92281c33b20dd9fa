import type { CheckpointBackend } from '../../checkpoint/contract.js';
import type { CheckpointStore } from '../contract.js';
import { guardStore, storageError } from '../guarded-storage.js';
import { CHECKPOINT_MIGRATIONS } from '../sql/migration-sets.js';
import type { SqliteClient } from './sqlite-client.js';
import { prepareCheckpointQueries, type CheckpointQueries } from './sqlite-checkpoint-queries.js';
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

/**
 * The checkpoint backend on a SQLite database (the `checkpoint` of `sqliteStorage` and of
 * `sqliteCheckpoint`), shared by several processes on one machine (WAL mode). Statements are
 * prepared on first use of each open database; `client` throws while the store is not open (the
 * store's guard opens it first). Expiry is judged by `now` (the machine's clock).
 */
export function sqliteCheckpointBackend(client: () => SqliteClient, now: () => number = Date.now): CheckpointBackend {
  let prepared: { db: SqliteClient; q: CheckpointQueries; ids: Map<string, number> } | null = null;
  const current = () => {
    const db = client();
    if (prepared?.db !== db) prepared = { db, q: prepareCheckpointQueries(db), ids: new Map() };
    return prepared;
  };
  /** Runs `fn` with the statements and the stream's id (made on first use; ids never change, so they are cached). */
  const run = async <T>(operation: string, stream: string, fn: (q: CheckpointQueries, sid: number) => T): Promise<T> => {
    try {
      const p = current();
      let id = p.ids.get(stream);
      if (id === undefined) {
        p.q.addStream.run(stream);
        id = (p.q.findStream.get(stream) as { id: number }).id;
        p.ids.set(stream, id);
      }
      return fn(p.q, id);
    } catch (err) {
      throw sqliteError(`checkpoint ${operation}`, err);
    }
  };

  return {
    kind: 'sqlite',
    add: (stream, items) => run('add', stream, (q, sid) => q.add(sid, items, now())),
    claim: (stream, requests, maxAttempts) => run('claim', stream, (q, sid) => q.claim(stream, sid, requests, maxAttempts, now())),
    claimKey: (stream, key, o) =>
      run('claimKey', stream, (q, sid) =>
        q.claimKey(stream, sid, key, o.owner, o.leaseMs, o.payload === null ? null : JSON.stringify(o.payload), o.maxAttempts, now()),
      ),
    renew: (stream, leases, leaseMs) => run('renew', stream, (q, sid) => q.renew(sid, leases, leaseMs, now())),
    complete: (stream, entries) => run('complete', stream, (q, sid) => q.complete(sid, entries, now())),
    fail: (stream, lease, change) => run('fail', stream, (q, sid) => q.fail(sid, lease, change, now())),
    release: (stream, leases) => run('release', stream, (q, sid) => q.release(sid, leases, now())),
    get: (stream, key) => run('get', stream, (q, sid) => q.get(sid, key)),
    list: (stream, query) => run('list', stream, (q, sid) => q.list(sid, query)),
    stats: (stream) => run('stats', stream, (q, sid) => q.stats(sid, now())),
    retryDead: (stream) => run('retryDead', stream, (q, sid) => q.retryDead(sid, now())),
    purge: (stream, o) => run('purge', stream, (q, sid) => q.purge(sid, o.statuses, now() - o.olderThanMs)),
  };
}

/** The client of an open connection, or a `StorageError` when the store is not open. */
export function clientOf(connection: SqliteConnection | null): SqliteClient {
  if (!connection) throw storageError('sqlite', 'the store is not open; call init() first.');
  return connection.db;
}

/**
 * A stand-alone checkpoint on a SQLite file: only the checkpoint tables (made by its own
 * migrations, safe from several processes at once), shared by the processes of one machine (WAL
 * mode). `init()` opens the file and migrates; `close()` closes what it opened (never a
 * `database` passed in); calls before `init()` open it first.
 *
 * @param target `{ filename }` to open (and create) a database file, or `{ database }` to use a
 *   better-sqlite3 `Database` you opened.
 * @param options `synchronous` (`NORMAL` by default, or `FULL`) and `busyTimeoutMs` (default 5000):
 *   how long a write waits for another process's lock.
 *
 * @example
 * ```ts
 * import { createCheckpoint } from 'multisession';
 * import { sqliteCheckpoint } from 'multisession/sqlite';
 * const storage = sqliteCheckpoint({ filename: './checkpoint.db' }, { busyTimeoutMs: 10_000 });
 * const checkpoint = createCheckpoint({ storage, stream: 'messages' });
 * // … and `await storage.close()` at the end.
 * ```
 */
export function sqliteCheckpoint(target: SqliteTarget, options?: SqliteOptions): CheckpointStore {
  const config = parseSqliteConfig(target, options, 'sqliteCheckpoint');
  return guardStore(new SqliteCheckpointStore(config.target, config.options));
}

class SqliteCheckpointStore implements CheckpointStore {
  readonly kind = 'sqlite';
  readonly persistent: boolean;
  readonly checkpoint: CheckpointBackend;
  readonly #target: SqliteTarget;
  readonly #options: ResolvedSqliteOptions;
  #connection: SqliteConnection | null = null;

  constructor(target: SqliteTarget, options: ResolvedSqliteOptions) {
    this.#target = target;
    this.#options = options;
    this.persistent = isPersistent(target);
    this.checkpoint = sqliteCheckpointBackend(() => clientOf(this.#connection));
  }

  async init(): Promise<void> {
    this.#connection = await openSqlite(this.#target, this.#options, [CHECKPOINT_MIGRATIONS]);
  }

  async close(): Promise<void> {
    const c = this.#connection;
    this.#connection = null;
    if (c) closeSqlite(c);
  }

  async ping(): Promise<void> {
    try {
      clientOf(this.#connection).prepare('select 1').get();
    } catch (err) {
      throw sqliteError('ping', err);
    }
  }
}
