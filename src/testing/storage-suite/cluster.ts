import type { ClusterStore, OwnershipLease } from '../../storage/cluster-contract.js';
import type { StorageDriver } from '../../storage/contract.js';
import { guardStore } from '../../storage/guarded-storage.js';
import { rejectsWithCode } from '../runner.js';
import { clusterFencesGroup, ids, node, untilPast } from './cluster-fences.js';
import type { SuiteContext } from './context.js';

/**
 * The `cluster` capability (see the invariants in `cluster-contract.ts`): nodes, ownership leases
 * by the database clock with tokens that only grow, fenced writes and the change feed. Two nodes
 * acquiring at once use two handles on the store when the suite has `reopen`.
 */
export function clusterGroup(t: SuiteContext, reopen?: (store: StorageDriver) => Promise<StorageDriver>): void {
  const { it, expect, create } = t;
  const running = (id: string, priority = 0) => create(id, { desiredState: 'running', priority });
  const acquire = (c: ClusterStore, nodeId: string, limit = 100, extra: { ttlMs?: number; ids?: string[] } = {}) =>
    c.acquire({ nodeId, incarnation: `${nodeId}-1`, limit, ttlMs: extra.ttlMs ?? 60_000, ...(extra.ids ? { ids: extra.ids } : {}) });
  const beat = (nodeId: string, incarnation = `${nodeId}-1`, ttlMs = 60_000) =>
    t.cluster.heartbeat({ nodeId, incarnation, running: 0, draining: false, ttlMs });

  it('registers a node and lists it live, with the database clock', async () => {
    const { now } = await t.cluster.join({ ...node('n1'), maxRunning: 5 });
    expect(Number.isSafeInteger(now)).toBe(true);
    const listed = await t.cluster.nodes();
    expect(listed.now >= now).toBe(true);
    expect(listed.nodes).toHaveLength(1);
    expect(listed.nodes[0]).toMatchObject({ nodeId: 'n1', incarnation: 'n1-1', host: 'host-of-n1', pid: 4242, live: true, running: 0, maxRunning: 5, draining: false, leases: 0 });
    expect(listed.nodes[0]!.startedAt).toBe(now);
    await t.cluster.join(node('n0'));
    const after = await t.cluster.heartbeat({ nodeId: 'n1', incarnation: 'n1-1', running: 3, draining: true, ttlMs: 60_000 });
    expect(after.member).toBe(true);
    expect((await t.cluster.nodes()).nodes.map((n) => [n.nodeId, n.running, n.draining, n.lastSeenAt >= now])).toEqual([
      ['n0', 0, false, true],
      ['n1', 3, true, true],
    ]);
  });

  it('refuses a second live incarnation of a node id with NodeIdInUseError, and lets the same one join again', async () => {
    await t.cluster.join(node('n1'));
    await rejectsWithCode(expect, t.cluster.join(node('n1', 'n1-2')), 'NODE_ID_IN_USE');
    expect((await t.cluster.nodes()).nodes.map((n) => n.incarnation)).toEqual(['n1-1']);
    await t.cluster.join(node('n1')); // a restart of the same incarnation
    expect((await beat('n1')).member).toBe(true);
    expect((await beat('n1', 'n1-2')).member).toBe(false);
  });

  it('takes over the id of a dead incarnation and releases its leases', async () => {
    await running('a');
    await t.cluster.join(node('n1', 'n1-1', 1)); // its row expires at once; its lease below does not
    expect(ids(await acquire(t.cluster, 'n1'))).toEqual(['a']);
    expect((await t.cluster.owners()).map((o) => o.nodeId)).toEqual(['n1']);
    const { seq } = await t.cluster.changes(0, 1000);
    await untilPast(t.cluster, async () => (await t.cluster.nodes()).nodes[0]!.lastSeenAt + 1);
    expect((await t.cluster.nodes()).nodes[0]!.live).toBe(false);
    await t.cluster.join(node('n1', 'n1-2'));
    expect(await t.cluster.owners()).toEqual([]);
    expect((await t.cluster.changes(seq, 1000)).ids).toEqual(['a']);
    expect((await beat('n1', 'n1-1')).member).toBe(false);
    expect(await beat('n1', 'n1-2')).toMatchObject({ member: true, leases: [] });
    await t.cluster.join(node('n2'));
    expect(ids(await acquire(t.cluster, 'n2'))).toEqual(['a']);
  });

  it('acquires only sessions that should run, by priority then id, up to the limit and among ids', async () => {
    await running('low', 1);
    await running('mid-b', 5);
    await running('mid-a', 5);
    await running('high', 9);
    await create('off', { desiredState: 'stopped', priority: 10 });
    await t.cluster.join(node('n1'));
    await t.cluster.join(node('n2'));
    expect(await t.cluster.countRunnable()).toBe(4);
    const first = await acquire(t.cluster, 'n1', 2);
    expect(ids(first).sort()).toEqual(['high', 'mid-a']);
    const { now } = await t.cluster.nodes();
    for (const lease of first) {
      expect(Number.isSafeInteger(lease.token) && lease.token > 0).toBe(true);
      expect(lease.expiresAt > now).toBe(true);
    }
    expect(await acquire(t.cluster, 'n2', 0)).toEqual([]);
    expect(await acquire(t.cluster, 'n2', 5, { ids: [] })).toEqual([]);
    expect(ids(await acquire(t.cluster, 'n2', 5, { ids: ['off', 'high', 'low', 'nobody'] }))).toEqual(['low']);
    expect(ids(await acquire(t.cluster, 'n1', 10))).toEqual(['mid-b']);
    expect(await acquire(t.cluster, 'n2', 10)).toEqual([]);
    const owners = await t.cluster.owners();
    expect(owners.map((o) => [o.sessionId, o.nodeId])).toEqual([
      ['high', 'n1'],
      ['low', 'n2'],
      ['mid-a', 'n1'],
      ['mid-b', 'n1'],
    ]);
    expect((await t.cluster.owners(['low', 'off'])).map((o) => o.sessionId)).toEqual(['low']);
    expect((await t.cluster.nodes()).nodes.map((n) => [n.nodeId, n.leases])).toEqual([
      ['n1', 3],
      ['n2', 1],
    ]);
    // An acquire from an incarnation that is not the node's takes nothing.
    await running('late', 1);
    expect(await t.cluster.acquire({ nodeId: 'n1', incarnation: 'n1-old', limit: 5, ttlMs: 60_000 })).toEqual([]);
    expect(await t.cluster.acquire({ nodeId: 'n3', incarnation: 'n3-1', limit: 5, ttlMs: 60_000 })).toEqual([]);
  });

  it('never lets two nodes acquiring at once both win a session', async () => {
    const other = reopen ? guardStore(await reopen(t.store)) : t.store;
    try {
      await other.init();
      const second = other.cluster!;
      await t.cluster.join(node('n1'));
      await second.join(node('n2'));
      const won = new Map<string, OwnershipLease & { nodeId: string }>();
      for (let round = 0; round < 20; round++) {
        for (const id of ['a', 'b', 'c']) await running(`r${String(round).padStart(2, '0')}-${id}`, round % 3);
        const [one, two] = await Promise.all([acquire(t.cluster, 'n1', 2), acquire(second, 'n2', 2)]);
        const overlap = ids(one!).filter((id) => ids(two!).includes(id));
        expect(overlap).toEqual([]);
        for (const l of one!) won.set(l.sessionId, { ...l, nodeId: 'n1' });
        for (const l of two!) won.set(l.sessionId, { ...l, nodeId: 'n2' });
      }
      const owners = await t.cluster.owners();
      expect(owners.length).toBe(won.size);
      for (const o of owners) expect({ nodeId: o.nodeId, token: o.token }).toEqual({ nodeId: won.get(o.sessionId)!.nodeId, token: won.get(o.sessionId)!.token });
      expect(new Set(owners.map((o) => o.token)).size).toBe(owners.length);
      // Whatever neither took is left for the next acquire: every session is owned once in the end.
      await acquire(t.cluster, 'n1', 100);
      expect((await t.cluster.owners()).length).toBe(60);
    } finally {
      if (other !== t.store) await other.close();
    }
  });

  it('renews and returns the leases a node holds; an unknown node or incarnation is no member', async () => {
    await running('a');
    await running('b');
    await running('c');
    await t.cluster.join(node('n1'));
    const bySession = (a: OwnershipLease, b: OwnershipLease) => (a.sessionId < b.sessionId ? -1 : 1);
    const held = (await acquire(t.cluster, 'n1', 2, { ttlMs: 5_000 })).sort(bySession);
    const renewed = await beat('n1', 'n1-1', 120_000);
    expect(renewed.member).toBe(true);
    const leases = [...renewed.leases].sort(bySession);
    expect(leases.map((l) => [l.sessionId, l.token])).toEqual(held.map((l) => [l.sessionId, l.token]));
    for (const l of leases) expect(l.expiresAt >= renewed.now + 120_000).toBe(true);
    expect((await t.cluster.owners()).map((o) => o.expiresAt)).toEqual(leases.map((l) => l.expiresAt));
    expect(await beat('n1', 'n1-2')).toMatchObject({ member: false, leases: [] });
    expect(await beat('nobody')).toMatchObject({ member: false, leases: [] });
    // Those calls renewed nothing.
    expect((await t.cluster.owners()).map((o) => o.expiresAt)).toEqual(leases.map((l) => l.expiresAt));
  });

  it('gives a lease taken again a larger token: after a release, and after the session is deleted and created again', async () => {
    await running('a');
    await t.cluster.join(node('n1'));
    await t.cluster.join(node('n2'));
    const [first] = await acquire(t.cluster, 'n1');
    await t.cluster.release('n1', [first!]);
    const [second] = await acquire(t.cluster, 'n2');
    expect(second!.token).toBeGreaterThan(first!.token);
    await t.sessions.delete('a');
    await running('a');
    const [third] = await acquire(t.cluster, 'n1');
    expect(third!.token).toBeGreaterThan(second!.token);
  });

  it('lets another node acquire a released lease at once; a release with a stale token or another node changes nothing', async () => {
    await running('a');
    await t.cluster.join(node('n1'));
    await t.cluster.join(node('n2'));
    const [lease] = await acquire(t.cluster, 'n1');
    expect(await acquire(t.cluster, 'n2')).toEqual([]);
    await t.cluster.release('n1', [{ sessionId: 'a', token: lease!.token + 1000 }]);
    await t.cluster.release('n2', [lease!]);
    await t.cluster.release('n1', []);
    expect(await acquire(t.cluster, 'n2')).toEqual([]);
    await t.cluster.release('n1', [lease!]);
    expect(await t.cluster.owners()).toEqual([]);
    const [taken] = await acquire(t.cluster, 'n2');
    expect(taken!.sessionId).toBe('a');
    await t.cluster.release('n1', [lease!]); // n1's old lease: nothing of n2's goes
    expect((await t.cluster.owners()).map((o) => [o.nodeId, o.token])).toEqual([['n2', taken!.token]]);
  });

  it('releases every lease of a node that leaves, and removes it', async () => {
    await running('a');
    await running('b');
    await t.cluster.join(node('n1'));
    await t.cluster.join(node('n2'));
    expect(await acquire(t.cluster, 'n1')).toHaveLength(2);
    await t.cluster.leave('n1', 'n1-other'); // not this incarnation: nothing happens
    expect((await t.cluster.owners()).map((o) => o.nodeId)).toEqual(['n1', 'n1']);
    await t.cluster.leave('n1', 'n1-1');
    expect((await t.cluster.nodes()).nodes.map((n) => n.nodeId)).toEqual(['n2']);
    expect(await t.cluster.owners()).toEqual([]);
    expect((await beat('n1')).member).toBe(false);
    expect(ids(await acquire(t.cluster, 'n2')).sort()).toEqual(['a', 'b']);
    await t.cluster.leave('nobody', 'x');
  });

  it('gives an expired lease to another node with a larger token; the old owner no longer gets it back', async () => {
    await running('a');
    await t.cluster.join(node('n1'));
    await t.cluster.join(node('n2'));
    const [old] = await acquire(t.cluster, 'n1', 1, { ttlMs: 1 });
    await untilPast(t.cluster, async () => old!.expiresAt);
    expect(await t.cluster.owners()).toEqual([]);
    expect((await t.cluster.nodes()).nodes.map((n) => n.leases)).toEqual([0, 0]);
    // An expired lease is not renewed: the heartbeat does not return it.
    expect((await beat('n1')).leases).toEqual([]);
    const [taken] = await acquire(t.cluster, 'n2');
    expect(taken!.sessionId).toBe('a');
    expect(taken!.token).toBeGreaterThan(old!.token);
    expect((await beat('n1')).leases).toEqual([]);
    expect(ids((await beat('n2')).leases)).toEqual(['a']);
    expect(await acquire(t.cluster, 'n1')).toEqual([]);
  });

  clusterFencesGroup(t);

  it('refuses bad input with ValidationError and writes nothing', async () => {
    await running('a');
    const { seq } = await t.cluster.changes(0, 1000);
    await rejectsWithCode(expect, t.cluster.join(node('bad id!')), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.join(node('n1', 'n1-1', 0)), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.join({ ...node('n1'), incarnation: '' }), 'VALIDATION');
    expect((await t.cluster.nodes()).nodes).toEqual([]);
    await t.cluster.join(node('n1'));
    await rejectsWithCode(expect, t.cluster.acquire({ nodeId: 'n1', incarnation: 'n1-1', limit: -1, ttlMs: 60_000 }), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.acquire({ nodeId: 'n1', incarnation: 'n1-1', limit: 1, ttlMs: 0 }), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.acquire({ nodeId: 'bad id!', incarnation: 'n1-1', limit: 1, ttlMs: 60_000 }), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.heartbeat({ nodeId: 'n1', incarnation: 'n1-1', running: -1, draining: false, ttlMs: 60_000 }), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.heartbeat({ nodeId: 'n1', incarnation: 'n1-1', running: 0, draining: false, ttlMs: 0 }), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.release('bad id!', []), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.release('n1', [{ sessionId: 'a', token: 0 }]), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.leave('bad id!', 'n1-1'), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.changes(-1, 10), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.changes(0, 0), 'VALIDATION');
    expect(await t.cluster.owners()).toEqual([]);
    expect((await t.cluster.nodes()).nodes.map((n) => [n.nodeId, n.leases])).toEqual([['n1', 0]]);
    expect(await t.cluster.changes(seq, 1000)).toMatchObject({ seq, ids: [], reset: false });
  });
}
