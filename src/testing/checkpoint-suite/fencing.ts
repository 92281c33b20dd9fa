import type { CheckpointSuiteContext } from './context.js';

/** Fencing tokens only grow. */
export function fencingGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open, items } = t;
  it('raises the fencing token with every claim, reclaim and claimKey', async () => {
    const cp = open();
    await cp.add(items(4));
    const first = await cp.claim({ owner: 'a', limit: 2, leaseMs: 10_000 });
    const second = await cp.claim({ owner: 'b', limit: 1, leaseMs: 10_000 });
    const byKey = await cp.claimKey('k0003', { owner: 'c', leaseMs: 10_000 });
    const created = await cp.claimKey('new-key', { owner: 'c', leaseMs: 10_000 });
    const firstMax = Math.max(...first.map((l) => l.token));
    expect(Math.min(...first.map((l) => l.token))).toBeGreaterThan(0);
    expect(second[0]!.token).toBeGreaterThan(firstMax);
    expect(byKey!.token).toBeGreaterThan(second[0]!.token);
    expect(created!.token).toBeGreaterThan(byKey!.token);
    await cp.release(second[0]!);
    const again = await cp.claim({ owner: 'd', limit: 1, leaseMs: 10_000 });
    expect(again[0]!.key).toBe(second[0]!.key);
    expect(again[0]!.token).toBeGreaterThan(created!.token);
  });
}
