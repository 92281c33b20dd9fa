import type { StorageDriver } from '../../storage/contract.js';
import { T0, sampleSessionRecord, type SuiteContext } from './context.js';

/** A stored row that cannot be read fails only its own record (opt-in: needs `corruptRow`). */
export function unreadableRowsGroup(t: SuiteContext, corruptRow: (store: StorageDriver, id: string) => Promise<void>): void {
  const { it, expect, create } = t;
  it('returns an unreadable record with readError and every other record intact', async () => {
    await create('a1');
    await create('b2');
    await create('c3');
    await corruptRow(t.store, 'b2');
    const list = await t.sessions.list();
    expect(list.map((r) => r.id)).toEqual(['a1', 'b2', 'c3']);
    expect(list[0]).toEqual({ ...sampleSessionRecord('a1'), version: 1 });
    expect(list[2]).toEqual({ ...sampleSessionRecord('c3'), version: 1 });
    const broken = list[1]!;
    expect(typeof broken.readError).toBe('string');
    expect((broken.readError ?? '').length).toBeGreaterThan(0);
    expect(broken.id).toBe('b2');
  });

  it('keeps other sessions writable next to an unreadable one', async () => {
    await create('a1');
    await create('b2');
    await corruptRow(t.store, 'a1');
    const b = await t.update('b2', { priority: 1, updatedAt: T0 + 1 }, 1);
    expect(b?.version).toBe(2);
    if (t.has('kv')) {
      await t.kv.write('b2', [{ op: 'set', key: 'k', value: 1 }]);
      expect(await t.kv.get('b2', 'k')).toBe(1);
    }
    expect((await t.sessions.list()).filter((r) => r.readError === undefined).map((r) => r.id)).toEqual(['b2']);
  });
}
