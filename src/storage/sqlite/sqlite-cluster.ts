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
import { splitChanges, type ChangeRow } from '../sql/change-rows.js';
import * as check from '../cluster-checks.js';
import type { SqliteClient } from './sqlite-client.js';
import { run, write, type Open } from './sqlite-open.js';

/** Change rows kept for nodes that fall behind; one further back reads every session again. */
const KEEP_CHANGES = 100_000;

interface NodeRow {
  node_id: string;
  incarnation: string;
  host: string;
  pid: number;
  started_at: number;
  last_seen_at: number;
  expires_at: number;
  running: number;
  max_running: number | null;
  draining: number;
  leases: number;
}

type Statements = ReturnType<typeof prepare>;

function prepare(db: SqliteClient) {
  const candidates = `SELECT s.id FROM sessions s LEFT JOIN session_owners o ON o.session_id = s.id
     WHERE s.desired_state = 'running' AND (o.session_id IS NULL OR o.expires_at <= @now)`;
  return {
    node: db.prepare('SELECT * FROM cluster_nodes WHERE node_id = ?'),
    upsertNode: db.prepare(
      `INSERT INTO cluster_nodes (node_id, incarnation, host, pid, started_at, last_seen_at, expires_at, running, max_running, draining)
       VALUES (@node_id, @incarnation, @host, @pid, @now, @now, @expires_at, 0, @max_running, 0)
       ON CONFLICT (node_id) DO UPDATE SET incarnation = excluded.incarnation, host = excluded.host, pid = excluded.pid,
         started_at = excluded.started_at, last_seen_at = excluded.last_seen_at, expires_at = excluded.expires_at,
         running = 0, max_running = excluded.max_running, draining = 0`,
    ),
    beat: db.prepare(
      `UPDATE cluster_nodes SET last_seen_at = @now, expires_at = @expires_at, running = @running, draining = @draining
       WHERE node_id = @node_id AND incarnation = @incarnation`,
    ),
    // Live leases only: one that expired is left for any node to acquire (with a new token).
    renew: db.prepare(
      'UPDATE session_owners SET expires_at = @expires_at WHERE node_id = @node_id AND expires_at > @now RETURNING session_id, token, expires_at',
    ),
    candidates: db.prepare(`${candidates} ORDER BY s.priority DESC, s.id LIMIT @limit`),
    candidatesOf: db.prepare(`${candidates} AND s.id IN (SELECT value FROM json_each(@ids)) ORDER BY s.priority DESC, s.id LIMIT @limit`),
    tokens: db.prepare('UPDATE cluster_tokens SET last = last + ? WHERE id = 1 RETURNING last'),
    own: db.prepare(
      `INSERT INTO session_owners (session_id, node_id, token, since, expires_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (session_id) DO UPDATE SET node_id = excluded.node_id, token = excluded.token, since = excluded.since, expires_at = excluded.expires_at`,
    ),
    release: db.prepare('DELETE FROM session_owners WHERE session_id = ? AND token = ? AND node_id = ?'),
    leasesOf: db.prepare('SELECT session_id FROM session_owners WHERE node_id = ?'),
    releaseAll: db.prepare('DELETE FROM session_owners WHERE node_id = ?'),
    removeNode: db.prepare('DELETE FROM cluster_nodes WHERE node_id = ? AND incarnation = ?'),
    nodes: db.prepare(
      `SELECT n.*, (SELECT count(*) FROM session_owners o WHERE o.node_id = n.node_id AND o.expires_at > @now) AS leases
       FROM cluster_nodes n ORDER BY n.node_id`,
    ),
    owners: db.prepare('SELECT session_id, node_id, token, since, expires_at FROM session_owners WHERE expires_at > ? ORDER BY session_id'),
    ownersOf: db.prepare(
      'SELECT session_id, node_id, token, since, expires_at FROM session_owners WHERE expires_at > ? AND session_id IN (SELECT value FROM json_each(?)) ORDER BY session_id',
    ),
    runnable: db.prepare("SELECT count(*) AS n FROM sessions WHERE desired_state = 'running'"),
    change: db.prepare('INSERT INTO session_changes (session_id) VALUES (?)'),
    changes: db.prepare('SELECT seq, session_id, node_id, event FROM session_changes WHERE seq > ? ORDER BY seq LIMIT ?'),
    publish: db.prepare('INSERT INTO session_changes (session_id, node_id, event) VALUES (?, ?, ?)'),
    changeBounds: db.prepare('SELECT min(seq) AS lo, max(seq) AS hi FROM session_changes'),
    pruneChanges: db.prepare('DELETE FROM session_changes WHERE seq <= (SELECT max(seq) FROM session_changes) - ?'),
  };
}

/**
 * The cluster capability on one SQLite file: several processes on one machine. The database clock
 * is the machine's clock, which every process on the file shares. Each call is one `BEGIN
 * IMMEDIATE` transaction, so an acquire is atomic against every other process.
 */
export class SqliteCluster implements ClusterStore {
  readonly #open: () => Open;
  #statements: { db: SqliteClient; s: Statements } | null = null;

  constructor(open: () => Open) {
    this.#open = open;
  }

  /** The open store and this capability's statements (prepared once per opening). */
  #s(): { p: Open; s: Statements } {
    const p = this.#open();
    if (this.#statements?.db !== p.c.db) this.#statements = { db: p.c.db, s: prepare(p.c.db) };
    return { p, s: this.#statements.s };
  }

  async join(input: NodeRegistration): Promise<{ now: number }> {
    const node = check.checkRegistration(input);
    const { p, s } = this.#s();
    return write('clusterJoin', p, () => {
      const now = Date.now();
      const row = s.node.get(node.nodeId) as NodeRow | undefined;
      if (row && row.incarnation !== node.incarnation) {
        if (row.expires_at > now) throw new NodeIdInUseError(node.nodeId, `pid ${row.pid} on ${row.host}, seen ${now - row.last_seen_at} ms ago`);
        for (const r of s.leasesOf.all(node.nodeId) as { session_id: string }[]) s.change.run(r.session_id);
        s.releaseAll.run(node.nodeId);
      }
      s.upsertNode.run({ node_id: node.nodeId, incarnation: node.incarnation, host: node.host, pid: node.pid, now, expires_at: now + node.ttlMs, max_running: node.maxRunning });
      return { now };
    });
  }

  async heartbeat(input: NodeHeartbeat): Promise<HeartbeatResult> {
    const beat = check.checkHeartbeat(input);
    const { p, s } = this.#s();
    return write('clusterHeartbeat', p, () => {
      const now = Date.now();
      const expires = now + beat.ttlMs;
      const member = Number(
        s.beat.run({ now, expires_at: expires, running: beat.running, draining: beat.draining ? 1 : 0, node_id: beat.nodeId, incarnation: beat.incarnation }).changes,
      );
      if (!member) return { now, member: false, leases: [] };
      const leases = (s.renew.all({ expires_at: expires, node_id: beat.nodeId, now }) as { session_id: string; token: number; expires_at: number }[]).map(
        (r): OwnershipLease => ({ sessionId: r.session_id, token: r.token, expiresAt: r.expires_at }),
      );
      s.pruneChanges.run(KEEP_CHANGES);
      return { now, member: true, leases };
    });
  }

  async acquire(input: AcquireRequest): Promise<OwnershipLease[]> {
    const req = check.checkAcquire(input);
    if (req.limit === 0 || req.ids?.length === 0) return [];
    const { p, s } = this.#s();
    return write('clusterAcquire', p, () => {
      const now = Date.now();
      const node = s.node.get(req.nodeId) as NodeRow | undefined;
      if (!node || node.incarnation !== req.incarnation) return [];
      const params = { now, limit: req.limit, ...(req.ids ? { ids: JSON.stringify(req.ids) } : {}) };
      const ids = ((req.ids ? s.candidatesOf : s.candidates).all(params) as { id: string }[]).map((r) => r.id);
      if (ids.length === 0) return [];
      const last = (s.tokens.get(ids.length) as { last: number }).last;
      const expiresAt = now + req.ttlMs;
      return ids.map((sessionId, i) => {
        const token = last - ids.length + 1 + i;
        s.own.run(sessionId, req.nodeId, token, now, expiresAt);
        s.change.run(sessionId);
        return { sessionId, token, expiresAt };
      });
    });
  }

  async release(nodeId: string, input: readonly LeaseRef[]): Promise<void> {
    const leases = check.checkRelease(nodeId, input);
    if (leases.length === 0) return;
    const { p, s } = this.#s();
    write('clusterRelease', p, () => {
      for (const l of leases) if (Number(s.release.run(l.sessionId, l.token, nodeId).changes) > 0) s.change.run(l.sessionId);
    });
  }

  async leave(nodeId: string, incarnation: string): Promise<void> {
    check.checkNodeRef(nodeId, incarnation);
    const { p, s } = this.#s();
    write('clusterLeave', p, () => {
      const row = s.node.get(nodeId) as NodeRow | undefined;
      if (!row || row.incarnation !== incarnation) return;
      for (const r of s.leasesOf.all(nodeId) as { session_id: string }[]) s.change.run(r.session_id);
      s.releaseAll.run(nodeId);
      s.removeNode.run(nodeId, incarnation);
    });
  }

  async nodes(): Promise<{ now: number; nodes: NodeRecord[] }> {
    const { s } = this.#s();
    return run('clusterNodes', () => {
      const now = Date.now();
      const nodes = (s.nodes.all({ now }) as NodeRow[]).map(
        (r): NodeRecord => ({
          nodeId: r.node_id,
          incarnation: r.incarnation,
          host: r.host,
          pid: r.pid,
          startedAt: r.started_at,
          lastSeenAt: r.last_seen_at,
          live: r.expires_at > now,
          running: r.running,
          maxRunning: r.max_running,
          draining: r.draining === 1,
          leases: r.leases,
        }),
      );
      return { now, nodes };
    });
  }

  async owners(ids?: readonly string[]): Promise<OwnerRecord[]> {
    const checked = check.checkOwnerIds(ids);
    const { s } = this.#s();
    return run('clusterOwners', () => {
      const now = Date.now();
      const rows = (checked ? s.ownersOf.all(now, JSON.stringify(checked)) : s.owners.all(now)) as {
        session_id: string;
        node_id: string;
        token: number;
        since: number;
        expires_at: number;
      }[];
      return rows.map((r) => ({ sessionId: r.session_id, nodeId: r.node_id, token: r.token, since: r.since, expiresAt: r.expires_at }));
    });
  }

  async countRunnable(): Promise<number> {
    const { s } = this.#s();
    return run('clusterCountRunnable', () => (s.runnable.get() as { n: number }).n);
  }

  async publish(nodeId: string, events: readonly RelayedEvent[]): Promise<void> {
    check.checkPublish(nodeId, events);
    if (events.length === 0) return;
    const { p, s } = this.#s();
    write('clusterPublish', p, () => {
      for (const e of events) s.publish.run(e.sessionId, nodeId, JSON.stringify(e.event));
    });
  }

  async changes(since: number, limit: number): Promise<ChangeBatch> {
    check.checkChanges(since, limit);
    const { s } = this.#s();
    return run('clusterChanges', () => {
      const { lo, hi } = s.changeBounds.get() as { lo: number | null; hi: number | null };
      if (since > (hi ?? 0) || (lo !== null && since < lo - 1)) return { seq: hi ?? 0, ids: [], events: [], more: false, reset: true };
      // One row past the page tells whether more wait.
      const rows = s.changes.all(since, limit + 1) as ChangeRow[];
      const more = rows.length > limit;
      if (more) rows.pop();
      return { seq: rows.length ? rows[rows.length - 1]!.seq : since, ...splitChanges(rows), more, reset: false };
    });
  }
}
