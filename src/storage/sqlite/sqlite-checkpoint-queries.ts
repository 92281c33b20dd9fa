import type { JsonValue } from '../../types.js';
import type {
  CasResult,
  CheckpointItem,
  CheckpointStats,
  CheckpointStatus,
  ClaimRequest,
  FailChange,
  Lease,
  LeaseRef,
  ListPage,
  ListQuery,
  NewCheckpointItem,
} from '../../checkpoint/contract.js';
import type { SqliteClient, SqliteStatement } from './sqlite-client.js';

/**
 * The statements of the SQLite checkpoint, prepared once per open database. Every claim is one
 * synchronous `BEGIN IMMEDIATE` transaction (bump the stream's fencing counter, then one
 * `UPDATE … RETURNING`), so the write lock is never held across an `await`.
 */
export type CheckpointQueries = ReturnType<typeof prepareCheckpointQueries>;

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

/** SET clause shared by claim and claimKey: lease the row, or kill it when an expired lease used up its attempts. */
const LEASE_SET = `
  attempts = attempts + (status = 'processing'),
  error = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN 'lease expired ' || (attempts + 1) || ' times' ELSE error END,
  owner = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN NULL ELSE @owner END,
  token = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN token ELSE @token END,
  avail_at = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN @now ELSE @now + @lease END,
  status = CASE WHEN status = 'processing' AND attempts + 1 >= @max THEN 'dead' ELSE 'processing' END,
  updated_at = @now`;
/**
 * The columns of an item as read back. A completion does not write completed_at (a done row never
 * changes again, so its updated_at is its completion time); rows completed by earlier versions
 * have it written, and keep it.
 */
const ITEM_COLUMNS = `seq, key, status, priority, payload, result, error, attempts, owner, token, run_at, avail_at, created_at, updated_at,
  coalesce(completed_at, CASE WHEN status = 'done' THEN updated_at END) AS completed_at`;
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

export function prepareCheckpointQueries(db: SqliteClient) {
  const bumpFence = db.prepare('UPDATE checkpoint_streams SET fence = fence + 1 WHERE id = ? RETURNING fence');
  const addStream = db.prepare('INSERT INTO checkpoint_streams (name) VALUES (?) ON CONFLICT (name) DO NOTHING');
  const findStream = db.prepare('SELECT id FROM checkpoint_streams WHERE name = ?');
  // The claim scans the partial index alone (a covering scan); it asks for `status NOT IN ('done',
  // 'dead')` in the words of the index's predicate (migration 0002), which is what lets the
  // planner use it. An expired lease that used up its attempts comes back with attempts >= max and is turned
  // dead in the same transaction. Positional parameters (better-sqlite3 binds an argument list
  // faster than an object): owner, token, expiry, now, stream, now, limit.
  const claim = db.prepare(`UPDATE checkpoint_items
    SET attempts = attempts + (status = 'processing'), owner = ?, token = ?, avail_at = ?, status = 'processing', updated_at = ?
    WHERE seq IN (
      SELECT seq FROM checkpoint_items
      WHERE stream = ? AND status NOT IN ('done', 'dead') AND avail_at <= ?
      ORDER BY priority DESC, avail_at LIMIT ?)
    RETURNING key, token, attempts, payload, priority`).raw(true); // rows as arrays: [key, token, attempts, payload, priority]
  const kill = db.prepare(`UPDATE checkpoint_items
    SET status = 'dead', owner = NULL, avail_at = @now, updated_at = @now,
        error = 'gave up after ' || attempts || ' attempts (the last lease expired)'
    WHERE stream = @stream AND key = @key AND token = @token`);
  const claimKey = db.prepare(`INSERT INTO checkpoint_items
      (stream, key, status, priority, payload, attempts, owner, token, run_at, avail_at, created_at, updated_at)
    VALUES (@stream, @key, 'processing', 0, @payload, 0, @owner, @token, @now, @now + @lease, @now, @now)
    ON CONFLICT (stream, key) DO UPDATE SET ${LEASE_SET}
    WHERE status NOT IN ('done', 'dead') AND avail_at <= @now
    ${RETURNING}`);
  const fail = db.prepare(`UPDATE checkpoint_items
    SET attempts = attempts + 1, status = @status, error = @error, run_at = @now + @retry, avail_at = @now + @retry,
        owner = CASE WHEN @status = 'dead' THEN NULL ELSE owner END, updated_at = @now
    WHERE ${CAS}`);
  const get = db.prepare(`SELECT ${ITEM_COLUMNS} FROM checkpoint_items WHERE stream = ? AND key = ?`);
  const list = db.prepare(`SELECT ${ITEM_COLUMNS} FROM checkpoint_items
    WHERE stream = @stream AND (@status IS NULL OR status = @status) AND (@cursor IS NULL OR key > @cursor)
    ORDER BY key LIMIT @limit`);
  const counts = db.prepare('SELECT status, count(*) AS n FROM checkpoint_items WHERE stream = ? GROUP BY status');
  const oldest = db.prepare("SELECT min(created_at) AS t FROM checkpoint_items WHERE stream = ? AND status = 'pending'");
  const retryDead = db.prepare(`UPDATE checkpoint_items SET status = 'pending', attempts = 0, owner = NULL, run_at = @now,
    avail_at = @now, updated_at = @now WHERE stream = @stream AND status = 'dead'`);
  const purge = db.prepare(
    'DELETE FROM checkpoint_items WHERE stream = @stream AND status IN (SELECT value FROM json_each(@statuses)) AND updated_at <= @cutoff',
  );

  /**
   * The compare-and-swaps of a batch: one prepared single-row statement per lease (an index probe
   * on (stream, key), checked on token, owner, status and expiry) in one transaction. In SQLite a
   * statement costs microseconds; the commit is what a batch shares.
   */
  // Positional parameters (better-sqlite3 binds an argument list fastest): the SET values, then the CAS.
  const casWhere = `WHERE stream = ? AND key = ? AND token = ? AND owner = ? AND status = 'processing' AND avail_at > ?`;
  const casStatements = {
    // A done row is final: its completion time is its updated_at (read back as completed_at, see
    // ITEM_COLUMNS), its avail_at is never read again, and a leased row has no result to clear.
    // So a completion writes two columns, or three with a result.
    complete: db.prepare(`UPDATE checkpoint_items SET status = 'done', updated_at = ? ${casWhere}`),
    completeWithResult: db.prepare(`UPDATE checkpoint_items SET status = 'done', result = ?, updated_at = ? ${casWhere}`),
    renew: db.prepare(`UPDATE checkpoint_items SET avail_at = ?, updated_at = ? ${casWhere}`),
    release: db.prepare(`UPDATE checkpoint_items SET status = 'pending', owner = NULL, avail_at = run_at, updated_at = ? ${casWhere}`),
  };
  type CasKind = keyof typeof casStatements;
  /** The SET values of lease `i`. */
  type SetValues = (i: number) => unknown[];
  /** Runs the CAS of `kind` for each lease; true per lease that won. */
  const casEach = (kind: CasKind, stream: number, leases: readonly LeaseRef[], now: number, set: SetValues): boolean[] => {
    const stmt = casStatements[kind];
    const won = new Array<boolean>(leases.length);
    for (let i = 0; i < leases.length; i++) {
      const l = leases[i]!;
      won[i] = Number(stmt.run(...set(i), stream, l.key, l.token, l.owner, now).changes) === 1;
    }
    return won;
  };
  const casBatch = db.transaction(casEach).immediate;
  /** One lease: a plain autocommit statement; more: one transaction. */
  const cas = (kind: CasKind, stream: number, leases: readonly LeaseRef[], now: number, set: SetValues) =>
    leases.length === 1 ? casEach(kind, stream, leases, now, set) : casBatch(kind, stream, leases, now, set);

  /**
   * add(): multi-row inserts of up to 200 rows. The stream and the time are bound once per
   * statement (`@s`, `@n`); a row binds only what it has: its key alone when no item of the chunk
   * has a priority, payload or runAt (the common case), else key, priority, payload and runAt twice.
   */
  const insertCache = new Map<string, SqliteStatement>();
  const insertRows = (full: boolean, n: number): SqliteStatement => {
    const id = `${full ? 'full' : 'keys'}:${n}`;
    let stmt = insertCache.get(id);
    if (!stmt) {
      const row = full ? "(@s, ?, 'pending', ?, ?, ?, ?, @n, @n)" : "(@s, ?, 'pending', 0, NULL, @n, @n, @n, @n)";
      stmt = db.prepare(`INSERT INTO checkpoint_items (stream, key, status, priority, payload, run_at, avail_at, created_at, updated_at)
        VALUES ${new Array<string>(n).fill(row).join(', ')} ON CONFLICT (stream, key) DO NOTHING`);
      insertCache.set(id, stmt);
    }
    return stmt;
  };
  const INSERT_ROWS = 200;

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

  /** One request's claim, inside the group's transaction. */
  const claimOne = (stream: string, sid: number, r: ClaimRequest, max: number, now: number, token: number): Lease[] => {
    const { owner, limit, leaseMs: lease } = r;
    const rows = claim.all(owner, token, now + lease, now, sid, now, limit) as [string, number, number, string | null, number][];
    let live = rows;
    if (rows.some((row) => row[2] >= max)) {
      for (const row of rows) if (row[2] >= max) kill.run({ stream: sid, key: row[0], token: row[1], now });
      live = rows.filter((row) => row[2] < max);
    }
    const expiresAt = now + lease;
    const leases: Lease[] = new Array(live.length);
    for (let i = 0; i < live.length; i++) {
      const [key, tok, attempts, payload, priority] = live[i]!;
      leases[i] = { stream, key, owner, token: tok, expiresAt, attempts, payload: parse(payload), priority };
    }
    // Rows come back in rowid order; a stable sort by priority restores the claim order.
    for (let i = 1; i < leases.length; i++) {
      if (leases[i]!.priority !== leases[i - 1]!.priority) {
        leases.sort((a, b) => b.priority - a.priority);
        break;
      }
    }
    return leases;
  };

  return {
    addStream,
    findStream,
    add: db.transaction((stream: number, items: NewCheckpointItem[], now: number) => {
      let added = 0;
      for (let start = 0; start < items.length; start += INSERT_ROWS) {
        const n = Math.min(INSERT_ROWS, items.length - start);
        let full = false;
        for (let i = start; i < start + n && !full; i++) {
          const it = items[i]!;
          full = it.priority !== undefined || it.payload !== undefined || it.runAt !== undefined;
        }
        const params: unknown[] = new Array(full ? 5 * n + 1 : n + 1);
        let p = 0;
        for (let i = start; i < start + n; i++) {
          const it = items[i]!;
          params[p++] = it.key;
          if (!full) continue;
          const runAt = it.runAt === undefined ? now : Number(it.runAt);
          params[p++] = it.priority ?? 0;
          params[p++] = it.payload === undefined ? null : JSON.stringify(it.payload);
          params[p++] = runAt;
          params[p++] = runAt;
        }
        params[p] = { s: stream, n: now };
        added += Number(insertRows(full, n).run(...params).changes);
      }
      return added;
    }).immediate,
    /** One transaction for the group: one fencing token, then each request's claim in order. */
    claim: db.transaction((stream: string, sid: number, requests: readonly ClaimRequest[], max: number, now: number): Lease[][] => {
      const { fence } = bumpFence.get(sid) as { fence: number };
      return requests.map((r) => claimOne(stream, sid, r, max, now, fence));
    }).immediate,
    claimKey: db.transaction((stream: string, sid: number, key: string, owner: string, lease: number, payload: string | null, max: number, now: number) => {
      const { fence } = bumpFence.get(sid) as { fence: number };
      const rows = claimKey.all({ stream: sid, key, owner, lease, payload, max, now, token: fence }) as Parameters<typeof leaseFrom>[2];
      return leaseFrom(stream, owner, rows)[0] ?? null;
    }).immediate,
    renew: (stream: number, leases: LeaseRef[], lease: number, now: number) => {
      const expiry = [now + lease, now];
      return cas('renew', stream, leases, now, () => expiry).map((won) => (won ? now + lease : null));
    },
    complete: (stream: number, entries: { lease: LeaseRef; result: JsonValue | null }[], now: number): CasResult[] => {
      const leases = entries.map((e) => e.lease);
      const at = [now];
      const results = entries.some((e) => e.result !== null);
      const won = results
        ? cas('completeWithResult', stream, leases, now, (i) => {
            const r = entries[i]!.result;
            return [r === null ? null : JSON.stringify(r), now];
          })
        : cas('complete', stream, leases, now, () => at);
      return won.map((ok): CasResult => ({ ok }));
    },
    fail: (stream: number, lease: LeaseRef, change: FailChange, now: number): CasResult => {
      const { changes } = fail.run({
        stream,
        key: lease.key,
        token: lease.token,
        owner: lease.owner,
        status: change.status,
        error: change.error,
        retry: change.retryInMs,
        now,
      });
      return { ok: Number(changes) === 1 };
    },
    release: (stream: number, leases: LeaseRef[], now: number) => {
      const at = [now];
      return cas('release', stream, leases, now, () => at).map((ok): CasResult => ({ ok }));
    },
    get: (stream: number, key: string) => {
      const row = get.get(stream, key) as ItemRow | undefined;
      return row ? toItem(row) : null;
    },
    list: (stream: number, q: ListQuery): ListPage => {
      const rows = list.all({ stream, status: q.status ?? null, cursor: q.cursor ?? null, limit: q.limit + 1 }) as ItemRow[];
      const more = rows.length > q.limit;
      const page = rows.slice(0, q.limit).map(toItem);
      return { items: page, cursor: more ? page[page.length - 1]!.key : null };
    },
    stats: db.transaction((stream: number, now: number): CheckpointStats => {
      const out: CheckpointStats = { pending: 0, processing: 0, done: 0, failed: 0, dead: 0, total: 0, oldestPendingAgeMs: null };
      for (const r of counts.all(stream) as { status: CheckpointStatus; n: number }[]) {
        if (r.status in out) out[r.status] = r.n;
        out.total += r.n;
      }
      const t = (oldest.get(stream) as { t: number | null }).t;
      out.oldestPendingAgeMs = t === null ? null : Math.max(0, now - t);
      return out;
    }).deferred,
    retryDead: (stream: number, now: number) => Number(retryDead.run({ stream, now }).changes),
    purge: (stream: number, statuses: CheckpointStatus[], cutoff: number) =>
      Number(purge.run({ stream, statuses: JSON.stringify(statuses), cutoff }).changes),
  };
}
