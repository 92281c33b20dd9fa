import type { SuiteContext } from './context.js';

/** `kv.clear`: all, or under a literal prefix (`kv` capability). */
export function kvClearGroup(t: SuiteContext): void {
  const { it, expect, create } = t;
  it('clears every entry and says how many', async () => {
    await create('s1');
    await t.kv.write('s1', ['a', 'b', 'c'].map((key) => ({ op: 'set' as const, key, value: 1 })));
    expect(await t.kv.clear('s1')).toBe(3);
    expect(await t.kv.list('s1')).toEqual([]);
    expect(await t.kv.clear('s1')).toBe(0);
    await t.kv.write('s1', [{ op: 'set', key: 'a', value: 2 }]);
    expect(await t.kv.get('s1', 'a')).toBe(2);
  });

  it('clears only entries under a prefix, taken literally', async () => {
    await create('s1');
    await t.kv.write('s1', ['ctx:1', 'ctx:2', 'auth:1', 'x_1', 'xy1'].map((key) => ({ op: 'set' as const, key, value: 1 })));
    expect(await t.kv.clear('s1', { prefix: 'ctx:' })).toBe(2);
    expect(await t.kv.clear('s1', { prefix: 'x_' })).toBe(1);
    expect((await t.kv.list('s1')).map((e) => e.key)).toEqual(['auth:1', 'xy1']);
  });

  it('returns 0 for a session without entries', async () => {
    await create('s1');
    expect(await t.kv.clear('s1')).toBe(0);
    expect(await t.kv.clear('s1', { prefix: 'a' })).toBe(0);
  });
}
