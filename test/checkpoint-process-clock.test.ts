// process() on a manual clock: renewal, deadlines, the flush window and the pauses after a store
// error, driven by advancing time by hand. Nothing here waits on the wall clock.
import { describe, expect, it } from 'vitest';
import { createCheckpoint, memoryCheckpoint, type CheckpointBackend, type CheckpointHost, type LeaseRef } from 'multisession';
import { createManualClock, type ManualClock } from 'multisession/testing';

/** A memory backend on `clock`, with every call counted and any method replaceable. */
function recordingBackend(clock: ManualClock, patch: (inner: CheckpointBackend) => Partial<CheckpointBackend> = () => ({})) {
  const inner = memoryCheckpoint({ clock }).checkpoint;
  const calls = { claim: 0, renew: [] as { at: number; keys: string[] }[], complete: [] as { at: number; keys: string[] }[] };
  const overrides = patch(inner);
  const backend: CheckpointBackend = {
    ...inner,
    claim: (...args) => {
      calls.claim += 1;
      return (overrides.claim ?? inner.claim)(...args);
    },
    renew: (stream, refs: LeaseRef[], leaseMs) => {
      calls.renew.push({ at: clock.now(), keys: refs.map((r) => r.key) });
      return (overrides.renew ?? inner.renew)(stream, refs, leaseMs);
    },
    complete: (stream, entries) => {
      calls.complete.push({ at: clock.now(), keys: entries.map((e) => e.lease.key) });
      return (overrides.complete ?? inner.complete)(stream, entries);
    },
  };
  return { backend, calls };
}

/** A store around a (recording) backend, as `createCheckpoint` takes it. */
const hostOf = (checkpoint: CheckpointBackend): CheckpointHost => ({ kind: 'memory', init: async () => {}, checkpoint });

/** A promise the test resolves. */
function gate(): { open: () => void; opened: Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

const untilAborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));

describe('process() on a manual clock', () => {
  it('renews every held lease in one call at a third of the lease, and the new expiry reaches the handler', async () => {
    const clock = createManualClock();
    const t0 = clock.now();
    const { backend, calls } = recordingBackend(clock);
    const cp = createCheckpoint({ storage: hostOf(backend), stream: 's', clock });
    await cp.add([{ key: 'a' }, { key: 'b' }, { key: 'c' }]);
    const g = gate();
    const expiries: number[] = [];
    const run = cp.process(
      async (_item, context) => {
        await g.opened;
        expiries.push(context.lease.expiresAt); // read now: the lease moves on every renewal
      },
      { owner: 'w', concurrency: 2, batchSize: 3, leaseMs: 3_000 },
    );
    await clock.advance(999);
    expect(calls.renew).toEqual([]);
    await clock.advance(1);
    // One call for all three held leases: two running, one queued.
    expect(calls.renew).toEqual([{ at: t0 + 1_000, keys: ['a', 'b', 'c'] }]);
    await clock.advance(1_000);
    expect(calls.renew).toHaveLength(2);
    expect(calls.renew[1]).toEqual({ at: t0 + 2_000, keys: ['a', 'b', 'c'] });
    // Past the first deadline (t0 + 3 s): the renewals moved it, nothing is lost.
    await clock.advance(1_500);
    expect(calls.renew.map((c) => c.at - t0)).toEqual([1_000, 2_000, 3_000]);
    g.open();
    const summary = await run;
    expect(summary).toMatchObject({ completed: 3, lost: 0 });
    expect(expiries).toEqual([t0 + 6_000, t0 + 6_000, t0 + 6_000]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('loses a lease whose renewal is refused: the signal aborts at the tick and the result is not stored', async () => {
    const clock = createManualClock();
    const cp = createCheckpoint({ storage: memoryCheckpoint({ clock }), stream: 's', clock });
    await cp.add([{ key: 'job' }]);
    const lost: string[] = [];
    cp.on('lease.lost', (e) => lost.push(`${e.key}:${e.phase}:${e.error.code}`));
    let runs = 0;
    let abortedAt = -1;
    const run = cp.process(
      async (_item, { lease, signal }) => {
        if (++runs > 1) return 'second run';
        await cp.release(lease); // someone else gives it back under us
        await untilAborted(signal);
        abortedAt = clock.now();
        return 'first run (lease lost: must not be stored)';
      },
      { owner: 'w', leaseMs: 3_000 },
    );
    await clock.advance(999);
    expect(lost).toEqual([]);
    await clock.advance(1);
    const summary = await run;
    expect(lost).toEqual(['job:renew:LEASE_LOST']);
    expect(abortedAt).toBe(Date.UTC(2026, 0, 1) + 1_000);
    expect(summary).toMatchObject({ lost: 1, completed: 1, claimed: 2 });
    expect(await cp.get('job')).toMatchObject({ status: 'done', result: 'second run' });
  });

  it('loses a lease when its deadline passes before a renewal lands', async () => {
    const clock = createManualClock();
    const t0 = clock.now();
    // The store answers renewals 10 s late: the lease's local deadline passes first.
    const { backend } = recordingBackend(clock, (inner) => ({
      renew: (...args) => new Promise((resolve) => clock.setTimeout(() => resolve(inner.renew(...args)), 10_000)),
    }));
    const cp = createCheckpoint({ storage: hostOf(backend), stream: 's', clock });
    await cp.add([{ key: 'job' }, { key: 'queued' }]);
    const lost: string[] = [];
    cp.on('lease.lost', (e) => lost.push(`${e.key}:${e.phase}@${clock.now() - t0}`));
    const started: string[] = [];
    const run = cp.process(
      async (item, { signal }) => {
        started.push(`${item.key}@${clock.now() - t0}`);
        if (item.key !== 'job' || item.attempts > 0) return 'again';
        await untilAborted(signal);
        expect(signal.reason).toMatchObject({ code: 'LEASE_LOST' });
        return 'late';
      },
      { owner: 'w', concurrency: 1, batchSize: 2, leaseMs: 3_000 },
    );
    await clock.advance(2_999);
    expect(lost).toEqual([]);
    await clock.advance(1);
    // Both leases of the claim share one deadline: the running one and the queued one.
    expect(lost.sort()).toEqual(['job:deadline@3000', 'queued:deadline@3000']);
    await clock.advance(20_000); // the late renewal answers; both items are claimed again and done
    const summary = await run;
    expect(summary).toMatchObject({ lost: 2, completed: 2, claimed: 4 });
    expect(await cp.get('job')).toMatchObject({ status: 'done', result: 'again' });
    // The queued one never ran under its lost lease; both came back with an attempt counted.
    expect(started).toEqual(['job@0', 'job@3000', 'queued@3000']);
    expect(await cp.get('queued')).toMatchObject({ status: 'done', attempts: 1 });
  });

  it('writes completions together within the flush window, and at once when the batch is full', async () => {
    const clock = createManualClock();
    const t0 = clock.now();
    const { backend, calls } = recordingBackend(clock);
    const cp = createCheckpoint({ storage: hostOf(backend), stream: 's', clock });
    await cp.add([{ key: 'a' }, { key: 'b' }, { key: 'slow' }]);
    const g = gate();
    const run = cp.process(
      async (item) => {
        if (item.key === 'slow') await g.opened;
      },
      { owner: 'w', concurrency: 3, batchSize: 3, leaseMs: 60_000, flushMs: 50 },
    );
    await clock.advance(49);
    expect(calls.complete).toEqual([]);
    expect((await cp.get('a'))?.status).toBe('processing');
    await clock.advance(1);
    expect(calls.complete).toEqual([{ at: t0 + 50, keys: ['a', 'b'] }]);
    expect((await cp.get('a'))?.status).toBe('done');
    g.open();
    await run;

    // A full batch does not wait for the window.
    await cp.add([{ key: 'x' }, { key: 'y' }]);
    calls.complete.length = 0;
    const g2 = gate();
    const second = cp.process(
      async (item) => {
        if (item.key === 'late') await g2.opened;
      },
      { owner: 'w', concurrency: 3, batchSize: 2, leaseMs: 60_000, flushMs: 50 },
    );
    await cp.add([{ key: 'late' }]);
    await clock.advance(0);
    expect(calls.complete[0]?.keys).toEqual(['x', 'y']);
    g2.open();
    await second;
  });

  it('pauses pollMs after a failed claim, then claims again', async () => {
    const clock = createManualClock();
    let failures = 1;
    const t0 = clock.now();
    const claimedAt: number[] = [];
    const { backend } = recordingBackend(clock, (inner) => ({
      claim: async (...args) => {
        claimedAt.push(clock.now() - t0);
        if (failures-- > 0) throw new Error('connection reset (claim)');
        return inner.claim(...args);
      },
    }));
    const cp = createCheckpoint({ storage: hostOf(backend), stream: 's', clock });
    await cp.add([{ key: 'a' }]);
    const errors: string[] = [];
    cp.on('process.error', (e) => errors.push(e.operation));
    let settled = false;
    const run = cp.process(async () => 'ok', { owner: 'w', pollMs: 500, leaseMs: 60_000 }).finally(() => (settled = true));
    await clock.advance(0);
    expect(claimedAt).toEqual([0]);
    expect(errors).toEqual(['claim']);
    await clock.advance(500);
    expect(claimedAt).toEqual([0]);
    expect(settled).toBe(false);
    await clock.advance(1);
    expect(await run).toMatchObject({ completed: 1, errors: 1 });
    // The retry once the pause is over (the timer rounds up by 1 ms), then the claims that drain.
    expect(claimedAt[1]).toBe(501);
    expect(claimedAt.every((at) => at === 0 || at === 501)).toBe(true);
  });

  it('retries a failed completion write after pollMs, dropping leases whose deadline passed meanwhile', async () => {
    const clock = createManualClock();
    const t0 = clock.now();
    let completeFailures = 1;
    const { backend, calls } = recordingBackend(clock, (inner) => ({
      complete: async (...args) => {
        if (completeFailures-- > 0) throw new Error('connection reset (complete)');
        return inner.complete(...args);
      },
      // Renewals fail too, so the deadline (t0 + 3 s) stays where the claim put it.
      renew: async () => {
        throw new Error('connection reset (renew)');
      },
    }));
    const cp = createCheckpoint({ storage: hostOf(backend), stream: 's', clock });
    await cp.add([{ key: 'job' }]);
    const lost: string[] = [];
    cp.on('lease.lost', (e) => lost.push(`${e.key}:${e.phase}@${clock.now() - t0}`));
    const run = cp.process(async () => 'ok', { owner: 'w', pollMs: 5_000, leaseMs: 3_000 });
    await clock.advance(0);
    expect(calls.complete.map((c) => c.at - t0)).toEqual([0]);
    await clock.advance(4_999);
    expect(calls.complete).toHaveLength(1);
    expect(lost).toEqual([]); // waiting to be written, not lost by the deadline timer
    await clock.advance(1);
    // The retry finds the deadline passed: the lease is dropped, not written.
    expect(lost).toEqual(['job:deadline@5000']);
    await clock.advance(1_000);
    const summary = await run;
    expect(summary).toMatchObject({ lost: 1, completed: 1, claimed: 2 });
    expect(summary.errors).toBeGreaterThanOrEqual(2); // the failed write, and the failed renewals
    expect(await cp.get('job')).toMatchObject({ status: 'done', attempts: 1 });
  });

  it('polls a drained stream every pollMs until the signal aborts (until: aborted)', async () => {
    const clock = createManualClock();
    const { backend, calls } = recordingBackend(clock);
    const cp = createCheckpoint({ storage: hostOf(backend), stream: 's', clock });
    const ac = new AbortController();
    const run = cp.process(async () => {}, { owner: 'w', until: 'aborted', signal: ac.signal, pollMs: 1_000 });
    await clock.advance(0);
    expect(calls.claim).toBe(1);
    await clock.advance(2_999);
    expect(calls.claim).toBe(3);
    await clock.advance(1);
    expect(calls.claim).toBe(4);
    ac.abort();
    expect(await run).toMatchObject({ reason: 'aborted', claimed: 0 });
    expect(clock.pendingTimers()).toBe(0);
  });
});
