import { z } from 'zod';
import { LeaseLostError, ValidationError, parseWith } from '../errors.js';
import type { JsonValue } from '../types.js';
import type { Checkpoint, WorkItem } from './checkpoint.js';
import type { CheckpointBackend, Lease, LeaseRef } from './contract.js';

/** What the handler receives besides the item. */
export interface WorkContext {
  /** The current lease (its expiry moves on every renewal). Its `token` can fence side effects. */
  lease: Lease;
  /** Aborted when the lease is lost, its deadline passes, or `process()` is asked to stop. */
  signal: AbortSignal;
}

/** Does the work of one item. The value it resolves to is stored as the item's result. */
export type WorkHandler = (item: WorkItem, context: WorkContext) => Promise<JsonValue | void> | JsonValue | void;

export const processOptionsSchema = z
  .object({
    owner: z.string().min(1, 'name the owner (e.g. worker id)').max(200),
    /** Handlers running at once. Default 1. */
    concurrency: z.number().int().min(1).max(1000).default(1),
    /** Items per claim; default max(8, 4 × concurrency), at most 200. */
    batchSize: z.number().int().min(1).max(10_000).optional(),
    /** Lease length; renewed every third of it. Default 30 s. */
    leaseMs: z.number().int().min(30).max(24 * 60 * 60 * 1000).default(30_000),
    /** Completions wait at most this long to be written together. Default 5 ms. */
    flushMs: z.number().int().min(0).max(60_000).default(5),
    /** Wait between claims when nothing is claimable (until: 'aborted') or after an error. Default 1 s. */
    pollMs: z.number().int().min(1).max(600_000).default(1000),
    /** `drained`: return when nothing is claimable; `aborted`: keep polling until `signal` aborts. */
    until: z.enum(['drained', 'aborted']).default('drained'),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .refine((o) => o.until === 'drained' || o.signal !== undefined, {
    message: "until: 'aborted' needs a signal to stop it",
    path: ['signal'],
  });

export type ProcessOptions = z.input<typeof processOptionsSchema>;

/** Counters of one `process()` run. */
export interface ProcessSummary {
  /** Why it returned. */
  reason: 'drained' | 'aborted';
  claimed: number;
  completed: number;
  /** Handler failures that will be retried. */
  failed: number;
  /** Handler failures that used up `maxAttempts`. */
  dead: number;
  /** Leases lost (renewal refused, deadline passed, or the completion's compare-and-swap lost). */
  lost: number;
  /** Leases given back unprocessed because of the stop signal. */
  released: number;
  /** Backend errors met (and retried) on the way. */
  errors: number;
}

interface Held {
  lease: Lease;
  ref: LeaseRef;
  ctrl: AbortController;
  /** Local monotonic deadline (performance.now() based). */
  deadline: number;
  timer: NodeJS.Timeout | null;
  state: 'queued' | 'running' | 'completing' | 'settled';
  lost: boolean;
}

const monotonic = () => performance.now();

export async function runProcess(cp: Checkpoint, handler: WorkHandler, options: ProcessOptions): Promise<ProcessSummary> {
  if (typeof handler !== 'function') {
    throw new ValidationError('process handler', [{ path: [], message: 'pass a function (item, { lease, signal }) => result' }]);
  }
  const o = parseWith(processOptionsSchema, options, 'process options');
  const batchSize = o.batchSize ?? Math.min(200, Math.max(8, 4 * o.concurrency));
  const backend: CheckpointBackend = await cp.backend();
  const stream = cp.stream;
  const owner = o.owner;
  const summary: ProcessSummary = { reason: 'drained', claimed: 0, completed: 0, failed: 0, dead: 0, lost: 0, released: 0, errors: 0 };

  const held = new Map<string, Held>();
  const queue: Held[] = [];
  let running = 0;
  let pendingCompletions: { h: Held; result: JsonValue | null }[] = [];
  let flushTimer: NodeJS.Timeout | null = null;
  const inflight = new Set<Promise<unknown>>();
  let stopping = o.signal?.aborted ?? false;

  let wakeResolve: (() => void) | null = null;
  const wake = () => {
    const r = wakeResolve;
    wakeResolve = null;
    r?.();
  };
  const nextWake = () => new Promise<void>((resolve) => (wakeResolve = resolve));
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      t.unref();
      function done() {
        clearTimeout(t);
        o.signal?.removeEventListener('abort', done);
        resolve();
      }
      o.signal?.addEventListener('abort', done, { once: true });
    });
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    void p.finally(() => {
      inflight.delete(p);
      wake();
    }).catch(() => {});
    return p;
  };
  const reportError = (error: unknown, operation: string) => {
    summary.errors += 1;
    cp.emit('process.error', { stream, owner, operation, error: error instanceof Error ? error : new Error(String(error)) });
  };
  const progress = () =>
    cp.emit('process.progress', { ...summary, stream, owner, inFlight: held.size });

  const settle = (h: Held) => {
    h.state = 'settled';
    if (h.timer) clearTimeout(h.timer);
    h.timer = null;
    held.delete(h.ref.key);
  };
  const markLost = (h: Held, phase: 'renew' | 'deadline' | 'complete' | 'fail' | 'release', error?: LeaseLostError) => {
    if (h.state === 'settled' || h.lost) return;
    h.lost = true;
    const err = error ?? cp.lost(h.ref, phase === 'deadline' ? 'keep (lease deadline passed)' : phase);
    if (!h.ctrl.signal.aborted) h.ctrl.abort(err);
    const idx = queue.indexOf(h);
    if (idx >= 0) queue.splice(idx, 1);
    // A running handler settles when it returns; a queued or completing one settles now.
    if (h.state !== 'running') settle(h);
    summary.lost += 1;
    cp.emit('lease.lost', { stream, owner, key: h.ref.key, token: h.ref.token, phase, error: err });
  };
  const armDeadline = (h: Held) => {
    if (h.timer) clearTimeout(h.timer);
    h.timer = setTimeout(() => {
      h.timer = null;
      if (h.state === 'queued' || h.state === 'running') markLost(h, 'deadline');
      wake();
    }, Math.max(0, h.deadline - monotonic()));
    h.timer.unref();
  };

  // Renewal of every held lease, one statement per tick, at a third of the lease.
  let renewing = false;
  const renewTimer = setInterval(() => {
    if (renewing || held.size === 0) return;
    renewing = true;
    const list = [...held.values()].filter((h) => h.state !== 'settled');
    const startedAt = monotonic();
    track(
      backend
        .renew(stream, list.map((h) => h.ref), o.leaseMs)
        .then((expiries) => {
          list.forEach((h, i) => {
            const exp = expiries[i];
            if (h.state === 'settled') return;
            if (exp === null || exp === undefined) {
              if (h.state !== 'completing') markLost(h, 'renew');
              return;
            }
            h.lease = { ...h.lease, expiresAt: exp };
            h.deadline = startedAt + o.leaseMs;
            if (h.state !== 'completing') armDeadline(h);
          });
        })
        .catch((err: unknown) => reportError(err, 'renew'))
        .finally(() => {
          renewing = false;
        }),
    );
  }, Math.max(10, Math.floor(o.leaseMs / 3)));
  renewTimer.unref();

  const flush = () => {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = null;
    const batch = pendingCompletions;
    pendingCompletions = [];
    if (!batch.length) return;
    const now = monotonic();
    const live = batch.filter(({ h }) => {
      if (h.state === 'settled' || h.lost) return false;
      if (h.deadline > now) return true;
      markLost(h, 'deadline');
      return false;
    });
    if (!live.length) return;
    track(
      backend
        .complete(stream, live.map(({ h, result }) => ({ lease: h.ref, result })))
        .then((results) => {
          live.forEach(({ h }, i) => {
            if (results[i]?.ok) {
              settle(h);
              summary.completed += 1;
              cp.emit('item.completed', { stream, owner, key: h.ref.key, token: h.ref.token });
            } else {
              markLost(h, 'complete');
            }
          });
          progress();
        })
        .catch((err: unknown) => {
          reportError(err, 'complete');
          // Try again after a pause; leases past their deadline are dropped then.
          pendingCompletions.push(...live);
          scheduleFlush(o.pollMs);
        }),
    );
  };
  const scheduleFlush = (ms: number) => {
    if (flushTimer) return;
    flushTimer = setTimeout(flush, ms);
    flushTimer.unref();
  };

  const runOne = async (h: Held) => {
    h.state = 'running';
    running += 1;
    let ok = false;
    let result: JsonValue | null = null;
    let failure: unknown;
    try {
      const item: WorkItem = { key: h.lease.key, payload: h.lease.payload, priority: h.lease.priority, attempts: h.lease.attempts };
      const value = await handler(item, { lease: h.lease, signal: h.ctrl.signal });
      result = value === undefined ? null : (value as JsonValue);
      ok = true;
    } catch (err) {
      failure = err;
    }
    running -= 1;
    if ((h.state as Held['state']) === 'settled') return;
    if (h.lost) {
      // The lease was lost while the handler ran: markLost counted it; never complete.
      settle(h);
      return;
    }
    if (monotonic() >= h.deadline) {
      h.state = 'queued';
      markLost(h, 'deadline');
      return;
    }
    if (ok) {
      h.state = 'completing';
      if (h.timer) clearTimeout(h.timer);
      h.timer = null;
      pendingCompletions.push({ h, result });
      if (pendingCompletions.length >= batchSize || stopping) flush();
      else scheduleFlush(o.flushMs);
      return;
    }
    if (stopping) {
      // Stopped mid-work: give the item back without counting an attempt.
      h.state = 'completing';
      await releaseMany([h]);
      return;
    }
    h.state = 'completing';
    const attempts = h.lease.attempts;
    const dead = attempts + 1 >= cp.maxAttempts;
    const error = failure instanceof Error ? failure.message || failure.name : String(failure);
    try {
      const res = await backend.fail(stream, h.ref, { error: error.slice(0, 2000), status: dead ? 'dead' : 'failed', retryInMs: dead ? 0 : cp.retryDelay(attempts) });
      if (res.ok) {
        settle(h);
        if (dead) summary.dead += 1;
        else summary.failed += 1;
        cp.emit('item.failed', { stream, owner, key: h.ref.key, token: h.ref.token, error, status: dead ? 'dead' : 'failed' });
      } else {
        markLost(h, 'fail');
      }
    } catch (err) {
      reportError(err, 'fail');
      settle(h); // the lease expires by itself and the item comes back
    }
  };

  const releaseMany = async (list: Held[]) => {
    if (!list.length) return;
    try {
      const res = await backend.release(stream, list.map((h) => h.ref));
      list.forEach((h, i) => {
        if (res[i]?.ok) {
          settle(h);
          summary.released += 1;
        } else markLost(h, 'release');
      });
    } catch (err) {
      reportError(err, 'release');
      list.forEach(settle);
    }
  };

  const onAbort = () => {
    stopping = true;
    for (const h of held.values()) if (h.state === 'running' && !h.ctrl.signal.aborted) h.ctrl.abort(o.signal?.reason);
    wake();
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });

  let claimBlocked = false; // the last claim found nothing while work was in flight
  try {
    for (;;) {
      while (!stopping && running < o.concurrency && queue.length) {
        const h = queue.shift()!;
        track(runOne(h));
      }
      if (stopping) break;
      const idle = running === 0 && queue.length === 0 && held.size === 0 && inflight.size === 0;
      if (queue.length < o.concurrency && (!claimBlocked || idle)) {
        const wasIdle = idle;
        let leases: Lease[];
        const startedAt = monotonic();
        try {
          leases = await backend.claim(stream, { owner, limit: batchSize, leaseMs: o.leaseMs, maxAttempts: cp.maxAttempts });
        } catch (err) {
          reportError(err, 'claim');
          await sleep(o.pollMs);
          continue;
        }
        if (leases.length) {
          claimBlocked = false;
          summary.claimed += leases.length;
          cp.emit('batch.claimed', { stream, owner, leases });
          for (const lease of leases) {
            const h: Held = {
              lease,
              ref: { key: lease.key, token: lease.token, owner: lease.owner },
              ctrl: new AbortController(),
              deadline: startedAt + o.leaseMs,
              timer: null,
              state: 'queued',
              lost: false,
            };
            held.set(lease.key, h);
            queue.push(h);
            armDeadline(h);
          }
          if (stopping) break;
          continue;
        }
        claimBlocked = true;
        if (wasIdle) {
          if (o.until === 'drained') break;
          await sleep(o.pollMs);
          claimBlocked = false;
          continue;
        }
      }
      if (stopping) break;
      // Flush completions early when nothing else is running, so the drain check sees them.
      if (running === 0 && queue.length === 0 && pendingCompletions.length) flush();
      await nextWake();
    }

    // Stop or drain: give back what never started, let running handlers settle, write completions.
    if (stopping) summary.reason = 'aborted';
    await releaseMany(queue.splice(0));
    while (running > 0 || inflight.size > 0 || pendingCompletions.length) {
      if (pendingCompletions.length && running === 0) flush();
      await Promise.race([...inflight, nextWake()]);
    }
  } finally {
    clearInterval(renewTimer);
    if (flushTimer) clearTimeout(flushTimer);
    for (const h of held.values()) if (h.timer) clearTimeout(h.timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
  progress();
  return summary;
}
