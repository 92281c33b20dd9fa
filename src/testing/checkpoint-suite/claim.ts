import { sleep, type CheckpointSuiteContext } from './context.js';

/** `claim`: atomic, by priority then age, one holder at a time. */
export function claimGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open, keys, items } = t;
  it('claims by priority, then age, up to the limit, with the payload', async () => {
    const cp = open();
    await cp.add([{ key: 'low1' }, { key: 'high', priority: 5, payload: 'h' }]);
    await sleep(3);
    await cp.add([{ key: 'low2' }, { key: 'mid', priority: 1 }]);
    const leases = await cp.claim({ owner: 'w1', limit: 3, leaseMs: 10_000 });
    expect(leases.map((l) => l.key)).toEqual(['high', 'mid', 'low1']);
    expect(leases[0]).toMatchObject({ stream: t.stream, key: 'high', owner: 'w1', payload: 'h', priority: 5, attempts: 0 });
    expect(leases[0]!.expiresAt).toBeGreaterThan(Date.now() - 60_000);
    const item = await cp.get('high');
    expect(item).toMatchObject({ status: 'processing', owner: 'w1', token: leases[0]!.token });
    expect(keys(await cp.claim({ owner: 'w2', limit: 10 }))).toEqual(['low2']);
    expect(await cp.claim({ owner: 'w3', limit: 10 })).toEqual([]);
  });

  it('never leases one item to two concurrent claimers', async () => {
    const cp = open();
    await cp.add(items(60));
    const batches = await Promise.all(
      Array.from({ length: 6 }, (_, i) => cp.claim({ owner: `w${i}`, limit: 15, leaseMs: 10_000 })),
    );
    const all = batches.flat().map((l) => l.key);
    expect(all).toHaveLength(60);
    expect(new Set(all).size).toBe(60);
    expect((await cp.stats()).processing).toBe(60);
  });
}
