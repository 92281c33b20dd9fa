import type { StorageDriver } from '../../storage/contract.js';
import { guardStore } from '../../storage/guarded-storage.js';
import { rejectsWithCode } from '../runner.js';
import { T0, sampleSessionRecord, type SuiteContext } from './context.js';

/**
 * Two handles on one store, as two processes would open it (opt-in: needs `reopen`): both see one
 * store, and the compare-and-swap and duplicate-credential guards hold between them.
 */
export function sharedStoreGroup(t: SuiteContext, reopen: (store: StorageDriver) => Promise<StorageDriver>): void {
  const { it, expect, create, must, beforeEach, afterEach } = t;
  let other: StorageDriver;
  beforeEach(async () => {
    other = guardStore(await reopen(t.store));
    await other.init();
  });
  afterEach(async () => {
    await other.close();
  });

  it('shows what one handle writes to the other', async () => {
    await create('a1');
    expect(await other.sessions.get('a1')).toEqual({ ...sampleSessionRecord('a1'), version: 1 });
    if (t.has('kv')) {
      await t.kv.write('a1', [{ op: 'set', key: 'k', value: { v: 1 } }]);
      expect(await other.kv!.get('a1', 'k')).toEqual({ v: 1 });
    }
    if (t.has('counters')) {
      await t.counters.increment([{ sessionId: 'a1', name: 'n', delta: 2 }]);
      expect(await other.counters!.get('a1')).toEqual({ n: 2 });
    }
    await other.sessions.update('a1', { priority: 1, updatedAt: T0 + 1 }, 1);
    expect((await must('a1')).version).toBe(2);
  });

  it('keeps the compare-and-swap between handles', async () => {
    await create('a1');
    const results = await Promise.all([
      t.sessions.update('a1', { metadata: 'one', updatedAt: T0 + 1 }, 1),
      other.sessions.update('a1', { metadata: 'two', updatedAt: T0 + 2 }, 1),
    ]);
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(await other.sessions.update('a1', { priority: 1, updatedAt: T0 + 3 }, 1)).toBeNull();
    expect((await must('a1')).version).toBe(2);
  });

  it('keeps the duplicate-credential guard between handles', async () => {
    const results = await Promise.allSettled([
      create('a1', { credentialsFingerprint: 'same' }),
      other.sessions.create(sampleSessionRecord('b2', { credentialsFingerprint: 'same' })),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await t.sessions.list()).toHaveLength(1);
    await rejectsWithCode(expect, other.sessions.create(sampleSessionRecord('c3', { credentialsFingerprint: 'same' })), 'DUPLICATE_CREDENTIALS');
  });

  it(
    'grows audit ids across handles',
    async () => {
      await t.audit.append([{ at: T0, sessionId: null, action: 'one', actor: null, details: {} }]);
      await other.audit!.append([{ at: T0, sessionId: null, action: 'two', actor: null, details: {} }]);
      await t.audit.append([{ at: T0, sessionId: null, action: 'three', actor: null, details: {} }]);
      const list = await other.audit!.list({});
      expect(list.map((e) => e.action)).toEqual(['three', 'two', 'one']);
      expect(list[0]!.id).toBeGreaterThan(list[1]!.id);
      expect(list[1]!.id).toBeGreaterThan(list[2]!.id);
    },
    ['audit'],
  );

  it('initialises from two handles at once', async () => {
    const third = guardStore(await reopen(t.store));
    const fourth = guardStore(await reopen(t.store));
    try {
      await Promise.all([third.init(), fourth.init(), other.init()]);
      await create('a1');
      expect((await third.sessions.get('a1'))?.id).toBe('a1');
      expect((await fourth.sessions.list()).map((r) => r.id)).toEqual(['a1']);
    } finally {
      await third.close();
      await fourth.close();
    }
  });
}
