import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpoint, createMemoryCheckpointBackend, memoryStorage } from 'multisession';
import { checkpointConformanceSuite } from 'multisession/testing';
import { createManualClock } from 'multisession/testing';

checkpointConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  async () => ({ storage: createMemoryCheckpointBackend() }),
  { name: 'memory' },
);

checkpointConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  async () => {
    const storage = memoryStorage();
    await storage.init();
    return { storage, close: () => storage.close() };
  },
  { name: 'memoryStorage().checkpoint()' },
);

describe('memoryStorage checkpoint capability', () => {
  it('shares one backend per driver instance and none between drivers', async () => {
    const storage = memoryStorage();
    const a = createCheckpoint({ storage, stream: 'jobs' });
    const b = createCheckpoint({ storage, stream: 'jobs' });
    const other = createCheckpoint({ storage: memoryStorage(), stream: 'jobs' });
    await a.add([{ key: 'x' }]);
    expect((await b.get('x'))?.status).toBe('pending');
    expect(await other.get('x')).toBeNull();
    expect(storage.checkpoint?.()).toBe(storage.checkpoint?.());
  });
});

describe('memory checkpoint with a manual clock', () => {
  it('judges expiry by the injected clock', async () => {
    const clock = createManualClock();
    const cp = createCheckpoint({ storage: createMemoryCheckpointBackend({ clock }), stream: 's' });
    await cp.add([{ key: 'a' }]);
    const [lease] = await cp.claim({ owner: 'w1', limit: 1, leaseMs: 1_000 });
    expect(await cp.claim({ owner: 'w2', limit: 1 })).toEqual([]);
    await clock.advance(999);
    expect(await cp.claim({ owner: 'w2', limit: 1 })).toEqual([]);
    await clock.advance(1);
    const [taken] = await cp.claim({ owner: 'w2', limit: 1 });
    expect(taken?.token).toBeGreaterThan(lease!.token);
    await expect(cp.complete(lease!)).rejects.toMatchObject({ code: 'LEASE_LOST' });
  });
});
