import { createHash } from 'node:crypto';
import { quoteIdent } from './postgres-connection.js';

/**
 * The statements of the PostgreSQL checkpoint for one schema. The hot ones are named: pg prepares
 * a named statement once per connection, so a claim or a completion is only executed (no parse,
 * no plan) on every later call. Names carry a hash of the text, so two schemas (or two versions
 * of this package) never share a name for different statements on one connection.
 */
export interface NamedStatement {
  name: string;
  text: string;
}

/** Epoch milliseconds on the database's clock: every expiry is judged by PostgreSQL's `now()`. */
export const NOW = '(SELECT (extract(epoch from now()) * 1000)::bigint)'; // an initplan: computed once per statement
const STATUSES = "('pending', 'failed', 'processing')";
const dead = (t: string) => `(${t}.status = 'processing' AND ${t}.attempts + 1 >= $max)`;

const statement = (text: string): NamedStatement => ({
  name: `multisession_cp_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`,
  text,
});

/** Replaces `$name` placeholders (named, reused) with positional ones. */
function named(sql: string, names: string[]): string {
  return sql.replace(/\$([a-z]+)/g, (m, n: string) => {
    const i = names.indexOf(n);
    return i < 0 ? m : `$${i + 1}`;
  });
}

export type CheckpointStatements = ReturnType<typeof checkpointStatements>;

export function checkpointStatements(schema: string) {
  const S = quoteIdent(schema);
  const T = `${S}.checkpoint_items`;
  const fence = `nextval('${`${S}.checkpoint_fence`.replace(/'/g, "''")}')`;
  const RETURNING = 'RETURNING i.seq, i.key, i.status, i.token, i.avail_at, i.attempts, i.payload, i.priority';
  /** The claimable rows of the stream in claim order, locked (others skip them); a CTE runs it once. */
  const claimable = `SELECT key, priority, avail_at, seq FROM ${T}
       WHERE stream = $1 AND status IN ${STATUSES} AND avail_at <= ${NOW}
       ORDER BY priority DESC, avail_at, seq
       LIMIT $2
       FOR UPDATE SKIP LOCKED`;
  // The hot claim: no CASE per row. An expired lease that used up its attempts comes back with
  // attempts >= max and is then turned dead by `kill` (a compare-and-swap on its new token).
  const claimSet = `attempts = i.attempts + CASE WHEN i.status = 'processing' THEN 1 ELSE 0 END,
       token = ${fence}, status = 'processing', updated_at = ${NOW}`;
  /** The compare-and-swap join: the lease must be current and unexpired. */
  const casFrom = `FROM unnest($2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS v(key, token, owner, n)
     WHERE i.stream = $1 AND i.key = v.key AND i.token = v.token AND i.owner = v.owner
       AND i.status = 'processing' AND i.avail_at > ${NOW}`;
  const casOne = `WHERE i.stream = $1 AND i.key = $2 AND i.token = $3 AND i.owner = $4 AND i.status = 'processing' AND i.avail_at > ${NOW}`;
  const done = `status = 'done', completed_at = ${NOW}, updated_at = ${NOW}, avail_at = ${NOW}`;
  const leaseSet = (t: string, token: string) => `
    attempts = ${t}.attempts + CASE WHEN ${t}.status = 'processing' THEN 1 ELSE 0 END,
    error = CASE WHEN ${dead(t)} THEN 'lease expired ' || (${t}.attempts + 1) || ' times' ELSE ${t}.error END,
    owner = CASE WHEN ${dead(t)} THEN NULL ELSE $owner END,
    token = CASE WHEN ${dead(t)} THEN ${t}.token ELSE ${token} END,
    avail_at = CASE WHEN ${dead(t)} THEN ${NOW} ELSE ${NOW} + $lease::bigint END,
    status = CASE WHEN ${dead(t)} THEN 'dead' ELSE 'processing' END,
    updated_at = ${NOW}`;

  return {
    table: T,
    /** One owner: $1 stream, $2 limit, $3 owner, $4 lease ms. */
    claim: statement(`WITH c AS (${claimable})
     UPDATE ${T} AS i SET ${claimSet}, owner = $3, avail_at = ${NOW} + $4::bigint
     FROM c WHERE i.stream = $1 AND i.key = c.key
     ${RETURNING}`),
    /**
     * A group of claims: $1 stream, $2 total, then per slot (the n-th row in claim order) its
     * owner ($3) and lease ms ($4); RETURNING names the slot, which the caller maps to its request.
     */
    claimGroup: statement(`WITH c AS (${claimable}),
       p AS (SELECT key, row_number() OVER (ORDER BY priority DESC, avail_at, seq) AS slot FROM c)
     UPDATE ${T} AS i SET ${claimSet}, owner = ($3::text[])[p.slot], avail_at = ${NOW} + ($4::bigint[])[p.slot]
     FROM p WHERE i.stream = $1 AND i.key = p.key
     ${RETURNING}, p.slot`),
    kill: statement(`UPDATE ${T} AS i SET status = 'dead', owner = NULL, avail_at = ${NOW}, updated_at = ${NOW},
       error = 'gave up after ' || i.attempts || ' attempts (the last lease expired)'
     FROM unnest($2::text[], $3::bigint[]) AS v(key, token)
     WHERE i.stream = $1 AND i.key = v.key AND i.token = v.token AND i.status = 'processing'`),
    claimKey: statement(
      named(
        `INSERT INTO ${T} AS i (stream, key, status, priority, payload, attempts, owner, token, run_at, avail_at, created_at, updated_at)
     VALUES ($stream, $key, 'processing', 0, $payload::jsonb, 0, $owner, ${fence}, ${NOW}, ${NOW} + $lease::bigint, ${NOW}, ${NOW})
     ON CONFLICT (stream, key) DO UPDATE SET ${leaseSet('i', 'excluded.token')}
     WHERE i.status IN ${STATUSES} AND i.avail_at <= ${NOW}
     ${RETURNING}`,
        ['stream', 'key', 'owner', 'lease', 'payload', 'max'],
      ),
    ),
    add: statement(`INSERT INTO ${T} (stream, key, status, priority, payload, run_at, avail_at, created_at, updated_at)
     SELECT $1, v.key, 'pending', v.priority, v.payload, COALESCE(v.run_at, ${NOW}), COALESCE(v.run_at, ${NOW}), ${NOW}, ${NOW}
     FROM unnest($2::text[], $3::integer[], $4::jsonb[], $5::bigint[]) AS v(key, priority, payload, run_at)
     ON CONFLICT (stream, key) DO NOTHING`),
    /** add() when no item has a priority, payload or runAt: the keys alone. */
    addKeys: statement(`INSERT INTO ${T} (stream, key, status, priority, payload, run_at, avail_at, created_at, updated_at)
     SELECT $1, k, 'pending', 0, NULL, ${NOW}, ${NOW}, ${NOW}, ${NOW} FROM unnest($2::text[]) AS k
     ON CONFLICT (stream, key) DO NOTHING`),
    renew: statement(`UPDATE ${T} AS i SET avail_at = ${NOW} + $5::bigint, updated_at = ${NOW} ${casFrom} RETURNING v.n, i.avail_at`),
    /** One lease: $1 stream, $2 key, $3 token, $4 owner, $5 result (jsonb text or null). */
    completeOne: statement(`UPDATE ${T} AS i SET ${done}, result = $5::jsonb ${casOne}`),
    complete: statement(`UPDATE ${T} AS i SET ${done}, result = ($5::jsonb[])[v.n::int] ${casFrom} RETURNING v.n`),
    completeNoResult: statement(`UPDATE ${T} AS i SET ${done}, result = NULL ${casFrom} RETURNING v.n`),
    release: statement(`UPDATE ${T} AS i SET status = 'pending', owner = NULL, avail_at = i.run_at, updated_at = ${NOW} ${casFrom} RETURNING v.n`),
    fail: statement(`UPDATE ${T} AS i SET attempts = i.attempts + 1, status = $5, error = $6,
       run_at = ${NOW} + $7::bigint, avail_at = ${NOW} + $7::bigint,
       owner = CASE WHEN $5 = 'dead' THEN NULL ELSE i.owner END, updated_at = ${NOW}
     ${casFrom} RETURNING v.n`),
  };
}
