import { rejectsWithCode } from '../runner.js';
import type { SuiteContext } from './context.js';

/** Each session has its own key space (`kv` capability). */
export function kvIsolationGroup(t: SuiteContext): void {
  const { it, expect, create } = t;
  it('keeps each session in its own key space', async () => {
    await create('a1');
    await create('b2');
    await t.kv.write('a1', [{ op: 'set', key: 'auth', value: { who: 'a' } }, { op: 'set', key: 'only-a', value: 1 }]);
    await t.kv.write('b2', [{ op: 'set', key: 'auth', value: { who: 'b' } }]);
    expect(await t.kv.get('a1', 'auth')).toEqual({ who: 'a' });
    expect(await t.kv.get('b2', 'auth')).toEqual({ who: 'b' });
    expect(await t.kv.get('b2', 'only-a')).toBeUndefined();
    expect(await t.kv.list('b2')).toEqual([{ key: 'auth', value: { who: 'b' } }]);
    expect(await t.kv.clear('a1')).toBe(2);
    expect(await t.kv.get('b2', 'auth')).toEqual({ who: 'b' });
    await t.kv.write('a1', [{ op: 'delete', key: 'auth' }]);
    expect(await t.kv.get('b2', 'auth')).toEqual({ who: 'b' });
  });

  it('does not mix sessions whose ids are prefixes of each other', async () => {
    await create('a');
    await create('a1');
    await t.kv.write('a', [{ op: 'set', key: '1:x', value: 'from a' }]);
    await t.kv.write('a1', [{ op: 'set', key: 'x', value: 'from a1' }]);
    expect(await t.kv.list('a')).toEqual([{ key: '1:x', value: 'from a' }]);
    expect(await t.kv.list('a1')).toEqual([{ key: 'x', value: 'from a1' }]);
    expect(await t.kv.get('a', 'x')).toBeUndefined();
  });

  it('throws SessionNotFoundError when writing KV for a missing session', async () => {
    await rejectsWithCode(expect, t.kv.write('ghost', [{ op: 'set', key: 'k', value: 1 }]), 'SESSION_NOT_FOUND');
    expect(await t.kv.get('ghost', 'k')).toBeUndefined();
    await create('ghost');
    expect(await t.kv.list('ghost')).toEqual([]);
  });
}
