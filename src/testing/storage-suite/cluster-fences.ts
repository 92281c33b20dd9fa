import type { ClusterStore, NodeRegistration, OwnershipLease } from '../../storage/cluster-contract.js';
import { rejectsWithCode } from '../runner.js';
import { T0, type SuiteContext } from './context.js';

/** A node's registration in the `cluster` group (incarnation `<id>-1` unless given). */
export const node = (nodeId: string, incarnation = `${nodeId}-1`, ttlMs = 60_000): NodeRegistration => ({
  nodeId,
  incarnation,
  host: `host-of-${nodeId}`,
  pid: 4242,
  maxRunning: null,
  ttlMs,
});

export const ids = (leases: readonly OwnershipLease[]): string[] => leases.map((l) => l.sessionId);

/** Polls the store's clock (no fixed sleep) until it is past `at()`; fails after about two seconds of trying. */
export async function untilPast(cluster: ClusterStore, at: () => Promise<number>): Promise<void> {
  const target = await at();
  for (let i = 0; i < 2_000; i++) {
    if ((await cluster.nodes()).now > target) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error(`the store's clock did not pass ${target}`);
}

/** The `cluster` group's fenced writes and change feed. */
export function clusterFencesGroup(t: SuiteContext): void {
  const { it, expect, create, must } = t;
  const running = (id: string) => create(id, { desiredState: 'running' });
  const take = async (nodeId: string, id: string): Promise<number> => {
    const [lease] = await t.cluster.acquire({ nodeId, incarnation: `${nodeId}-1`, limit: 1, ttlMs: 60_000, ids: [id] });
    expect(lease?.sessionId).toBe(id);
    return lease!.token;
  };

  /** Writes status, a transition, a counter and a KV key to `id` with `fence`; true when the KV write was accepted. */
  async function writeAll(id: string, fence: number | undefined, n: number): Promise<boolean> {
    const f = fence === undefined ? {} : { fence };
    await t.sessions.saveStatus([{ id, state: n % 2 ? 'starting' : 'ready', lastActivityAt: T0 + n, ...f }]);
    if (t.has('history')) await t.history.append([{ ...t.transition(id, n), ...f }], 100);
    if (t.has('counters')) await t.counters.increment([{ sessionId: id, name: 'n', delta: 1, ...f }]);
    if (!t.has('kv')) return true;
    try {
      await t.kv.write(id, [{ op: 'set', key: `k${n}`, value: n }, { op: 'delete', key: 'keep' }], fence === undefined ? undefined : { fence });
      return true;
    } catch (err) {
      expect((err as { code?: string }).code).toBe('OWNERSHIP_LOST');
      return false;
    }
  }

  /** What `writeAll` left on `id`. */
  async function written(id: string) {
    const record = await must(id);
    return {
      activity: record.lastActivityAt,
      transitions: t.has('history') ? (await t.history.list(id, 100)).map((e) => e.reason) : [],
      n: t.has('counters') ? ((await t.counters.get(id)).n ?? 0) : 0,
      kv: t.has('kv') ? (await t.kv.list(id)).map((e) => e.key) : [],
    };
  }

  it('lands writes with the current fence or none, and skips (KV: refuses) writes with a stale one', async () => {
    await running('a');
    await running('b');
    if (t.has('kv')) await t.kv.write('a', [{ op: 'set', key: 'keep', value: 0 }]);
    await t.cluster.join(node('n1'));
    await t.cluster.join(node('n2'));
    const stale = await take('n1', 'a');
    await t.cluster.release('n1', [{ sessionId: 'a', token: stale }]);
    const current = await take('n2', 'a');
    const before = await written('a');

    expect(await writeAll('a', stale, 1)).toBe(!t.has('kv'));
    expect(await written('a')).toEqual(before);
    if (t.has('kv')) await rejectsWithCode(expect, t.kv.write('a', [{ op: 'set', key: 'x', value: 1 }], { fence: stale }), 'OWNERSHIP_LOST');
    // A stale entry in a batch skips alone.
    await t.sessions.saveStatus([
      { id: 'a', state: 'failed', fence: stale },
      { id: 'b', state: 'ready', lastActivityAt: T0 + 9 },
    ]);
    expect((await must('a')).state).toBe('stopped');
    expect((await must('b')).lastActivityAt).toBe(T0 + 9);

    expect(await writeAll('a', current, 2)).toBe(true);
    expect(await written('a')).toEqual({
      activity: T0 + 2,
      transitions: t.has('history') ? ['step 2'] : [],
      n: t.has('counters') ? 1 : 0,
      kv: t.has('kv') ? ['k2'] : [],
    });
    expect((await must('a')).state).toBe('ready');

    // No fence: the single-node writes of a manager without a cluster land as before.
    expect(await writeAll('a', undefined, 3)).toBe(true);
    expect((await written('a')).activity).toBe(T0 + 3);
    if (t.has('counters')) expect((await written('a')).n).toBe(2);
    // A fence on a session nobody holds is stale too.
    expect(await writeAll('b', 1, 4)).toBe(!t.has('kv'));
    expect((await must('b')).lastActivityAt).toBe(T0 + 9);
  });

  it('drops the lease with its session; the old token is refused on a session created again with the id', async () => {
    await running('a');
    await t.cluster.join(node('n1'));
    const old = await take('n1', 'a');
    expect(await t.sessions.delete('a')).toBe(true);
    expect(await t.cluster.owners()).toEqual([]);
    expect((await t.cluster.heartbeat({ nodeId: 'n1', incarnation: 'n1-1', running: 1, draining: false, ttlMs: 60_000 })).leases).toEqual([]);
    await running('a');
    const before = await written('a');
    expect(await writeAll('a', old, 1)).toBe(!t.has('kv'));
    expect(await written('a')).toEqual(before);
    const fresh = await take('n1', 'a');
    expect(fresh).toBeGreaterThan(old);
    expect(await writeAll('a', old, 2)).toBe(!t.has('kv'));
    expect(await written('a')).toEqual(before);
    expect(await writeAll('a', fresh, 3)).toBe(true);
    expect((await written('a')).activity).toBe(T0 + 3);
  });

  it('reports created, updated, deleted and re-owned sessions in the order of the changes', async () => {
    const start = await t.cluster.changes(0, 1000);
    expect(start.reset).toBe(false);
    let seq = start.seq;
    const expectNext = async (id: string) => {
      const next = await t.cluster.changes(seq, 1000);
      expect({ ids: next.ids, more: next.more, reset: next.reset }).toEqual({ ids: [id], more: false, reset: false });
      expect(next.seq).toBeGreaterThan(seq);
      seq = next.seq;
    };
    await create('x');
    await expectNext('x');
    await create('y');
    await expectNext('y');
    const x = await t.update('x', { desiredState: 'running', updatedAt: T0 + 1 }, 1);
    await expectNext('x');
    await t.cluster.join(node('n1'));
    const token = await take('n1', 'x');
    await expectNext('x');
    expect(await t.sessions.delete('y')).toBe(true);
    await expectNext('y');
    await t.cluster.release('n1', [{ sessionId: 'x', token }]);
    await expectNext('x');
    const rewritten = await t.sessions.replaceCredentials([{ id: 'x', credentials: 'sealed:new', credentialsFingerprint: 'fp:new', expectedVersion: x.version, updatedAt: T0 + 2 }]);
    expect(rewritten).toHaveLength(1);
    await expectNext('x');

    // Page by page: each page says whether more wait.
    const pages: { ids: string[]; more: boolean }[] = [];
    const ends: number[] = [];
    for (let at = start.seq, more = true; more; ) {
      const page = await t.cluster.changes(at, 2);
      pages.push({ ids: page.ids, more: page.more });
      ends.push(page.seq);
      expect(page.reset).toBe(false);
      ({ seq: at, more } = page);
      expect(pages.length < 10).toBe(true);
    }
    expect(pages).toEqual([
      { ids: ['x', 'y'], more: true },
      { ids: ['x'], more: true },
      { ids: ['y', 'x'], more: true },
      { ids: ['x'], more: false },
    ]);
    // A page that ends on the newest change says so.
    expect(await t.cluster.changes(ends[2]!, 1)).toEqual({ seq, ids: ['x'], events: [], more: false, reset: false });
    expect(await t.cluster.changes(seq, 10)).toEqual({ seq, ids: [], events: [], more: false, reset: false });
    expect(await t.cluster.changes(seq + 1000, 10)).toMatchObject({ ids: [], reset: true });

    // Published events come back in order, with their node, apart from the changed ids.
    await t.cluster.publish('n1', [
      { sessionId: 'x', event: { type: 'session.ready', id: 'x', at: 1 } },
      { sessionId: 'x', event: { type: 'session.message', id: 'x', direction: 'out', message: { text: 'hi' }, at: 2 } },
    ]);
    await t.update('x', { labels: { a: 'b' }, updatedAt: T0 + 3 }, rewritten![0]!.version);
    const after = await t.cluster.changes(seq, 10);
    expect(after.ids).toEqual(['x']);
    expect(after.events).toEqual([
      { sessionId: 'x', nodeId: 'n1', event: { type: 'session.ready', id: 'x', at: 1 } },
      { sessionId: 'x', nodeId: 'n1', event: { type: 'session.message', id: 'x', direction: 'out', message: { text: 'hi' }, at: 2 } },
    ]);
    await rejectsWithCode(expect, t.cluster.publish('bad id!', []), 'VALIDATION');
    await rejectsWithCode(expect, t.cluster.publish('n1', [{ sessionId: '', event: {} }]), 'VALIDATION');
  });
}
