import type { JsonValue } from '../../types.js';
import type { SuiteContext } from './context.js';

/** Every JSON value round-trips; values are copies (`kv` capability). */
export function kvValuesGroup(t: SuiteContext): void {
  const { it, expect, create } = t;
  it('round-trips every kind of JSON value', async () => {
    await create('s1');
    const values: Record<string, JsonValue> = {
      str: 'héllo "world" \\ \n ✓ 𝄞',
      empty: '',
      int: 42,
      neg: -7,
      float: 3.25,
      big: 2 ** 53 - 1,
      yes: true,
      no: false,
      nil: null,
      arr: [1, 'two', [3], { four: 4 }],
      obj: { a: { b: { c: [] } }, 'key with spaces': 1 },
      emptyObj: {},
      long: 'x'.repeat(100_000),
    };
    await t.kv.write('s1', Object.entries(values).map(([key, value]) => ({ op: 'set' as const, key, value })));
    for (const [key, value] of Object.entries(values)) expect(await t.kv.get('s1', key)).toEqual(value);
    expect(await t.kv.get('s1', 'nil')).toBeNull();
    expect(await t.kv.get('s1', 'missing')).toBeUndefined();
  });

  it('overwrites, deletes, and applies a batch in order', async () => {
    await create('s1');
    await t.kv.write('s1', [{ op: 'set', key: 'k', value: 1 }]);
    await t.kv.write('s1', [{ op: 'set', key: 'k', value: { v: 2 } }]);
    expect(await t.kv.get('s1', 'k')).toEqual({ v: 2 });
    await t.kv.write('s1', [
      { op: 'set', key: 'a', value: 1 },
      { op: 'delete', key: 'a' },
      { op: 'set', key: 'b', value: 1 },
      { op: 'set', key: 'b', value: 2 },
      { op: 'delete', key: 'never-set' },
    ]);
    expect(await t.kv.get('s1', 'a')).toBeUndefined();
    expect(await t.kv.get('s1', 'b')).toBe(2);
    await t.kv.write('s1', [{ op: 'delete', key: 'k' }]);
    expect(await t.kv.get('s1', 'k')).toBeUndefined();
    await t.kv.write('s1', []);
    expect((await t.kv.list('s1')).map((e) => e.key)).toEqual(['b']);
  });

  it('returns copies: mutating a value read or written changes nothing stored', async () => {
    await create('s1');
    const value = { list: [1, 2], inner: { x: 1 } };
    await t.kv.write('s1', [{ op: 'set', key: 'k', value }]);
    value.list.push(3);
    value.inner.x = 2;
    const read = (await t.kv.get('s1', 'k')) as { list: number[]; inner: { x: number } };
    expect(read).toEqual({ list: [1, 2], inner: { x: 1 } });
    read.list.push(9);
    const [entry] = await t.kv.list('s1');
    (entry!.value as { inner: { x: number } }).inner.x = 5;
    expect(await t.kv.get('s1', 'k')).toEqual({ list: [1, 2], inner: { x: 1 } });
  });
}
