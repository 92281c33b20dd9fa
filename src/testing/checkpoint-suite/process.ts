import { createManualClock } from '../manual-clock.js';
import { sleep, type CheckpointSuiteContext } from './context.js';

/** `process()`: concurrency, results, failures, lost leases, several workers, abort. */
export function processGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open, items } = t;
  it('drains the stream with concurrency, storing results, and reports a summary and events', async () => {
    const cp = open();
    await cp.add(items(120));
    const completed: string[] = [];
    let claimedEvents = 0;
    cp.on('item.completed', (e) => completed.push(e.key));
    cp.on('batch.claimed', (e) => (claimedEvents += e.leases.length));
    let running = 0;
    let maxRunning = 0;
    const summary = await cp.process(
      async (item, { lease, signal }) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        expect(signal.aborted).toBe(false);
        expect(lease.key).toBe(item.key);
        await sleep(1);
        running--;
        return { doubled: (item.payload as { i: number }).i * 2 };
      },
      { owner: 'p1', concurrency: 4, batchSize: 10, leaseMs: 10_000 },
    );
    expect(summary).toMatchObject({ reason: 'drained', claimed: 120, completed: 120, failed: 0, lost: 0 });
    expect(maxRunning).toBeGreaterThan(1);
    expect(new Set(completed).size).toBe(120);
    expect(claimedEvents).toBe(120);
    expect(await cp.stats()).toMatchObject({ done: 120, total: 120 });
    expect((await cp.get('k0007'))?.result).toEqual({ doubled: 14 });
  });

  it('fails items whose handler throws, and retries them after the back-off', async () => {
    const cp = open({ maxAttempts: 2, backoff: { minMs: 0, maxMs: 0, factor: 1 } });
    await cp.add([{ key: 'good' }, { key: 'bad' }]);
    const failures: string[] = [];
    cp.on('item.failed', (e) => failures.push(`${e.key}:${e.status}`));
    const summary = await cp.process(
      async (item) => {
        if (item.key === 'bad') throw new Error(`bad attempt ${item.attempts}`);
      },
      { owner: 'p', leaseMs: 10_000 },
    );
    expect(summary).toMatchObject({ completed: 1, failed: 1, dead: 1 });
    expect(failures).toEqual(['bad:failed', 'bad:dead']);
    expect(await cp.get('bad')).toMatchObject({ status: 'dead', attempts: 2, error: 'bad attempt 1' });
  });

  it('aborts the handler and does not complete when its lease is lost', async () => {
    // process() runs on a manual clock: its renewal comes when the handler moves time on, never
    // late because the machine is slow. The store's leases are real (30 s).
    const clock = createManualClock();
    const cp = open({ clock });
    await cp.add([{ key: 'job' }]);
    const lost: string[] = [];
    cp.on('lease.lost', (e) => lost.push(`${e.key}:${e.phase}:${e.error.code}`));
    let sawAbort = false;
    let runs = 0;
    const summary = await cp.process(
      async (_item, { lease, signal }) => {
        runs++;
        if (runs > 1) return 'second run';
        // Someone else releases the item under us: the next renewal finds the lease gone.
        await cp.release(lease);
        const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        await clock.advance(10_000); // a third of the lease: the renewal
        await aborted;
        sawAbort = signal.aborted;
        return 'first run (lease lost: must not be stored)';
      },
      { owner: 'p', leaseMs: 30_000 },
    );
    expect(sawAbort).toBe(true);
    // The renewal finds the lease gone (the deadline is two thirds of a lease away).
    expect(lost[0]).toBe('job:renew:LEASE_LOST');
    expect(summary).toMatchObject({ lost: 1, completed: 1, claimed: 2 });
    expect(await cp.get('job')).toMatchObject({ status: 'done', result: 'second run' });
  });

  it('shares one stream between several concurrent workers, each item done once', async () => {
    const cp = open();
    await cp.add(items(200));
    const done = new Map<string, number>();
    cp.on('item.completed', (e) => done.set(e.key, (done.get(e.key) ?? 0) + 1));
    const summaries = await Promise.all(
      ['a', 'b', 'c'].map((owner) =>
        cp.process(async () => sleep(0), { owner, concurrency: 3, batchSize: 7, leaseMs: 10_000 }),
      ),
    );
    expect(summaries.reduce((n, s) => n + s.completed, 0)).toBe(200);
    expect(done.size).toBe(200);
    expect([...done.values()].every((n) => n === 1)).toBe(true);
    expect((await cp.stats()).done).toBe(200);
  });

  it('stops on abort: releases what it had not started and returns reason aborted', async () => {
    const cp = open();
    await cp.add(items(30));
    const ac = new AbortController();
    let started = 0;
    const summary = await cp.process(
      async (_item, { signal }) => {
        started++;
        if (started === 1) ac.abort(new Error('shutdown'));
        if (signal.aborted) throw new Error('aborted');
      },
      { owner: 'p', concurrency: 1, batchSize: 10, leaseMs: 10_000, signal: ac.signal, until: 'aborted' },
    );
    expect(summary.reason).toBe('aborted');
    expect(summary.released).toBeGreaterThan(0);
    const stats = await cp.stats();
    expect(stats.processing).toBe(0);
    expect(stats.done + stats.pending).toBe(30);
  });
}
