import type { CheckpointSuiteContext } from './context.js';

/** `get`, `list`, `stats`, `purge`. */
export function inspectGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open, items } = t;
  it('lists by key a page at a time, filters by status, and counts by status', async () => {
    const cp = open();
    await cp.add(items(7));
    const [l0, l1] = await cp.claim({ owner: 'w', limit: 2, leaseMs: 10_000 });
    await cp.complete(l0!);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await cp.list({ limit: 3, cursor });
      expect(page.items.length).toBeGreaterThan(0);
      seen.push(...page.items.map((i) => i.key));
      cursor = page.cursor;
    } while (cursor);
    expect(seen).toEqual(items(7).map((i) => i.key));
    expect((await cp.list({ status: 'processing' })).items.map((i) => i.key)).toEqual([l1!.key]);
    expect(await cp.list({ status: 'dead' })).toEqual({ items: [], cursor: null });
    const stats = await cp.stats();
    expect(stats).toMatchObject({ pending: 5, processing: 1, done: 1, failed: 0, dead: 0, total: 7 });
    expect(stats.oldestPendingAgeMs === null).toBe(false);
  });

  it('purges finished items by status and age', async () => {
    const cp = open();
    await cp.add(items(3));
    const leases = await cp.claim({ owner: 'w', limit: 2 });
    await cp.completeMany(leases.map((lease) => ({ lease })));
    expect(await cp.purge({ status: 'done', olderThanMs: 3_600_000 })).toBe(0);
    expect(await cp.purge({ status: 'done' })).toBe(2);
    expect(await cp.stats()).toMatchObject({ total: 1, pending: 1, done: 0 });
    expect(await cp.get(leases[0]!.key)).toBeNull();
  });
}
