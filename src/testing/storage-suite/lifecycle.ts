import type { SuiteContext } from './context.js';

/** `init` is idempotent and keeps the data; `close` is idempotent. */
export function lifecycleGroup(t: SuiteContext): void {
  const { it, expect, create, must } = t;
  it('init is idempotent and keeps the data', async () => {
    await create('s1');
    if (t.has('kv')) await t.kv.write('s1', [{ op: 'set', key: 'k', value: 1 }]);
    await t.store.init();
    await t.store.init();
    await t.store.ping();
    expect((await must('s1')).version).toBe(1);
    if (t.has('kv')) expect(await t.kv.get('s1', 'k')).toBe(1);
  });

  it('close is idempotent', async () => {
    await t.store.close();
    await t.store.close();
    expect(typeof t.store.kind).toBe('string');
    expect(typeof t.store.persistent).toBe('boolean');
  });
}
