import type { JsonValue } from '../../types.js';
import { rejectsWithCode } from '../runner.js';
import type { SuiteContext } from './context.js';

/** `kv.write` applies all its operations or none (`kv` capability). */
export function kvAtomicityGroup(t: SuiteContext): void {
  const { it, expect, create } = t;
  const invalid: [string, unknown][] = [
    ['a function', () => 1],
    ['undefined', undefined],
    ['a function nested in an object', { ok: 1, bad: { fn: () => 1 } }],
    ['a bigint', 10n],
    ['a symbol in an array', [1, Symbol('s')]],
  ];
  for (const [what, bad] of invalid) {
    it(`refuses a batch holding ${what} with ValidationError and writes none of it`, async () => {
      await create('s1');
      await t.kv.write('s1', [{ op: 'set', key: 'keep', value: 'old' }]);
      await rejectsWithCode(
        expect,
        t.kv.write('s1', [
          { op: 'set', key: 'new', value: 1 },
          { op: 'set', key: 'keep', value: 'overwritten' },
          { op: 'delete', key: 'keep' },
          { op: 'set', key: 'bad', value: bad as JsonValue },
        ]),
        'VALIDATION',
      );
      expect(await t.kv.get('s1', 'new')).toBeUndefined();
      expect(await t.kv.get('s1', 'bad')).toBeUndefined();
      expect(await t.kv.get('s1', 'keep')).toBe('old');
      expect(await t.kv.list('s1')).toEqual([{ key: 'keep', value: 'old' }]);
    });
  }

  it('applies a batch to a missing session not at all', async () => {
    await rejectsWithCode(expect, t.kv.write('nobody', [{ op: 'set', key: 'a', value: 1 }]), 'SESSION_NOT_FOUND');
    expect(await t.kv.list('nobody')).toEqual([]);
  });

  it('keeps concurrent batches whole', async () => {
    await create('s1');
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        t.kv.write('s1', [
          { op: 'set', key: 'x', value: i },
          { op: 'set', key: 'y', value: i },
        ]),
      ),
    );
    const x = await t.kv.get('s1', 'x');
    expect(await t.kv.get('s1', 'y')).toBe(x);
  });
}
