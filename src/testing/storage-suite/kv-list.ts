import type { SuiteContext } from './context.js';

/** `kv.list`: ordered by key, literal prefixes (`kv` capability). */
export function kvListGroup(t: SuiteContext): void {
  const { it, expect, create } = t;
  it('lists entries ordered by key', async () => {
    await create('s1');
    await t.kv.write('s1', ['b', 'a2', 'a10', 'a1', 'c'].map((key, i) => ({ op: 'set' as const, key, value: i })));
    const list = await t.kv.list('s1');
    expect(list.map((e) => e.key)).toEqual(['a1', 'a10', 'a2', 'b', 'c']);
    expect(list[0]).toEqual({ key: 'a1', value: 3 });
  });

  it('filters by prefix, in order', async () => {
    await create('s1');
    await t.kv.write('s1', ['hist:2', 'auth:x', 'hist:1', 'hist', 'histx:1'].map((key) => ({ op: 'set' as const, key, value: key })));
    expect((await t.kv.list('s1', { prefix: 'hist:' })).map((e) => e.key)).toEqual(['hist:1', 'hist:2']);
    expect((await t.kv.list('s1', { prefix: 'hist' })).map((e) => e.key)).toEqual(['hist', 'hist:1', 'hist:2', 'histx:1']);
    expect(await t.kv.list('s1', { prefix: 'zzz' })).toEqual([]);
    expect(await t.kv.list('s1', { prefix: '' })).toHaveLength(5);
    expect(await t.kv.list('s1', {})).toHaveLength(5);
  });

  it('treats _ % and \\ in a prefix literally', async () => {
    await create('s1');
    await t.kv.write('s1', ['a_1', 'ab1', 'a%1', 'a%x', 'aZZ', 'c\\d', 'cd'].map((key) => ({ op: 'set' as const, key, value: 1 })));
    expect((await t.kv.list('s1', { prefix: 'a_' })).map((e) => e.key)).toEqual(['a_1']);
    expect((await t.kv.list('s1', { prefix: 'a%' })).map((e) => e.key)).toEqual(['a%1', 'a%x']);
    expect((await t.kv.list('s1', { prefix: 'c\\' })).map((e) => e.key)).toEqual(['c\\d']);
  });

  it('lists nothing for a session without entries', async () => {
    await create('s1');
    expect(await t.kv.list('s1')).toEqual([]);
    expect(await t.kv.list('missing')).toEqual([]);
  });
}
