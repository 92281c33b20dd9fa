import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storageConformanceSuite } from 'multisession/testing';
import { memoryStorage } from '../src/storage/memory.js';
import type { StorageDriver } from '../src/storage/driver.js';
import { sampleSessionRecord } from '../src/testing/storage-suite.js';

storageConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  async () => {
    const store = memoryStorage();
    await store.init();
    return store;
  },
  { name: 'memory' },
);

describe('memoryStorage specifics', () => {
  let store: StorageDriver;
  beforeEach(async () => {
    store = memoryStorage();
    await store.init();
  });

  it('is the non-persistent memory kind', () => {
    expect(store.kind).toBe('memory');
    expect(store.persistent).toBe(false);
  });

  it('refuses bad options with a ValidationError', () => {
    expect(() => memoryStorage({ maxAuditEntries: 0 })).toThrow(/maxAuditEntries/);
    expect(() => memoryStorage({ nope: 1 } as never)).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
  });

  it('keeps the data across close() and init(), and refuses calls while closed', async () => {
    await store.createSession(sampleSessionRecord('s1'));
    await store.close();
    await expect(store.getSession('s1')).rejects.toMatchObject({ code: 'STORAGE' });
    await expect(store.ping()).rejects.toMatchObject({ code: 'STORAGE' });
    await store.init();
    expect((await store.getSession('s1'))?.id).toBe('s1');
  });

  it('drops the oldest audit entries beyond maxAuditEntries', async () => {
    const small = memoryStorage({ maxAuditEntries: 5 });
    await small.init();
    for (let i = 0; i < 3000; i++) {
      await small.appendAudit([{ at: i, sessionId: null, action: 'a', actor: null, details: { i } }]);
    }
    const list = await small.listAudit({ limit: 100 });
    expect(list.map((e) => e.details.i)).toEqual([2999, 2998, 2997, 2996, 2995]);
    expect(list[0]!.id).toBe(3000);
  });

  it('refuses malformed records and patches with ValidationError, storing nothing', async () => {
    await expect(store.createSession({ ...sampleSessionRecord('s1'), state: 'flying' as never })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    await expect(store.createSession({ ...sampleSessionRecord('s1'), config: { f: (() => 1) as never } })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    expect(await store.listSessions()).toEqual([]);
    await store.createSession(sampleSessionRecord('s1'));
    await expect(store.updateSession('s1', { priority: Number.NaN, updatedAt: 1 }, 1)).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(store.updateSession('s1', { desiredState: 'maybe' as never, updatedAt: 1 }, 1)).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    expect((await store.getSession('s1'))?.version).toBe(1);
    await expect(store.appendTransitions([], 0)).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(store.listAudit({ limit: -1 })).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(store.incrementStats([{ sessionId: 's1', name: 'n', delta: Number.POSITIVE_INFINITY }])).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    expect(await store.getStats('s1')).toEqual({});
  });

  it('names the bad KV operation in the ValidationError', async () => {
    await store.createSession(sampleSessionRecord('s1'));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const error = await store
      .kvWrite('s1', [
        { op: 'set', key: 'ok', value: 1 },
        { op: 'set', key: 'loop', value: cyclic as never },
      ])
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'VALIDATION', issues: [{ path: ['ops', 1, 'value', 'self'] }] });
    await expect(store.kvWrite('s1', [{ op: 'set', key: 'd', value: new Date() as never }])).rejects.toThrow(/Date/);
    await expect(store.kvWrite('s1', [{ op: 'set', key: 'n', value: Number.NaN }])).rejects.toThrow(/finite/);
    await expect(store.kvWrite('s1', [{ op: 'rename', key: 'x' } as never])).rejects.toMatchObject({ code: 'VALIDATION' });
    expect(await store.kvList('s1')).toEqual([]);
  });

  it('creates and updates 10,000 sessions with a fingerprint each', async () => {
    for (let i = 0; i < 10_000; i++) {
      await store.createSession(sampleSessionRecord(`s${i}`));
    }
    for (let i = 0; i < 10_000; i += 97) {
      await store.updateSession(`s${i}`, { desiredState: 'running', updatedAt: 2 }, 1);
    }
    const list = await store.listSessions();
    expect(list).toHaveLength(10_000);
    expect(list.filter((r) => r.desiredState === 'running')).toHaveLength(Math.ceil(10_000 / 97));
  });
});
