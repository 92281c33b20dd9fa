import type { JsonValue } from '../types.js';
import type {
  CasResult,
  CheckpointBackend,
  CheckpointItem,
  CheckpointStats,
  CheckpointStatus,
  FailChange,
  Lease,
  LeaseRef,
  ListPage,
  ListQuery,
  NewCheckpointItem,
} from './contract.js';

/**
 * The part of a better-sqlite3 `Database` the checkpoint uses (structural, so the core never
 * imports better-sqlite3).
 */
export interface SqliteCheckpointDatabase {
  prepare(sql: string): SqliteCheckpointStatement;
  exec(sql: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<F extends (...params: any[]) => unknown>(
    fn: F,
  ): { immediate(...params: ArgumentTypes<F>): ReturnType<F>; deferred(...params: ArgumentTypes<F>): ReturnType<F> };
  readonly memory?: boolean;
}
type ArgumentTypes<F extends (...params: any[]) => unknown> = F extends (...args: infer A) => unknown ? A : never;
export interface SqliteCheckpointStatement {
  run(...params: unknown[]): { changes: number };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

interface ItemRow {
  seq: number;
  key: string;
  status: CheckpointStatus;
  priority: number;
  payload: string | null;
  result: string | null;
  error: string | null;
  attempts: number;
  owner: string | null;
  token: number;
  run_at: number;
  avail_at: number;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
}

const DDL = `
CREATE TABLE IF NOT EXISTS checkpoint_items (
  seq INTEGER PRIMARY KEY,
  stream TEXT NOT NULL,
  key TEXT NOT NULL,
  status TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  payload TEXT,
  result TEXT,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  owner TEXT,
  token INTEGER NOT NULL DEFAULT 0,
  run_at INTEGER NOT NULL,
  avail_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  completed_at INTEGER,
  UNIQUE (stream, key)
);
CREATE INDEX IF NOT EXISTS checkpoint_items_claimable
  ON checkpoint_items (stream, priority DESC, avail_at, seq)
  WHERE status IN ('pending', 'failed', 'processing');
CREATE INDEX IF NOT EXISTS checkpoint_items_status ON checkpoint_items (stream, status, created_at);
CREATE TABLE IF NOT EXISTS checkpoint_streams (
  stream TEXT PRIMARY KEY,
  fence INTEGER NOT NULL
);
`;

/** SET clause shared by claim and claimKey: lease the row, or kill it when an expired lease used up its attempts. */
const LEASE_SET = `
  attempts = attempts + (status = 'processing'),
  error = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN 'lease expired ' || (attempts + 1) || ' times' ELSE error END,
  owner = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN NULL ELSE @owner END,
  token = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN token ELSE @token END,
  avail_at = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN @now ELSE @now + @lease END,
  status = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN 'dead' ELSE 'processing' END,
  updated_at = @now`;
const RETURNING = 'RETURNING seq, key, status, token, avail_at, attempts, payload, priority';
const CAS = `stream = @stream AND key = @key AND token = @token AND owner = @owner AND status = 'processing' AND avail_at > @now`;

const parse = (text: string | null): JsonValue | null => (text === null ? null : (JSON.parse(text) as JsonValue));

function toItem(r: ItemRow): CheckpointItem {
  return {
    key: r.key,
    status: r.status,
    payload: parse(r.payload),
    priority: r.priority,
    attempts: r.attempts,
    runAt: r.run_at,
    owner: r.owner,
    token: r.token,
    leaseExpiresAt: r.status === 'processing' ? r.avail_at : null,
    result: parse(r.result),
    error: r.error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    completedAt: r.completed_at,
  };
}

/**
 * The checkpoint on a SQLite file, shared by several processes on one machine (WAL mode). Every
 * claim is one synchronous `BEGIN IMMEDIATE` transaction (bump the stream's fencing counter, then
 * one `UPDATE … RETURNING`), so the write lock is never held across an `await`. Expiry is judged
 * by the machine's clock.
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3';
 * const db = new Database('checkpoint.db', { timeout: 10_000 });
 * const checkpoint = createCheckpoint({ storage: createSqliteCheckpointBackend(db), stream: 'messages' });
 * ```
 */
export function createSqliteCheckpointBackend(db: SqliteCheckpointDatabase, options: { now?: () => number } = {}): CheckpointBackend {
  const clock = options.now ?? Date.now;
  let prepared: ReturnType<typeof prepare> | null = null;

  function prepare() {
    const bumpFence = db.prepare(
      'INSERT INTO checkpoint_streams (stream, fence) VALUES (?, 1) ON CONFLICT (stream) DO UPDATE SET fence = fence + 1 RETURNING fence',
    );
    const claim = db.prepare(`UPDATE checkpoint_items SET ${LEASE_SET}
      WHERE seq IN (
        SELECT seq FROM checkpoint_items
        WHERE stream = @stream AND status IN ('pending', 'failed', 'processing') AND avail_at <= @now
        ORDER BY priority DESC, avail_at, seq LIMIT @limit)
      ${RETURNING}`);
    const claimKey = db.prepare(`INSERT INTO checkpoint_items
        (stream, key, status, priority, payload, attempts, owner, token, run_at, avail_at, created_at, updated_at)
      VALUES (@stream, @key, 'processing', 0, @payload, 0, @owner, @token, @now, @now + @lease, @now, @now)
      ON CONFLICT (stream, key) DO UPDATE SET ${LEASE_SET}
      WHERE status IN ('pending', 'failed', 'processing') AND avail_at <= @now
      ${RETURNING}`);
    const insert = db.prepare(`INSERT INTO checkpoint_items
        (stream, key, status, priority, payload, run_at, avail_at, created_at, updated_at)
      VALUES (@stream, @key, 'pending', @priority, @payload, @runAt, @runAt, @now, @now)
      ON CONFLICT (stream, key) DO NOTHING`);
    const renew = db.prepare(`UPDATE checkpoint_items SET avail_at = @now + @lease, updated_at = @now WHERE ${CAS} RETURNING avail_at`);
    const complete = db.prepare(`UPDATE checkpoint_items
      SET status = 'done', result = @result, completed_at = @now, updated_at = @now, avail_at = @now WHERE ${CAS}`);
    const fail = db.prepare(`UPDATE checkpoint_items
      SET attempts = attempts + 1, status = @status, error = @error, run_at = @now + @retry, avail_at = @now + @retry,
          owner = CASE WHEN @status = 'dead' THEN NULL ELSE owner END, updated_at = @now
      WHERE ${CAS}`);
    const release = db.prepare(`UPDATE checkpoint_items
      SET status = 'pending', owner = NULL, avail_at = run_at, updated_at = @now WHERE ${CAS}`);
    const get = db.prepare('SELECT * FROM checkpoint_items WHERE stream = ? AND key = ?');
    const list = db.prepare(`SELECT * FROM checkpoint_items
      WHERE stream = @stream AND (@status IS NULL OR status = @status) AND (@cursor IS NULL OR key > @cursor)
      ORDER BY key LIMIT @limit`);
    const counts = db.prepare('SELECT status, count(*) AS n FROM checkpoint_items WHERE stream = ? GROUP BY status');
    const oldest = db.prepare("SELECT min(created_at) AS t FROM checkpoint_items WHERE stream = ? AND status = 'pending'");
    const retryDead = db.prepare(`UPDATE checkpoint_items SET status = 'pending', attempts = 0, owner = NULL, run_at = @now,
      avail_at = @now, updated_at = @now WHERE stream = @stream AND status = 'dead'`);
    const purge = db.prepare(
      'DELETE FROM checkpoint_items WHERE stream = @stream AND status IN (SELECT value FROM json_each(@statuses)) AND updated_at <= @cutoff',
    );

    const leaseFrom = (stream: string, owner: string, rows: { seq: number; key: string; status: string; token: number; avail_at: number; attempts: number; payload: string | null; priority: number }[]): Lease[] =>
      rows
        .filter((r) => r.status === 'processing')
        .sort((a, b) => b.priority - a.priority || a.seq - b.seq)
        .map((r) => ({
          stream,
          key: r.key,
          owner,
          token: r.token,
          expiresAt: r.avail_at,
          attempts: r.attempts,
          payload: parse(r.payload),
          priority: r.priority,
        }));

    return {
      add: db.transaction((stream: string, items: NewCheckpointItem[], now: number) => {
        let n = 0;
        for (const it of items) {
          n += insert.run({
            stream,
            key: it.key,
            priority: it.priority ?? 0,
            payload: it.payload === undefined ? null : JSON.stringify(it.payload),
            runAt: it.runAt === undefined ? now : Number(it.runAt),
            now,
          }).changes;
        }
        return n;
      }).immediate,
      claim: db.transaction((stream: string, owner: string, limit: number, lease: number, max: number, now: number) => {
        const { fence } = bumpFence.get(stream) as { fence: number };
        const rows = claim.all({ stream, owner, limit, lease, max, now, token: fence }) as Parameters<typeof leaseFrom>[2];
        return leaseFrom(stream, owner, rows);
      }).immediate,
      claimKey: db.transaction((stream: string, key: string, owner: string, lease: number, payload: string | null, max: number, now: number) => {
        const { fence } = bumpFence.get(stream) as { fence: number };
        const rows = claimKey.all({ stream, key, owner, lease, payload, max, now, token: fence }) as Parameters<typeof leaseFrom>[2];
        return leaseFrom(stream, owner, rows)[0] ?? null;
      }).immediate,
      renew: db.transaction((stream: string, leases: LeaseRef[], lease: number, now: number) =>
        leases.map((l) => {
          const row = renew.get({ stream, key: l.key, token: l.token, owner: l.owner, lease, now }) as { avail_at: number } | undefined;
          return row ? row.avail_at : null;
        }),
      ).immediate,
      complete: db.transaction((stream: string, entries: { lease: LeaseRef; result: JsonValue | null }[], now: number) =>
        entries.map(({ lease, result }): CasResult => ({
          ok:
            complete.run({
              stream,
              key: lease.key,
              token: lease.token,
              owner: lease.owner,
              result: result === null ? null : JSON.stringify(result),
              now,
            }).changes === 1,
        })),
      ).immediate,
      fail: (stream: string, lease: LeaseRef, change: FailChange, now: number): CasResult => ({
        ok:
          fail.run({
            stream,
            key: lease.key,
            token: lease.token,
            owner: lease.owner,
            status: change.status,
            error: change.error,
            retry: change.retryInMs,
            now,
          }).changes === 1,
      }),
      release: db.transaction((stream: string, leases: LeaseRef[], now: number) =>
        leases.map((l): CasResult => ({ ok: release.run({ stream, key: l.key, token: l.token, owner: l.owner, now }).changes === 1 })),
      ).immediate,
      get: (stream: string, key: string) => {
        const row = get.get(stream, key) as ItemRow | undefined;
        return row ? toItem(row) : null;
      },
      list: (stream: string, q: ListQuery): ListPage => {
        const rows = list.all({ stream, status: q.status ?? null, cursor: q.cursor ?? null, limit: q.limit + 1 }) as ItemRow[];
        const more = rows.length > q.limit;
        const page = rows.slice(0, q.limit).map(toItem);
        return { items: page, cursor: more ? page[page.length - 1]!.key : null };
      },
      stats: db.transaction((stream: string, now: number): CheckpointStats => {
        const out: CheckpointStats = { pending: 0, processing: 0, done: 0, failed: 0, dead: 0, total: 0, oldestPendingAgeMs: null };
        for (const r of counts.all(stream) as { status: CheckpointStatus; n: number }[]) {
          if (r.status in out) out[r.status] = r.n;
          out.total += r.n;
        }
        const t = (oldest.get(stream) as { t: number | null }).t;
        out.oldestPendingAgeMs = t === null ? null : Math.max(0, now - t);
        return out;
      }).deferred,
      retryDead: (stream: string, now: number) => retryDead.run({ stream, now }).changes,
      purge: (stream: string, statuses: CheckpointStatus[], cutoff: number) =>
        purge.run({ stream, statuses: JSON.stringify(statuses), cutoff }).changes,
    };
  }

  let initialized = false;
  const q = () => {
    if (!prepared) throw new Error('[multisession] [checkpoint:sqlite] init() has not run');
    return prepared;
  };

  return {
    kind: 'sqlite',
    async init() {
      if (initialized) return;
      if (!db.memory) {
        try {
          db.pragma('journal_mode = WAL');
        } catch {
          // Another connection holds the database; it keeps its journal mode (WAL is persistent).
        }
      }
      db.transaction(() => db.exec(DDL)).immediate();
      prepared = prepare();
      initialized = true;
    },
    async add(stream, items) {
      return q().add(stream, items, clock());
    },
    async claim(stream, o) {
      return q().claim(stream, o.owner, o.limit, o.leaseMs, o.maxAttempts, clock());
    },
    async claimKey(stream, key, o) {
      return q().claimKey(stream, key, o.owner, o.leaseMs, o.payload === null ? null : JSON.stringify(o.payload), o.maxAttempts, clock());
    },
    async renew(stream, leases, leaseMs) {
      return q().renew(stream, leases, leaseMs, clock());
    },
    async complete(stream, entries) {
      return q().complete(stream, entries, clock());
    },
    async fail(stream, lease, change) {
      return q().fail(stream, lease, change, clock());
    },
    async release(stream, leases) {
      return q().release(stream, leases, clock());
    },
    async get(stream, key) {
      return q().get(stream, key);
    },
    async list(stream, query) {
      return q().list(stream, query);
    },
    async stats(stream) {
      return q().stats(stream, clock());
    },
    async retryDead(stream) {
      return q().retryDead(stream, clock());
    },
    async purge(stream, o) {
      return q().purge(stream, o.statuses, clock() - o.olderThanMs);
    },
  };
}
