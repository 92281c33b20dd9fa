import { NodeIdInUseError } from '../../errors.js';
import type {
  AcquireRequest,
  ChangeBatch,
  ClusterStore,
  HeartbeatResult,
  LeaseRef,
  NodeHeartbeat,
  NodeRecord,
  NodeRegistration,
  OwnerRecord,
  OwnershipLease,
  RelayedEvent,
} from '../cluster-contract.js';
import * as check from '../cluster-checks.js';
import { ChangeWatch } from './postgres-change-watch.js';
import { splitChanges, type ChangeRow } from '../sql/change-rows.js';
import { poolQuery, type PostgresClientLike, type PostgresResult } from './postgres-client.js';
import { clusterStatements, KEEP_CHANGES, type ClusterStatements, type NamedStatement } from './postgres-cluster-sql.js';
import type { PostgresScope } from './postgres-connection.js';

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

interface LeaseRow {
  session_id: string;
  token: string | number;
  expires_at: string | number;
}
const toLease = (r: LeaseRow): OwnershipLease => ({ sessionId: r.session_id, token: num(r.token), expiresAt: num(r.expires_at) });

/**
 * The cluster capability on PostgreSQL: several machines on one schema. Every time is
 * PostgreSQL's clock (`clock_timestamp()`, read once per statement), never a node's. `acquire`,
 * `heartbeat`, `release` and `leave` are one statement each (named: prepared once per connection);
 * only `join` is a short transaction. Lease tokens come from the schema's `session_owner_token`
 * sequence; change rows are numbered in commit order (see `changeLock`). The statements and the
 * lock order that keeps them free of deadlocks are in `postgres-cluster-sql.ts`.
 */
export class PostgresCluster implements ClusterStore {
  readonly #scope: PostgresScope;
  readonly #q: ClusterStatements;
  readonly #watches = new Set<ChangeWatch>();

  constructor(scope: PostgresScope) {
    this.#scope = scope;
    this.#q = clusterStatements(scope.schema);
  }

  async watch(onChange: () => void, onError: (error: unknown) => void): Promise<() => Promise<void>> {
    const watch = new ChangeWatch(this.#scope.c.pool, this.#scope.schema, onChange, onError);
    this.#watches.add(watch);
    if (!(await watch.start())) this.#watches.delete(watch);
    return async () => {
      this.#watches.delete(watch);
      await watch.stop();
    };
  }

  /** Gives the listening connections back (the store is closing). */
  async stopWatches(): Promise<void> {
    const all = [...this.#watches];
    this.#watches.clear();
    await Promise.all(all.map((w) => w.stop()));
  }

  /** One named statement, run again when PostgreSQL picked it as a deadlock or serialization victim. */
  #run(operation: string, st: NamedStatement, values: unknown[]): Promise<PostgresResult> {
    return this.#scope.retry(operation, () => poolQuery(this.#scope.c.pool, st.text, values, st.name));
  }

  async join(input: NodeRegistration): Promise<{ now: number }> {
    const node = check.checkRegistration(input);
    const q = this.#q;
    const base = [node.nodeId, node.incarnation, node.host, node.pid, node.maxRunning, node.ttlMs];
    return this.#scope.retry('clusterJoin', () =>
      this.#transaction(async (client) => {
        for (;;) {
          const fresh = await client.query({ ...q.joinFresh, values: base });
          if (fresh.rows.length > 0) return { now: num(fresh.rows[0].now) };
          const { rows } = await client.query({ ...q.joinLock, values: [node.nodeId] });
          const row = rows[0] as { incarnation: string; host: string; pid: number; last_seen_at: string; expires_at: string; now: string } | undefined;
          if (!row) continue; // it left meanwhile: register afresh
          const now = num(row.now);
          if (row.incarnation !== node.incarnation) {
            if (num(row.expires_at) > now) {
              throw new NodeIdInUseError(node.nodeId, `pid ${row.pid} on ${row.host}, seen ${now - num(row.last_seen_at)} ms ago`);
            }
            // A dead incarnation of this id: the row is ours (the update first, the change rows last).
            await client.query({ ...q.joinUpdate, values: [...base, now] });
            await client.query({ ...q.joinTakeover, values: [node.nodeId] });
          } else {
            await client.query({ ...q.joinUpdate, values: [...base, now] });
          }
          return { now };
        }
      }),
    );
  }

  async heartbeat(input: NodeHeartbeat): Promise<HeartbeatResult> {
    const beat = check.checkHeartbeat(input);
    const { rows } = await this.#run('clusterHeartbeat', this.#q.heartbeat, [
      beat.nodeId,
      beat.incarnation,
      beat.ttlMs,
      beat.running,
      beat.draining,
      KEEP_CHANGES,
    ]);
    const first = rows[0] as { now: string; member: boolean };
    const leases = (rows as (LeaseRow & { session_id: string | null })[]).filter((r) => r.session_id !== null).map(toLease);
    return { now: num(first.now), member: first.member, leases };
  }

  async acquire(input: AcquireRequest): Promise<OwnershipLease[]> {
    const req = check.checkAcquire(input);
    if (req.limit === 0 || req.ids?.length === 0) return [];
    const values: unknown[] = [req.nodeId, req.incarnation, req.limit, req.ttlMs];
    const { rows } = req.ids
      ? await this.#run('clusterAcquire', this.#q.acquireIds, [...values, req.ids])
      : await this.#run('clusterAcquire', this.#q.acquire, values);
    return (rows as LeaseRow[]).map(toLease);
  }

  async release(nodeId: string, input: readonly LeaseRef[]): Promise<void> {
    const leases = check.checkRelease(nodeId, input);
    if (leases.length === 0) return;
    await this.#run('clusterRelease', this.#q.release, [nodeId, leases.map((l) => l.sessionId), leases.map((l) => l.token)]);
  }

  async leave(nodeId: string, incarnation: string): Promise<void> {
    check.checkNodeRef(nodeId, incarnation);
    await this.#run('clusterLeave', this.#q.leave, [nodeId, incarnation]);
  }

  async nodes(): Promise<{ now: number; nodes: NodeRecord[] }> {
    const { rows } = await this.#run('clusterNodes', this.#q.nodes, []);
    const nodes = (rows as Record<string, unknown>[])
      .filter((r) => r.node_id !== null)
      .map(
        (r): NodeRecord => ({
          nodeId: r.node_id as string,
          incarnation: r.incarnation as string,
          host: r.host as string,
          pid: num(r.pid),
          startedAt: num(r.started_at),
          lastSeenAt: num(r.last_seen_at),
          live: num(r.expires_at) > num(r.now),
          running: num(r.running),
          maxRunning: numOrNull(r.max_running),
          draining: r.draining === true,
          leases: num(r.leases),
        }),
      );
    return { now: num((rows[0] as { now: string }).now), nodes };
  }

  async owners(ids?: readonly string[]): Promise<OwnerRecord[]> {
    const checked = check.checkOwnerIds(ids);
    if (checked?.length === 0) return [];
    const { rows } = checked ? await this.#run('clusterOwners', this.#q.ownersOf, [checked]) : await this.#run('clusterOwners', this.#q.owners, []);
    return (rows as (LeaseRow & { node_id: string; since: string })[]).map((r) => ({
      sessionId: r.session_id,
      nodeId: r.node_id,
      token: num(r.token),
      since: num(r.since),
      expiresAt: num(r.expires_at),
    }));
  }

  async countRunnable(): Promise<number> {
    const { rows } = await this.#run('clusterCountRunnable', this.#q.countRunnable, []);
    return num((rows[0] as { n: number }).n);
  }

  async changes(since: number, limit: number): Promise<ChangeBatch> {
    check.checkChanges(since, limit);
    // One row past the page tells whether more wait.
    const { rows } = await this.#run('clusterChanges', this.#q.changes, [since, limit + 1]);
    const bounds = rows[0] as { lo: string | null; hi: string | null };
    const lo = numOrNull(bounds.lo);
    const hi = numOrNull(bounds.hi) ?? 0;
    // Kept rows start at `lo`: a reader from before it may have missed pruned rows. (A transaction
    // rolled back right after numbering its rows leaves a gap, which may make this answer `reset`
    // when nothing was pruned: a needless full read, never a missed change.)
    if (since > hi || (lo !== null && since < lo - 1)) return { seq: hi, ids: [], events: [], more: false, reset: true };
    const changed = (rows as (Omit<ChangeRow, 'seq'> & { seq: string | null })[]).filter((r) => r.seq !== null);
    const more = changed.length > limit;
    if (more) changed.pop();
    const last = changed.at(-1);
    return { seq: last ? num(last.seq) : since, ...splitChanges(changed as unknown as ChangeRow[]), more, reset: false };
  }

  async publish(nodeId: string, events: readonly RelayedEvent[]): Promise<void> {
    check.checkPublish(nodeId, events);
    if (events.length === 0) return;
    await this.#run('clusterPublish', this.#q.publish, [nodeId, events.map((e) => e.sessionId), events.map((e) => JSON.stringify(e.event))]);
  }

  /** `fn` in one transaction on one client of the pool (rolled back when it throws; a client that cannot roll back is discarded). */
  async #transaction<T>(fn: (client: PostgresClientLike) => Promise<T>): Promise<T> {
    const client = await this.#scope.c.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw err;
    } finally {
      client.release(broken);
    }
  }
}
