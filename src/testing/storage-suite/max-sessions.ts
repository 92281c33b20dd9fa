import type { StorageDriver } from '../../storage/contract.js';
import { guardStore } from '../../storage/guarded-storage.js';
import { rejectsWithCode } from '../runner.js';
import { sampleSessionRecord, type SuiteContext } from './context.js';

/**
 * `sessions.create(record, { maxSessions })`, the store-wide limit of a cluster: counted with the
 * insert as one step, so concurrent creates (through one handle, and through two when the suite
 * has `reopen`) never pass it together. Required of drivers with the `cluster` capability.
 */
export function maxSessionsGroup(t: SuiteContext, reopen?: (store: StorageDriver) => Promise<StorageDriver>): void {
  const { it, expect, create } = t;
  const make = (store: StorageDriver, id: string, maxSessions: number) => store.sessions.create(sampleSessionRecord(id), { maxSessions });

  it('refuses a create past maxSessions with CapacityError and writes nothing', async () => {
    await create('m1');
    await make(t.store, 'm2', 2);
    await rejectsWithCode(expect, make(t.store, 'm3', 2), 'CAPACITY');
    expect((await t.sessions.list()).map((r) => r.id)).toEqual(['m1', 'm2']);
    await rejectsWithCode(expect, make(t.store, 'm3', 0), 'VALIDATION');
    await t.sessions.delete('m1');
    await make(t.store, 'm3', 2);
    expect((await t.sessions.list()).map((r) => r.id)).toEqual(['m2', 'm3']);
  });

  it('lets no more than maxSessions of many concurrent creates win', async () => {
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => make(t.store, `c${i}`, 5)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as { code?: string }).code).toBe('CAPACITY');
    expect(await t.sessions.list()).toHaveLength(5);
  });

  if (!reopen) return;
  it('keeps the limit between two handles creating at once', async () => {
    const other = guardStore(await reopen(t.store));
    await other.init();
    try {
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => [make(t.store, `x${i}`, 6), make(other, `y${i}`, 6)]).flat());
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(6);
      expect(await other.sessions.list()).toHaveLength(6);
    } finally {
      await other.close();
    }
  });
}
