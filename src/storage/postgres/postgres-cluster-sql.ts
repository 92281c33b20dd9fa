import { CHANGE_CHANNEL } from './postgres-change-watch.js';
import { createHash } from 'node:crypto';
import { quoteIdent } from './postgres-connection.js';

/**
 * The statements of the PostgreSQL `cluster` capability for one schema, and the two fragments the
 * other writers share with it: the change-feed lock and the fence check.
 *
 * Lock order (so that none of these statements can deadlock with another): the node row, then
 * session rows, then lease rows (`session_owners`, always in `session_id` order), then the
 * change-feed lock, last, held only until the commit that follows it.
 */

/** Epoch milliseconds on PostgreSQL's clock (never a node's), read when the statement reads it. */
export const CLOCK = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** Change rows kept for nodes that fall behind; one further back reads every session again. */
export const KEEP_CHANGES = 100_000;

export interface NamedStatement {
  name: string;
  text: string;
}

const statement = (text: string): NamedStatement => ({
  name: `multisession_cl_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`,
  text,
});

/**
 * The change feed's ordering lock, as an expression to test `IS NOT NULL` (an init plan: taken
 * once, before the first change row is numbered).
 *
 * `session_changes.seq` is an identity column: values are handed out when a row is inserted but
 * become visible when its transaction commits, and transactions commit in any order. A reader
 * that polls `seq > last` could then see 8 before 7 commits, move on to 8, and never read 7.
 * Every transaction that inserts change rows therefore takes this one transaction-scoped advisory
 * lock right before numbering them, as its last step (after every row lock it takes): the
 * holder numbers, commits, and only then (the lock is released after the commit is visible to new
 * snapshots) can the next writer number its rows. So rows commit in `seq` order and a snapshot
 * that sees a row sees every committed row before it: `seq > last` misses nothing (a rolled-back
 * transaction leaves a gap that is never filled, which is harmless). The identity sequence has
 * cache 1, so a later holder always draws a larger number. Only session writes and ownership
 * changes take it; status, counter, KV and history writes and heartbeats do not.
 *
 * Taking it also announces the change (`pg_notify` on {@link CHANGE_CHANNEL} with the schema as
 * payload, sent when the transaction commits, once per transaction): nodes that LISTEN read the
 * feed at once instead of at their next poll.
 */
export function changeLock(schema: string): string {
  return `(SELECT pg_advisory_xact_lock(hashtext('multisession:${schema}:changes'), 0) FROM (SELECT pg_notify('${CHANGE_CHANNEL}', '${schema}')) AS announced)`;
}

/**
 * Two CTEs for a fenced write, after the caller's CTE `fence_input(id, token)` (the sessions the
 * write touches; `token` is the fence, null for an entry without one). `fenced_sessions` locks
 * their session rows in id order (`FOR KEY SHARE` for writers that only insert child rows, `FOR
 * NO KEY UPDATE` for status writes, which update the session rows), all of them first (the
 * aggregate); then `current_leases` locks `FOR SHARE`, in id order, the lease rows whose token is
 * the fence given. Under READ COMMITTED a lock on a row changed meanwhile re-checks the token on
 * its newest version, so a takeover that committed first makes the write skip, and one that comes
 * later waits for the write's commit. Session rows before lease rows is the order `acquire` and
 * `sessions.delete` (its cascade) lock in, so none of these waits on another in a cycle.
 */
export function fenceCtes(schema: string, lock: 'FOR KEY SHARE' | 'FOR NO KEY UPDATE'): string {
  const S = quoteIdent(schema);
  return `fenced_sessions AS (
       SELECT array_agg(x.id) AS ids FROM (SELECT s.id FROM ${S}.sessions s WHERE s.id IN (SELECT id FROM fence_input) ORDER BY s.id ${lock}) x
     ),
     current_leases AS (
       SELECT o.session_id, o.token FROM ${S}.session_owners o, fenced_sessions f
       WHERE o.session_id = ANY(f.ids) AND (o.session_id, o.token) IN (SELECT id, token FROM fence_input)
       ORDER BY o.session_id FOR SHARE OF o
     )`;
}

/** A condition that is always true, evaluated once before the statement's first row: runs the fence CTEs' locks first. */
export const FENCES_FIRST = '(SELECT count(*) FROM current_leases) >= 0';

export type ClusterStatements = ReturnType<typeof clusterStatements>;

export function clusterStatements(schema: string) {
  const S = quoteIdent(schema);
  const nodes = `${S}.cluster_nodes`;
  const owners = `${S}.session_owners`;
  const changes = `${S}.session_changes`;
  const token = `nextval('${`${S}.session_owner_token`.replace(/'/g, "''")}')`;
  const lock = changeLock(schema);
  /** Change rows for the `session_id`s of CTE `from` (a CTE of its own, run after the statement's row locks). */
  const changed = (from: string) => `changed AS (
       INSERT INTO ${changes} (session_id) SELECT session_id FROM ${from} WHERE ${lock} IS NOT NULL ORDER BY session_id
     )`;
  /** Leases of the node to give up, locked in id order, then deleted (with their change rows). */
  const giveUp = (where: string) => `doomed AS (
       SELECT o.session_id, o.token FROM ${owners} o WHERE ${where} ORDER BY o.session_id FOR UPDATE OF o
     ),
     gone AS (
       DELETE FROM ${owners} o USING doomed d WHERE o.session_id = d.session_id AND o.token = d.token RETURNING o.session_id
     ),
     ${changed('gone')}`;
  /**
   * The candidates: sessions that should run and have no live lease, best first, locked with
   * SKIP LOCKED so that concurrent acquirers take different sessions rather than queue; `member`
   * holds the node row (KEY SHARE) so a takeover of the node id at join waits for this statement.
   */
  const acquire = (ids: string) =>
    statement(`WITH clock AS (SELECT ${CLOCK} AS now),
     member AS (SELECT node_id FROM ${nodes} WHERE node_id = $1 AND incarnation = $2 FOR KEY SHARE),
     cand AS (
       SELECT s.id, s.priority FROM ${S}.sessions s, clock c
       WHERE s.desired_state = 'running' AND EXISTS (SELECT 1 FROM member)${ids}
         AND NOT EXISTS (SELECT 1 FROM ${owners} o WHERE o.session_id = s.id AND o.expires_at > c.now)
       ORDER BY s.priority DESC, s.id
       LIMIT $3
       FOR NO KEY UPDATE OF s SKIP LOCKED
     ),
     won AS (
       INSERT INTO ${owners} AS o (session_id, node_id, token, since, expires_at)
       SELECT k.id, $1::text, ${token}, c.now, c.now + $4::bigint FROM cand k, clock c ORDER BY k.id
       ON CONFLICT (session_id) DO UPDATE
         SET node_id = excluded.node_id, token = ${token}, since = excluded.since, expires_at = excluded.expires_at
         WHERE o.expires_at <= excluded.since
       RETURNING o.session_id, o.token, o.expires_at
     ),
     ${changed('won')}
     SELECT w.session_id, w.token, w.expires_at FROM won w JOIN cand k ON k.id = w.session_id ORDER BY k.priority DESC, k.id`);

  return {
    /**
     * Acquire: $1 node, $2 incarnation, $3 limit, $4 ttl ms. One statement. Two acquirers that
     * pick the same session anyway (one committed between the other's snapshot and its lock)
     * meet in the upsert: the second waits for the first, then finds a live lease and takes
     * nothing. A lease taken over gets a token drawn at the update (the `SET`), after the lease it
     * replaces was committed, so it is larger than that lease's, whatever order the `SELECT`'s draws
     * were in.
     */
    acquire: acquire(''),
    /** Acquire among $5 (ids) only. */
    acquireIds: acquire(' AND s.id = ANY($5::text[])'),
    /**
     * Heartbeat: $1 node, $2 incarnation, $3 ttl ms, $4 running, $5 draining, $6 change rows kept.
     * One statement: the node row, then every live lease of the node (locked in id order, as the
     * fenced writers lock them) renewed, and old change rows pruned. A lease that expired is left
     * for any node to acquire (with a new token); it is not returned.
     */
    heartbeat: statement(`WITH clock AS (SELECT ${CLOCK} AS now),
     beat AS (
       UPDATE ${nodes} n SET last_seen_at = c.now, expires_at = c.now + $3::bigint, running = $4, draining = $5
       FROM clock c WHERE n.node_id = $1 AND n.incarnation = $2 RETURNING c.now
     ),
     held AS (
       SELECT o.session_id FROM ${owners} o, beat b WHERE o.node_id = $1 AND o.expires_at > b.now ORDER BY o.session_id FOR NO KEY UPDATE OF o
     ),
     renewed AS (
       UPDATE ${owners} o SET expires_at = b.now + $3::bigint FROM held h, beat b
       WHERE o.session_id = h.session_id AND o.node_id = $1
       RETURNING o.session_id, o.token, o.expires_at
     ),
     pruned AS (
       DELETE FROM ${changes} WHERE seq <= (SELECT max(seq) FROM ${changes}) - $6::bigint AND EXISTS (SELECT 1 FROM beat)
     )
     SELECT c.now, EXISTS (SELECT 1 FROM beat) AS member, r.session_id, r.token, r.expires_at
     FROM clock c LEFT JOIN renewed r ON true ORDER BY r.session_id`),
    /** Release: $1 node, $2 session ids, $3 tokens (pairs). */
    release: statement(`WITH ${giveUp(`o.node_id = $1 AND (o.session_id, o.token) IN (SELECT * FROM unnest($2::text[], $3::bigint[]))`)}
     SELECT count(*)::int AS n FROM gone`),
    /** Leave: $1 node, $2 incarnation: the node row (if it is this incarnation's), then its leases. */
    leave: statement(`WITH node AS (DELETE FROM ${nodes} WHERE node_id = $1 AND incarnation = $2 RETURNING node_id),
     ${giveUp('o.node_id = $1 AND EXISTS (SELECT 1 FROM node)')}
     SELECT count(*)::int AS n FROM gone`),
    /** Join, first step: $1 node, $2 incarnation, $3 host, $4 pid, $5 max running, $6 ttl ms; a row only when the id was free. */
    joinFresh: statement(`INSERT INTO ${nodes} (node_id, incarnation, host, pid, started_at, last_seen_at, expires_at, running, max_running, draining)
     SELECT $1::text, $2::text, $3::text, $4::int, c.now, c.now, c.now + $6::bigint, 0, $5::int, false FROM (SELECT ${CLOCK} AS now) c
     ON CONFLICT (node_id) DO NOTHING RETURNING started_at AS now`),
    /** Join, the id is taken: the row, locked, and the clock. */
    joinLock: statement(`SELECT n.incarnation, n.host, n.pid, n.last_seen_at, n.expires_at, ${CLOCK} AS now FROM ${nodes} n WHERE n.node_id = $1 FOR UPDATE`),
    /** Join, the id is ours (the same incarnation, or a dead one's): the row, registered again. */
    joinUpdate: statement(`UPDATE ${nodes} SET incarnation = $2, host = $3, pid = $4, started_at = $7, last_seen_at = $7,
       expires_at = $7 + $6::bigint, running = 0, max_running = $5, draining = false WHERE node_id = $1`),
    /** Join, taking over a dead incarnation: its leases released, with change rows. */
    joinTakeover: statement(`WITH ${giveUp('o.node_id = $1')} SELECT count(*)::int AS n FROM gone`),
    nodes: statement(`WITH clock AS (SELECT ${CLOCK} AS now)
     SELECT c.now, n.*, (SELECT count(*)::int FROM ${owners} o WHERE o.node_id = n.node_id AND o.expires_at > c.now) AS leases
     FROM clock c LEFT JOIN ${nodes} n ON true ORDER BY n.node_id`),
    owners: statement(`SELECT o.session_id, o.node_id, o.token, o.since, o.expires_at FROM ${owners} o
     WHERE o.expires_at > ${CLOCK} ORDER BY o.session_id`),
    ownersOf: statement(`SELECT o.session_id, o.node_id, o.token, o.since, o.expires_at FROM ${owners} o
     WHERE o.session_id = ANY($1::text[]) AND o.expires_at > ${CLOCK} ORDER BY o.session_id`),
    countRunnable: statement(`SELECT count(*)::int AS n FROM ${S}.sessions WHERE desired_state = 'running'`),
    /** $1 since, $2 limit: the bounds of the kept rows and the next rows, from one snapshot. */
    changes: statement(`WITH b AS (SELECT min(seq) AS lo, max(seq) AS hi FROM ${changes}),
     r AS (SELECT seq, session_id, node_id, event FROM ${changes} WHERE seq > $1 ORDER BY seq LIMIT $2)
     SELECT b.lo, b.hi, r.seq, r.session_id, r.node_id, r.event FROM b LEFT JOIN r ON true ORDER BY r.seq`),
    /** $1 node, $2 session ids, $3 events (JSON text), in order, under the feed's ordering lock. */
    publish: statement(`INSERT INTO ${changes} (session_id, node_id, event)
     SELECT u.id, $1, u.event FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(id, event, n)
     WHERE ${lock} IS NOT NULL ORDER BY u.n`),
  };
}
