import type { JsonValue } from '../../types.js';
import type {
  CasResult,
  CheckpointBackend,
  CheckpointItem,
  CheckpointStats,
  CheckpointStatus,
  ClaimRequest,
  Lease,
  LeaseRef,
  ListPage,
  NewCheckpointItem,
} from '../../checkpoint/contract.js';
import type { CheckpointStore } from '../contract.js';
import { guardStore } from '../guarded-storage.js';
import { CHECKPOINT_MIGRATIONS } from '../sql/migration-sets.js';
import { pgCode, poolQuery, type PostgresPoolLike } from './postgres-client.js';
import { checkpointStatements, NOW, type NamedStatement } from './postgres-checkpoint-sql.js';
import {
  closePostgres,
  openPostgres,
  parsePostgresConfig,
  PostgresScope,
  type PostgresConnection,
  type PostgresOptions,
  type PostgresTarget,
  type ResolvedPostgresOptions,
} from './postgres-connection.js';

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toItem(r: Record<string, unknown>): CheckpointItem {
  const status = r.status as CheckpointStatus;
  return {
    key: r.key as string,
    status,
    payload: (r.payload ?? null) as JsonValue | null,
    priority: num(r.priority),
    attempts: num(r.attempts),
    runAt: num(r.run_at),
    owner: (r.owner ?? null) as string | null,
    token: num(r.token),
    leaseExpiresAt: status === 'processing' ? num(r.avail_at) : null,
    result: (r.result ?? null) as JsonValue | null,
    error: (r.error ?? null) as string | null,
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    completedAt: numOrNull(r.completed_at),
  };
}

/**
 * The checkpoint backend on PostgreSQL (the `checkpoint` of `postgresStorage` and of
 * `postgresCheckpoint`), shared by several machines. Claims are one statement
 * (`UPDATE … WHERE (stream, key) IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING`), expiry is
 * judged by the server's `now()`, fencing tokens come from one sequence (so they only grow, in every
 * stream), and batched changes are one compare-and-swap statement over `unnest` arrays. Its tables
 * live in `scope.schema` (made by the checkpoint migrations).
 */
export function postgresCheckpointBackend(scope: PostgresScope): CheckpointBackend {
  const q = checkpointStatements(scope.schema);
  const T = q.table;
  const pool = (): PostgresPoolLike => scope.c.pool;
  const query = async (operation: string, text: string, values: unknown[]) => {
    try {
      return await poolQuery(pool(), text, values);
    } catch (err) {
      throw scope.error(`checkpoint ${operation}`, err);
    }
  };

  /** Runs one named statement, retrying when PostgreSQL breaks a deadlock between two batches. */
  async function run(operation: string, st: NamedStatement, values: unknown[]): Promise<{ rows: any[]; rowCount: number | null }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await poolQuery(pool(), st.text, values, st.name);
      } catch (err) {
        const code = pgCode(err);
        if ((code === '40P01' || code === '40001') && attempt < 5) continue;
        throw scope.error(`checkpoint ${operation}`, err);
      }
    }
  }

  const toLease = (stream: string, owner: string, r: Record<string, unknown>): Lease => ({
    stream,
    key: r.key as string,
    owner,
    token: num(r.token),
    expiresAt: num(r.avail_at),
    attempts: num(r.attempts),
    payload: (r.payload ?? null) as JsonValue | null,
    priority: num(r.priority),
  });
  const toLeases = (stream: string, owner: string, rows: Record<string, unknown>[]): Lease[] =>
    rows
      .filter((r) => r.status === 'processing')
      .sort((a, b) => num(b.priority) - num(a.priority) || num(a.seq) - num(b.seq))
      .map((r) => toLease(stream, owner, r));

  /** Turns dead the rows an expired lease brought back with their attempts used up; returns the live ones. */
  async function killSpent(stream: string, rows: Record<string, unknown>[], maxAttempts: number): Promise<Record<string, unknown>[]> {
    const spent = rows.filter((r) => num(r.attempts) >= maxAttempts);
    if (!spent.length) return rows;
    await run('claim', q.kill, [stream, spent.map((r) => r.key), spent.map((r) => num(r.token))]);
    return rows.filter((r) => num(r.attempts) < maxAttempts);
  }

  /** Runs a CAS statement over many leases; returns which ordinals (1-based) won. */
  async function cas(operation: string, st: NamedStatement, stream: string, leases: LeaseRef[], extra: unknown[]): Promise<Map<number, Record<string, unknown>>> {
    if (!leases.length) return new Map();
    const { rows } = await run(operation, st, [stream, leases.map((l) => l.key), leases.map((l) => l.token), leases.map((l) => l.owner), ...extra]);
    return new Map(rows.map((r: Record<string, unknown>) => [Number(r.n), r]));
  }

  return {
    kind: 'postgres',
    /** One statement for the whole call (at most 100,000 items): all of them or none. */
    async add(stream, items: NewCheckpointItem[]) {
      const keys = items.map((it) => it.key);
      const full = items.some((it) => it.priority !== undefined || it.payload !== undefined || it.runAt !== undefined);
      const res = full
        ? await run('add', q.add, [
            stream,
            keys,
            items.map((it) => it.priority ?? 0),
            items.map((it) => (it.payload === undefined ? null : JSON.stringify(it.payload))),
            items.map((it) => (it.runAt === undefined ? null : Math.round(Number(it.runAt)))),
          ])
        : await run('add', q.addKeys, [stream, keys]);
      return res.rowCount ?? 0;
    },

    async claim(stream, requests: readonly ClaimRequest[], maxAttempts) {
      if (requests.length === 1) {
        const { owner, limit, leaseMs } = requests[0]!;
        const { rows } = await run('claim', q.claim, [stream, limit, owner, leaseMs]);
        return [toLeases(stream, owner, await killSpent(stream, rows, maxAttempts))];
      }
      // One statement for the group: slot n (the n-th row in claim order) goes to its request.
      const owners: string[] = [];
      const leaseMs: number[] = [];
      const requestOf: number[] = [];
      requests.forEach((r, i) => {
        for (let k = 0; k < r.limit; k++) {
          owners.push(r.owner);
          leaseMs.push(r.leaseMs);
          requestOf.push(i);
        }
      });
      const { rows } = await run('claim', q.claimGroup, [stream, owners.length, owners, leaseMs]);
      const live = (await killSpent(stream, rows, maxAttempts)).filter((r) => r.status === 'processing');
      live.sort((a, b) => num(a.slot) - num(b.slot));
      const out = requests.map((): Lease[] => []);
      for (const r of live) {
        const i = requestOf[num(r.slot) - 1]!;
        out[i]!.push(toLease(stream, requests[i]!.owner, r));
      }
      return out;
    },

    async claimKey(stream, key, o) {
      const { rows } = await run('claimKey', q.claimKey, [
        stream,
        key,
        o.owner,
        o.leaseMs,
        o.payload === null ? null : JSON.stringify(o.payload),
        o.maxAttempts,
      ]);
      return toLeases(stream, o.owner, rows)[0] ?? null;
    },

    async renew(stream, leases, leaseMs) {
      const won = await cas('renew', q.renew, stream, leases, [leaseMs]);
      return leases.map((_, i) => {
        const r = won.get(i + 1);
        return r ? num(r.avail_at) : null;
      });
    },

    async complete(stream, entries) {
      if (entries.length === 1) {
        const { lease, result } = entries[0]!;
        const res = await run('complete', q.completeOne, [stream, lease.key, lease.token, lease.owner, result === null ? null : JSON.stringify(result)]);
        return [{ ok: res.rowCount === 1 }];
      }
      const leases = entries.map((e) => e.lease);
      const won = entries.some((e) => e.result !== null)
        ? await cas('complete', q.complete, stream, leases, [entries.map((e) => (e.result === null ? null : JSON.stringify(e.result)))])
        : await cas('complete', q.completeNoResult, stream, leases, []);
      return entries.map((_, i): CasResult => ({ ok: won.has(i + 1) }));
    },

    async fail(stream, lease, change) {
      const won = await cas('fail', q.fail, stream, [lease], [change.status, change.error, change.retryInMs]);
      return { ok: won.has(1) };
    },

    async release(stream, leases) {
      const won = await cas('release', q.release, stream, leases, []);
      return leases.map((_, i): CasResult => ({ ok: won.has(i + 1) }));
    },

    async get(stream, key) {
      const { rows } = await query('get', `SELECT * FROM ${T} WHERE stream = $1 AND key = $2`, [stream, key]);
      return rows[0] ? toItem(rows[0]) : null;
    },

    async list(stream, q): Promise<ListPage> {
      const { rows } = await query(
        'list',
        `SELECT * FROM ${T} WHERE stream = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR key > $3)
         ORDER BY key LIMIT $4`,
        [stream, q.status ?? null, q.cursor ?? null, q.limit + 1],
      );
      const more = rows.length > q.limit;
      const page = rows.slice(0, q.limit).map(toItem);
      return { items: page, cursor: more ? page[page.length - 1]!.key : null };
    },

    async stats(stream): Promise<CheckpointStats> {
      const { rows } = await query(
        'stats',
        `SELECT status, count(*)::bigint AS n, ${NOW} - min(created_at) AS age FROM ${T} WHERE stream = $1 GROUP BY status`,
        [stream],
      );
      const out: CheckpointStats = { pending: 0, processing: 0, done: 0, failed: 0, dead: 0, total: 0, oldestPendingAgeMs: null };
      for (const r of rows as { status: CheckpointStatus; n: string; age: string }[]) {
        if (r.status in out) out[r.status] = Number(r.n);
        out.total += Number(r.n);
        if (r.status === 'pending') out.oldestPendingAgeMs = Math.max(0, Number(r.age));
      }
      return out;
    },

    async retryDead(stream) {
      const res = await query(
        'retryDead',
        `UPDATE ${T} SET status = 'pending', attempts = 0, owner = NULL, run_at = ${NOW}, avail_at = ${NOW}, updated_at = ${NOW}
         WHERE stream = $1 AND status = 'dead'`,
        [stream],
      );
      return res.rowCount ?? 0;
    },

    async purge(stream, o) {
      const res = await query(
        'purge',
        `DELETE FROM ${T} WHERE stream = $1 AND status = ANY($2::text[]) AND updated_at <= ${NOW} - $3::bigint`,
        [stream, o.statuses, o.olderThanMs],
      );
      return res.rowCount ?? 0;
    },
  };
}

/**
 * A stand-alone checkpoint on PostgreSQL: only the checkpoint tables, in `schema` (default
 * `multisession`, created if missing; made by their own migrations, safe from several processes
 * at once), shared by every machine that reaches the server. `init()` connects and migrates;
 * `close()` ends the pool it made (never a `pool` passed in); calls before `init()` open it first.
 *
 * @param target `{ connectionString }` (a pool of its own, `poolSize` connections, default 10) or
 *   `{ pool }` (a pg `Pool` you made and end yourself).
 *
 * @example
 * ```ts
 * import { createCheckpoint } from 'multisession';
 * import { postgresCheckpoint } from 'multisession/postgres';
 * const storage = postgresCheckpoint({ connectionString: process.env.DATABASE_URL! }, { schema: 'jobs' });
 * const checkpoint = createCheckpoint({ storage, stream: 'messages' });
 * ```
 */
export function postgresCheckpoint(target: PostgresTarget, options?: PostgresOptions): CheckpointStore {
  const config = parsePostgresConfig(target, options, 'postgresCheckpoint');
  return guardStore(new PostgresCheckpointStore(config.target, config.options));
}

class PostgresCheckpointStore implements CheckpointStore {
  readonly kind = 'postgres';
  readonly persistent = true;
  readonly checkpoint: CheckpointBackend;
  readonly #target: PostgresTarget;
  readonly #options: ResolvedPostgresOptions;
  readonly #scope: PostgresScope;
  #connection: PostgresConnection | null = null;

  constructor(target: PostgresTarget, options: ResolvedPostgresOptions) {
    this.#target = target;
    this.#options = options;
    this.#scope = new PostgresScope(target, options.schema, () => this.#connection);
    this.checkpoint = postgresCheckpointBackend(this.#scope);
  }

  async init(): Promise<void> {
    this.#connection = await openPostgres(this.#target, this.#options, [CHECKPOINT_MIGRATIONS]);
  }

  async close(): Promise<void> {
    const c = this.#connection;
    this.#connection = null;
    if (c) await closePostgres(c);
  }

  async ping(): Promise<void> {
    await this.#scope.wrap('ping', poolQuery(this.#scope.c.pool, 'select 1'));
  }
}
