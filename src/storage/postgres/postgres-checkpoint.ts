import type { JsonValue } from '../../types.js';
import type {
  CasResult,
  CheckpointBackend,
  CheckpointItem,
  CheckpointStats,
  CheckpointStatus,
  Lease,
  LeaseRef,
  ListPage,
  NewCheckpointItem,
} from '../../checkpoint/contract.js';
import type { CheckpointStore } from '../contract.js';
import { guardStore } from '../guarded-storage.js';
import { CHECKPOINT_MIGRATIONS } from '../sql/migration-sets.js';
import { pgCode, poolQuery, type PostgresPoolLike } from './postgres-client.js';
import {
  closePostgres,
  openPostgres,
  parsePostgresConfig,
  PostgresScope,
  quoteIdent,
  type PostgresConnection,
  type PostgresOptions,
  type PostgresTarget,
  type ResolvedPostgresOptions,
} from './postgres-connection.js';

/** Epoch milliseconds on the database's clock: every expiry is judged by PostgreSQL's `now()`. */
const NOW = '(SELECT (extract(epoch from now()) * 1000)::bigint)'; // an initplan: computed once per statement
const STATUSES = "('pending', 'failed', 'processing')";
const dead = (t: string) => `(${t}.status = 'processing' AND ${t}.attempts + 1 >= $max)`;

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

/** Replaces `$name` placeholders (named, reused) with positional ones. */
function named(sql: string, names: string[]): string {
  return sql.replace(/\$([a-z]+)/g, (m, n: string) => {
    const i = names.indexOf(n);
    return i < 0 ? m : `$${i + 1}`;
  });
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
  const S = quoteIdent(scope.schema);
  const T = `${S}.checkpoint_items`;
  const fence = `nextval('${`${S}.checkpoint_fence`.replace(/'/g, "''")}')`;
  const pool = (): PostgresPoolLike => scope.c.pool;
  const query = async (operation: string, text: string, values: unknown[]) => {
    try {
      return await poolQuery(pool(), text, values);
    } catch (err) {
      throw scope.error(`checkpoint ${operation}`, err);
    }
  };

  /** Runs one statement, retrying when PostgreSQL breaks a deadlock between two batches. */
  async function run(operation: string, sql: string, values: unknown[]): Promise<any[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await poolQuery(pool(), sql, values)).rows;
      } catch (err) {
        const code = pgCode(err);
        if ((code === '40P01' || code === '40001') && attempt < 5) continue;
        throw scope.error(`checkpoint ${operation}`, err);
      }
    }
  }

  const leaseSet = (t: string, token: string) => `
    attempts = ${t}.attempts + CASE WHEN ${t}.status = 'processing' THEN 1 ELSE 0 END,
    error = CASE WHEN ${dead(t)} THEN 'lease expired ' || (${t}.attempts + 1) || ' times' ELSE ${t}.error END,
    owner = CASE WHEN ${dead(t)} THEN NULL ELSE $owner END,
    token = CASE WHEN ${dead(t)} THEN ${t}.token ELSE ${token} END,
    avail_at = CASE WHEN ${dead(t)} THEN ${NOW} ELSE ${NOW} + $lease::bigint END,
    status = CASE WHEN ${dead(t)} THEN 'dead' ELSE 'processing' END,
    updated_at = ${NOW}`;
  const RETURNING = 'RETURNING i.seq, i.key, i.status, i.token, i.avail_at, i.attempts, i.payload, i.priority';

  // The hot claim: no CASE per row. An expired lease that used up its attempts comes back with
  // attempts >= max and is then turned dead by killSql (a compare-and-swap on its new token).
  const claimSql = named(
    `UPDATE ${T} AS i SET
       attempts = i.attempts + CASE WHEN i.status = 'processing' THEN 1 ELSE 0 END,
       owner = $owner, token = ${fence}, avail_at = ${NOW} + $lease::bigint, status = 'processing', updated_at = ${NOW}
     WHERE (i.stream, i.key) IN (
       SELECT stream, key FROM ${T}
       WHERE stream = $stream AND status IN ${STATUSES} AND avail_at <= ${NOW}
       ORDER BY priority DESC, avail_at, seq
       LIMIT $limit
       FOR UPDATE SKIP LOCKED)
     ${RETURNING}`,
    ['stream', 'owner', 'limit', 'lease'],
  );
  const killSql = `UPDATE ${T} AS i SET status = 'dead', owner = NULL, avail_at = ${NOW}, updated_at = ${NOW},
       error = 'gave up after ' || i.attempts || ' attempts (the last lease expired)'
     FROM unnest($2::text[], $3::bigint[]) AS v(key, token)
     WHERE i.stream = $1 AND i.key = v.key AND i.token = v.token AND i.status = 'processing'`;
  const claimKeySql = named(
    `INSERT INTO ${T} AS i (stream, key, status, priority, payload, attempts, owner, token, run_at, avail_at, created_at, updated_at)
     VALUES ($stream, $key, 'processing', 0, $payload::jsonb, 0, $owner, ${fence}, ${NOW}, ${NOW} + $lease::bigint, ${NOW}, ${NOW})
     ON CONFLICT (stream, key) DO UPDATE SET ${leaseSet('i', 'excluded.token')}
     WHERE i.status IN ${STATUSES} AND i.avail_at <= ${NOW}
     ${RETURNING}`,
    ['stream', 'key', 'owner', 'lease', 'payload', 'max'],
  );
  const addSql = `INSERT INTO ${T} (stream, key, status, priority, payload, run_at, avail_at, created_at, updated_at)
     SELECT $1, v.key, 'pending', v.priority, v.payload, COALESCE(v.run_at, ${NOW}), COALESCE(v.run_at, ${NOW}), ${NOW}, ${NOW}
     FROM unnest($2::text[], $3::integer[], $4::jsonb[], $5::bigint[]) AS v(key, priority, payload, run_at)
     ON CONFLICT (stream, key) DO NOTHING`;
  /** The compare-and-swap join: the lease must be current and unexpired. */
  const casFrom = `FROM unnest($2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS v(key, token, owner, n)
     WHERE i.stream = $1 AND i.key = v.key AND i.token = v.token AND i.owner = v.owner
       AND i.status = 'processing' AND i.avail_at > ${NOW}`;
  const renewSql = `UPDATE ${T} AS i SET avail_at = ${NOW} + $5::bigint, updated_at = ${NOW} ${casFrom} RETURNING v.n, i.avail_at`;
  const completeSql = `UPDATE ${T} AS i SET status = 'done', result = ($5::jsonb[])[v.n::int], completed_at = ${NOW}, updated_at = ${NOW}, avail_at = ${NOW}
     ${casFrom} RETURNING v.n`;
  const completeNoResultSql = `UPDATE ${T} AS i SET status = 'done', result = NULL, completed_at = ${NOW}, updated_at = ${NOW}, avail_at = ${NOW}
     ${casFrom} RETURNING v.n`;
  const releaseSql = `UPDATE ${T} AS i SET status = 'pending', owner = NULL, avail_at = i.run_at, updated_at = ${NOW} ${casFrom} RETURNING v.n`;
  const failSql = `UPDATE ${T} AS i SET attempts = i.attempts + 1, status = $5, error = $6,
       run_at = ${NOW} + $7::bigint, avail_at = ${NOW} + $7::bigint,
       owner = CASE WHEN $5 = 'dead' THEN NULL ELSE i.owner END, updated_at = ${NOW}
     ${casFrom} RETURNING v.n`;

  const toLeases = (stream: string, owner: string, rows: Record<string, unknown>[]): Lease[] =>
    rows
      .filter((r) => r.status === 'processing')
      .sort((a, b) => num(b.priority) - num(a.priority) || num(a.seq) - num(b.seq))
      .map((r) => ({
        stream,
        key: r.key as string,
        owner,
        token: num(r.token),
        expiresAt: num(r.avail_at),
        attempts: num(r.attempts),
        payload: (r.payload ?? null) as JsonValue | null,
        priority: num(r.priority),
      }));

  /** Runs a CAS statement over many leases; returns which ordinals (1-based) won. */
  async function cas(operation: string, sql: string, stream: string, leases: LeaseRef[], extra: unknown[]): Promise<Map<number, Record<string, unknown>>> {
    if (!leases.length) return new Map();
    const rows = await run(operation, sql, [stream, leases.map((l) => l.key), leases.map((l) => l.token), leases.map((l) => l.owner), ...extra]);
    return new Map(rows.map((r: Record<string, unknown>) => [Number(r.n), r]));
  }

  return {
    kind: 'postgres',
    async add(stream, items: NewCheckpointItem[]) {
      let added = 0;
      for (let i = 0; i < items.length; i += 5000) {
        const chunk = items.slice(i, i + 5000);
        const res = await query('add', addSql, [
          stream,
          chunk.map((it) => it.key),
          chunk.map((it) => it.priority ?? 0),
          chunk.map((it) => (it.payload === undefined ? null : JSON.stringify(it.payload))),
          chunk.map((it) => (it.runAt === undefined ? null : Math.round(Number(it.runAt)))),
        ]);
        added += res.rowCount ?? 0;
      }
      return added;
    },

    async claim(stream, o) {
      const rows: Record<string, unknown>[] = await run('claim', claimSql, [stream, o.owner, o.limit, o.leaseMs]);
      const spent = rows.filter((r) => num(r.attempts) >= o.maxAttempts);
      if (!spent.length) return toLeases(stream, o.owner, rows);
      await run('claim', killSql, [stream, spent.map((r) => r.key), spent.map((r) => num(r.token))]);
      return toLeases(stream, o.owner, rows.filter((r) => num(r.attempts) < o.maxAttempts));
    },

    async claimKey(stream, key, o) {
      const rows = await run('claimKey', claimKeySql, [
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
      const won = await cas('renew', renewSql, stream, leases, [leaseMs]);
      return leases.map((_, i) => {
        const r = won.get(i + 1);
        return r ? num(r.avail_at) : null;
      });
    },

    async complete(stream, entries) {
      const withResults = entries.some((e) => e.result !== null);
      const won = withResults
        ? await cas(
            'complete',
            completeSql,
            stream,
            entries.map((e) => e.lease),
            [entries.map((e) => (e.result === null ? null : JSON.stringify(e.result)))],
          )
        : await cas('complete', completeNoResultSql, stream, entries.map((e) => e.lease), []);
      return entries.map((_, i): CasResult => ({ ok: won.has(i + 1) }));
    },

    async fail(stream, lease, change) {
      const won = await cas('fail', failSql, stream, [lease], [change.status, change.error, change.retryInMs]);
      return { ok: won.has(1) };
    },

    async release(stream, leases) {
      const won = await cas('release', releaseSql, stream, leases, []);
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
