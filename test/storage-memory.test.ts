import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { memoryStorage, type StorageDriver } from 'multisession';
import { createManualClock, sampleSessionRecord, storageConformanceSuite } from 'multisession/testing';

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

  it('is the non-persistent memory kind with every capability', () => {
    expect(store.kind).toBe('memory');
    expect(store.persistent).toBe(false);
    for (const capability of ['kv', 'counters', 'history', 'audit', 'checkpoint'] as const) expect(store[capability]).toBeDefined();
  });

  it('refuses bad options with a ValidationError', () => {
    expect(() => memoryStorage({ maxAuditEntries: 0 })).toThrow(/maxAuditEntries/);
    expect(() => memoryStorage({ clock: {} as never })).toThrow(/clock/);
    expect(() => memoryStorage({ nope: 1 } as never)).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
  });

  it('keeps the data across close() and init(), and refuses calls while closed', async () => {
    await store.sessions.create(sampleSessionRecord('s1'));
    await store.close();
    await expect(store.sessions.get('s1')).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/^\[memory\] /) });
    await expect(store.ping()).rejects.toMatchObject({ code: 'STORAGE' });
    await store.init();
    expect((await store.sessions.get('s1'))?.id).toBe('s1');
  });

  it('keeps 10,000 audit entries by default and drops the oldest beyond maxAuditEntries', async () => {
    const big = memoryStorage();
    await big.audit!.append(Array.from({ length: 10_005 }, (_, i) => ({ at: i, sessionId: null, action: 'a', actor: null, details: { i } })));
    const oldest = await big.audit!.list({ limit: 10_000 });
    expect(oldest).toHaveLength(10_000);
    expect(oldest.at(-1)!.details.i).toBe(5);

    const small = memoryStorage({ maxAuditEntries: 5 });
    await small.init();
    for (let i = 0; i < 3000; i++) {
      await small.audit!.append([{ at: i, sessionId: null, action: 'a', actor: null, details: { i } }]);
    }
    const list = await small.audit!.list({ limit: 100 });
    expect(list.map((e) => e.details.i)).toEqual([2999, 2998, 2997, 2996, 2995]);
    expect(list[0]!.id).toBe(3000);
  });

  it('judges its checkpoint leases by the clock it is given', async () => {
    const clock = createManualClock();
    const clocked = memoryStorage({ clock });
    await clocked.checkpoint!.add('s', [{ key: 'a' }]);
    const [leases] = await clocked.checkpoint!.claim('s', [{ owner: 'w', limit: 1, leaseMs: 1_000 }], 5);
    expect(leases![0]!.expiresAt).toBe(clock.now() + 1_000);
  });

  it('refuses malformed records and patches with ValidationError, storing nothing', async () => {
    await expect(store.sessions.create({ ...sampleSessionRecord('s1'), state: 'flying' as never })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    await expect(store.sessions.create({ ...sampleSessionRecord('s1'), config: { f: (() => 1) as never } })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    expect(await store.sessions.list()).toEqual([]);
    await store.sessions.create(sampleSessionRecord('s1'));
    await expect(store.sessions.update('s1', { priority: Number.NaN, updatedAt: 1 }, 1)).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(store.sessions.update('s1', { desiredState: 'maybe' as never, updatedAt: 1 }, 1)).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    expect((await store.sessions.get('s1'))?.version).toBe(1);
    await expect(store.history!.append([], 0)).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(store.audit!.list({ limit: -1 })).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(store.counters!.increment([{ sessionId: 's1', name: 'n', delta: Number.POSITIVE_INFINITY }])).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    expect(await store.counters!.get('s1')).toEqual({});
  });

  it('names the bad KV operation in the ValidationError', async () => {
    await store.sessions.create(sampleSessionRecord('s1'));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const error = await store
      .kv!.write('s1', [
        { op: 'set', key: 'ok', value: 1 },
        { op: 'set', key: 'loop', value: cyclic as never },
      ])
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'VALIDATION', issues: [{ path: ['ops', 1, 'value', 'self'] }] });
    await expect(store.kv!.write('s1', [{ op: 'set', key: 'd', value: new Date() as never }])).rejects.toThrow(/Date/);
    await expect(store.kv!.write('s1', [{ op: 'set', key: 'n', value: Number.NaN }])).rejects.toThrow(/finite/);
    await expect(store.kv!.write('s1', [{ op: 'rename', key: 'x' } as never])).rejects.toMatchObject({ code: 'VALIDATION' });
    expect(await store.kv!.list('s1')).toEqual([]);
  });

  it('creates and updates 10,000 sessions with a fingerprint each', async () => {
    for (let i = 0; i < 10_000; i++) {
      await store.sessions.create(sampleSessionRecord(`s${i}`));
    }
    for (let i = 0; i < 10_000; i += 97) {
      expect(await store.sessions.update(`s${i}`, { desiredState: 'running', updatedAt: 2 }, 1)).not.toBeNull();
    }
    const list = await store.sessions.list();
    expect(list).toHaveLength(10_000);
    expect(list.filter((r) => r.desiredState === 'running')).toHaveLength(Math.ceil(10_000 / 97));
  });
});
