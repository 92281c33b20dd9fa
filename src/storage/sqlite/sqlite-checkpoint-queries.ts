import type { JsonValue } from '../../types.js';
import type {
  CasResult,
  CheckpointItem,
  CheckpointStats,
  CheckpointStatus,
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
  // The claim scans the partial index alone (a covering scan). An expired lease that used up its
  // attempts comes back with attempts >= max and is turned dead in the same transaction.
  const claim = db.prepare(`UPDATE checkpoint_items
    SET attempts = attempts + (status = 'processing'), owner = @owner, token = @token, avail_at = @now + @lease,
        status = 'processing', updated_at = @now
    WHERE seq IN (
      SELECT seq FROM checkpoint_items
      WHERE stream = @stream AND status IN ('pending', 'failed', 'processing') AND avail_at <= @now
      ORDER BY priority DESC, avail_at LIMIT @limit)
    RETURNING key, token, attempts, payload, priority`).raw(true); // rows as arrays: [key, token, attempts, payload, priority]
  const kill = db.prepare(`UPDATE checkpoint_items
    SET status = 'dead', owner = NULL, avail_at = @now, updated_at = @now,
        error = 'gave up after ' || attempts || ' attempts (the last lease expired)'
    WHERE stream = @stream AND key = @key AND token = @token`);
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
  const fail = db.prepare(`UPDATE checkpoint_items
    SET attempts = attempts + 1, status = @status, error = @error, run_at = @now + @retry, avail_at = @now + @retry,
        owner = CASE WHEN @status = 'dead' THEN NULL ELSE owner END, updated_at = @now
    WHERE ${CAS}`);
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

  /**
   * One compare-and-swap statement for a whole batch: the leases go in as a VALUES list joined on
   * (stream, key) and checked on token, owner, status and expiry; RETURNING names the winners.
   */
  const batchCache = new Map<string, SqliteStatement>();
  const BATCH = 200;
  const batchSet = {
    complete: "status = 'done', result = NULL, completed_at = @now, updated_at = @now, avail_at = @now",
    completeWithResults:
      "status = 'done', result = (SELECT v.r FROM v WHERE v.k = checkpoint_items.key), completed_at = @now, updated_at = @now, avail_at = @now",
    renew: 'avail_at = @now + @lease, updated_at = @now',
    release: "status = 'pending', owner = NULL, avail_at = run_at, updated_at = @now",
  } as const;
  /** Runs the CAS for `leases` (results aligned, for completions); returns key → [token, avail_at] of the winners. */
  const batchCas = (
    kind: keyof typeof batchSet,
    stream: number,
    leases: LeaseRef[],
    results: (string | null)[] | null,
    named: Record<string, unknown>,
  ): Map<string, [number, number]> => {
    const won = new Map<string, [number, number]>();
    const bind = { stream, ...named };
    for (let start = 0; start < leases.length; start += BATCH) {
      const n = Math.min(BATCH, leases.length - start);
      if (n === 1) {
        // One lease: a plain single-row compare-and-swap.
        const l = leases[start]!;
        let one = batchCache.get(`${kind}:one`);
        if (!one) {
          one = db.prepare(`UPDATE checkpoint_items SET ${batchSet[kind].replace('(SELECT v.r FROM v WHERE v.k = checkpoint_items.key)', '@r')}
            WHERE stream = @stream AND key = @k AND token = @t AND owner = @o AND status = 'processing' AND avail_at > @now
            RETURNING key, token, avail_at`).raw(true);
          batchCache.set(`${kind}:one`, one);
        }
        const extra = kind === 'completeWithResults' ? { r: results?.[start] ?? null } : {};
        const r = one.get({ ...bind, ...extra, k: l.key, t: l.token, o: l.owner }) as [string, number, number] | undefined;
        if (r) won.set(r[0], [r[1], r[2]]);
        continue;
      }
      const id = `${kind}:${n}`;
      let stmt = batchCache.get(id);
      if (!stmt) {
        // CROSS JOIN keeps the lease list as the outer loop: one (stream, key) index probe per lease.
        const values = Array.from({ length: n }, () => '(?, ?, ?, ?)').join(', ');
        stmt = db.prepare(`WITH v(k, t, o, r) AS (VALUES ${values})
          UPDATE checkpoint_items SET ${batchSet[kind]}
          WHERE seq IN (
            SELECT c.seq FROM v CROSS JOIN checkpoint_items AS c
            WHERE c.stream = @stream AND c.key = v.k AND c.token = v.t AND c.owner = v.o
              AND c.status = 'processing' AND c.avail_at > @now)
          RETURNING key, token, avail_at`).raw(true);
        batchCache.set(id, stmt);
      }
      const params: unknown[] = new Array(n * 4 + 1);
      for (let i = 0; i < n; i++) {
        const l = leases[start + i]!;
        params[i * 4] = l.key;
        params[i * 4 + 1] = l.token;
        params[i * 4 + 2] = l.owner;
        params[i * 4 + 3] = results ? (results[start + i] ?? null) : null;
      }
      params[n * 4] = bind;
      for (const r of stmt.all(...params) as [string, number, number][]) won.set(r[0], [r[1], r[2]]);
    }
    return won;
  };
  /** The winner's expiry when this lease won, else undefined. */
  const wonBy = (won: Map<string, [number, number]>, l: LeaseRef): number | undefined => {
    const w = won.get(l.key);
    return w && w[0] === l.token ? w[1] : undefined;
  };

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
    addStream,
    findStream,
    add: db.transaction((stream: number, items: NewCheckpointItem[], now: number) => {
      let n = 0;
      for (const it of items) {
        n += Number(insert.run({
          stream,
          key: it.key,
          priority: it.priority ?? 0,
          payload: it.payload === undefined ? null : JSON.stringify(it.payload),
          runAt: it.runAt === undefined ? now : Number(it.runAt),
          now,
        }).changes);
      }
      return n;
    }).immediate,
    claim: db.transaction((stream: string, sid: number, owner: string, limit: number, lease: number, max: number, now: number): Lease[] => {
      const { fence } = bumpFence.get(sid) as { fence: number };
      const rows = claim.all({ stream: sid, owner, limit, lease, max, now, token: fence }) as [string, number, number, string | null, number][];
      let live = rows;
      if (rows.some((r) => r[2] >= max)) {
        for (const r of rows) if (r[2] >= max) kill.run({ stream: sid, key: r[0], token: r[1], now });
        live = rows.filter((r) => r[2] < max);
      }
      const expiresAt = now + lease;
      const leases: Lease[] = new Array(live.length);
      for (let i = 0; i < live.length; i++) {
        const [key, token, attempts, payload, priority] = live[i]!;
        leases[i] = {
          stream,
          key,
          owner,
          token,
          expiresAt,
          attempts,
          payload: payload === null ? null : (JSON.parse(payload) as JsonValue),
          priority,
        };
      }
      // Rows come back in rowid order; a stable sort by priority restores the claim order.
      for (let i = 1; i < leases.length; i++) {
        if (leases[i]!.priority !== leases[i - 1]!.priority) {
          leases.sort((a, b) => b.priority - a.priority);
          break;
        }
      }
      return leases;
    }).immediate,
    claimKey: db.transaction((stream: string, sid: number, key: string, owner: string, lease: number, payload: string | null, max: number, now: number) => {
      const { fence } = bumpFence.get(sid) as { fence: number };
      const rows = claimKey.all({ stream: sid, key, owner, lease, payload, max, now, token: fence }) as Parameters<typeof leaseFrom>[2];
      return leaseFrom(stream, owner, rows)[0] ?? null;
    }).immediate,
    renew: (stream: number, leases: LeaseRef[], lease: number, now: number) => {
      const won = batchCas('renew', stream, leases, null, { now, lease });
      return leases.map((l) => wonBy(won, l) ?? null);
    },
    complete: (stream: number, entries: { lease: LeaseRef; result: JsonValue | null }[], now: number) => {
      const leases = new Array<LeaseRef>(entries.length);
      let results: (string | null)[] | null = null;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        leases[i] = e.lease;
        if (e.result !== null) (results ??= new Array<string | null>(entries.length).fill(null))[i] = JSON.stringify(e.result);
      }
      const won = batchCas(results ? 'completeWithResults' : 'complete', stream, leases, results, { now });
      return leases.map((l): CasResult => ({ ok: wonBy(won, l) !== undefined }));
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
      const won = batchCas('release', stream, leases, null, { now });
      return leases.map((l): CasResult => ({ ok: wonBy(won, l) !== undefined }));
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
