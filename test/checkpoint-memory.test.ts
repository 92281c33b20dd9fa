import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpoint, memoryCheckpoint, memoryStorage, type CheckpointHost } from 'multisession';
import { checkpointConformanceSuite } from 'multisession/testing';
import { createManualClock } from 'multisession/testing';

checkpointConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  async () => ({ storage: memoryCheckpoint() }),
  { name: 'memoryCheckpoint()' },
);

checkpointConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  async () => {
    const storage = memoryStorage();
    await storage.init();
    return { storage, close: () => storage.close() };
  },
  { name: 'memoryStorage().checkpoint' },
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
    expect(storage.checkpoint).toBeDefined();
  });

  it('a store without the capability is refused with UnsupportedError, something that is no store with ValidationError', () => {
    const sessionsOnly = { kind: 'sessions-only', init: async () => {} };
    expect(() => createCheckpoint({ storage: sessionsOnly, stream: 'jobs' })).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED', context: { capability: 'checkpoint', storage: 'sessions-only' } }),
    );
    expect(() => createCheckpoint({ storage: { claim: () => [] } as never, stream: 'jobs' })).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
  });

  it('opens the store on first use and is refused once the store is closed', async () => {
    const storage = memoryCheckpoint();
    const cp = createCheckpoint({ storage, stream: 'jobs' });
    await cp.add([{ key: 'x' }]);
    await storage.close();
    await expect(cp.stats()).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/^\[memory\] the store is closed/) });
    await storage.init(); // the memory store keeps its items across close()
    expect((await cp.stats()).total).toBe(1);
  });
});

describe('memory checkpoint with a manual clock', () => {
  it('judges expiry by the injected clock', async () => {
    const clock = createManualClock();
    const cp = createCheckpoint({ storage: memoryCheckpoint({ clock }), stream: 's' });
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

describe('process() when the store fails now and then', () => {
  it('retries claims and completions after an error and still finishes every item once', async () => {
    const clock = createManualClock();
    const store = memoryCheckpoint({ clock });
    const inner = store.checkpoint;
    let claimFailures = 1;
    let completeFailures = 1;
    const flaky: CheckpointHost = {
      ...store,
      checkpoint: {
        ...inner,
        claim: async (...args: Parameters<typeof inner.claim>) => {
          if (claimFailures-- > 0) throw new Error('connection reset (claim)');
          return inner.claim(...args);
        },
        complete: async (...args: Parameters<typeof inner.complete>) => {
          if (completeFailures-- > 0) throw new Error('connection reset (complete)');
          return inner.complete(...args);
        },
      },
    };
    const cp = createCheckpoint({ storage: flaky, stream: 'flaky', clock });
    await cp.add(Array.from({ length: 40 }, (_, i) => ({ key: `k${i}` })));
    const errors: string[] = [];
    cp.on('process.error', (e) => errors.push(e.operation));
    let settled = false;
    const running = cp
      .process(async () => 'ok', { owner: 'w', concurrency: 4, batchSize: 10, pollMs: 20, leaseMs: 10_000 })
      .finally(() => (settled = true));
    // Each pause after an error is 20 ms of the manual clock; well within the 10 s lease.
    for (let step = 0; step < 50 && !settled; step++) await clock.advance(20);
    const summary = await running;
    expect(summary).toMatchObject({ reason: 'drained', completed: 40, lost: 0, errors: 2 });
    expect(errors.sort()).toEqual(['claim', 'complete']);
    expect(await cp.stats()).toMatchObject({ done: 40, processing: 0 });
  });

  it('stops polling an empty stream when its signal aborts (until: aborted)', async () => {
    const clock = createManualClock();
    const cp = createCheckpoint({ storage: memoryCheckpoint({ clock }), stream: 'idle', clock });
    const ac = new AbortController();
    const running = cp.process(async () => {}, { owner: 'w', until: 'aborted', signal: ac.signal, pollMs: 10 });
    await clock.advance(0); // the first claim finds the stream empty
    await cp.add([{ key: 'late' }]);
    expect((await cp.get('late'))?.status).toBe('pending');
    await clock.advance(60); // a later poll picks it up
    expect((await cp.get('late'))?.status).toBe('done');
    ac.abort();
    const summary = await running;
    expect(summary).toMatchObject({ reason: 'aborted', completed: 1 });
    await expect(cp.process(async () => {}, { owner: 'w', until: 'aborted' })).rejects.toMatchObject({ code: 'VALIDATION' });
  });
});

describe('process() in a script that does nothing else', () => {
  it('keeps the process alive until it returns (the unref\'d clock timers do not end it early), and leaves no handle behind', () => {
    const script = fileURLToPath(new URL('./fixtures/checkpoint/alive-script.ts', import.meta.url));
    const out = execFileSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 20_000 });
    expect(out.trim().split('\n')).toEqual(['done 100', 'aborted aborted', 'retried 1 1', 'handles left 0']);
  });
});
