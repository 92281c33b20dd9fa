import type { SuiteContext } from './context.js';

/** Per-session counters (`counters` capability). */
export function statsGroup(t: SuiteContext): void {
  const { it, expect, create } = t;
  it('creates counters on first use and adds deltas', async () => {
    await create('s1');
    expect(await t.counters.get('s1')).toEqual({});
    await t.counters.increment([
      { sessionId: 's1', name: 'starts', delta: 1 },
      { sessionId: 's1', name: 'messagesIn', delta: 5 },
      { sessionId: 's1', name: 'starts', delta: 2 },
    ]);
    await t.counters.increment([{ sessionId: 's1', name: 'messagesIn', delta: -1 }]);
    await t.counters.increment([{ sessionId: 's1', name: 'bids', delta: 0 }]);
    const stats = await t.counters.get('s1');
    expect(stats).toEqual({ starts: 3, messagesIn: 4, bids: 0 });
    expect(typeof stats.starts).toBe('number');
  });

  it('keeps counters per session and skips missing sessions', async () => {
    await create('a1');
    await create('b2');
    await t.counters.increment([
      { sessionId: 'a1', name: 'errors', delta: 1 },
      { sessionId: 'ghost', name: 'errors', delta: 100 },
      { sessionId: 'b2', name: 'errors', delta: 10 },
    ]);
    expect(await t.counters.get('a1')).toEqual({ errors: 1 });
    expect(await t.counters.get('b2')).toEqual({ errors: 10 });
    expect(await t.counters.get('ghost')).toEqual({});
    await create('ghost');
    expect(await t.counters.get('ghost')).toEqual({});
  });

  it('loses no increment under concurrency', async () => {
    await create('s1');
    await Promise.all(Array.from({ length: 20 }, () => t.counters.increment([{ sessionId: 's1', name: 'n', delta: 1 }])));
    expect(await t.counters.get('s1')).toEqual({ n: 20 });
  });

  it('returns a copy of the counters', async () => {
    await create('s1');
    await t.counters.increment([{ sessionId: 's1', name: 'n', delta: 1 }]);
    const stats = await t.counters.get('s1');
    stats.n = 99;
    expect(await t.counters.get('s1')).toEqual({ n: 1 });
  });
}
