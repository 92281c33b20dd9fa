import { z } from 'zod';
import { LeaseLostError, ValidationError } from '../errors.js';
import { parseWith } from '../validation.js';
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
    /** Items per claim (and per completion batch); default min(200, max(16, 8 × concurrency)). */
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

interface Group {
  deadline: number;
  timer: NodeJS.Timeout | null;
  members: Set<Held>;
}

interface Held {
  lease: Lease;
  ref: LeaseRef;
  /** Made on first use of `signal` (most handlers never look). */
  ctrl: AbortController | null;
  aborted: boolean;
  abortReason: unknown;
  /** Local monotonic deadline (performance.now() based): claim or renewal start + leaseMs. */
  deadline: number;
  /** Leases claimed or renewed together share one deadline timer. */
  group: Group | null;
  state: 'queued' | 'running' | 'completing' | 'settled';
  lost: boolean;
}

const monotonic = () => performance.now();

/** The handler's context: the current lease, and a signal made on first use. */
class Context implements WorkContext {
  readonly #h: Held;
  readonly #signalOf: (h: Held) => AbortSignal;
  constructor(h: Held, signalOf: (h: Held) => AbortSignal) {
    this.#h = h;
    this.#signalOf = signalOf;
  }
  get lease(): Lease {
    return this.#h.lease;
  }
  get signal(): AbortSignal {
    return this.#signalOf(this.#h);
  }
}
/** Claims allowed in flight at once while work is under way (claim-ahead). */
const MAX_CLAIMS_IN_FLIGHT = 2;

export async function runProcess(cp: Checkpoint, handler: WorkHandler, options: ProcessOptions): Promise<ProcessSummary> {
  if (typeof handler !== 'function') {
    throw new ValidationError('process handler', [{ path: [], message: 'pass a function (item, { lease, signal }) => result' }]);
  }
  const o = parseWith(processOptionsSchema, options, 'process options');
  const batchSize = o.batchSize ?? Math.min(200, Math.max(16, 8 * o.concurrency));
  const backend: CheckpointBackend = await cp.backend();
  const stream = cp.stream;
  const owner = o.owner;
  const summary: ProcessSummary = { reason: 'drained', claimed: 0, completed: 0, failed: 0, dead: 0, lost: 0, released: 0, errors: 0 };

  const held = new Map<string, Held>();
  const queue: Held[] = [];
  let running = 0;
  let pendingCompletions: { h: Held; result: JsonValue | null }[] = [];
  let flushTimer: NodeJS.Timeout | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let flushRetry = false; // the pending flush is a retry after a store error (wait for it)
  const inflight = new Set<Promise<unknown>>();
  let stopping = o.signal?.aborted ?? false;
  let claimsInFlight = 0;
  let claimBlocked = false; // a claim found nothing while work was in flight: wait until idle
  let drained = false; // a claim made while idle found nothing
  let retryAt = 0; // after a claim error, no claim before this (monotonic)

  let wakeResolve: (() => void) | null = null;
  const wake = () => {
    const r = wakeResolve;
    wakeResolve = null;
    r?.();
  };
  const nextWake = () => new Promise<void>((resolve) => (wakeResolve = resolve));
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      // Ref'd on purpose: the caller awaits process(), so its own waits keep the process alive
      // (every timer is cleared before process() returns).
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        o.signal?.removeEventListener('abort', done);
        resolve();
      }
      o.signal?.addEventListener('abort', done, { once: true });
    });
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    void p
      .finally(() => {
        inflight.delete(p);
        wake();
      })
      .catch(() => {});
    return p;
  };
  const reportError = (error: unknown, operation: string) => {
    summary.errors += 1;
    cp.emit('process.error', { stream, owner, operation, error: error instanceof Error ? error : new Error(String(error)) });
  };
  const progress = () => {
    if (cp.listenerCount('process.progress')) cp.emit('process.progress', { ...summary, stream, owner, inFlight: held.size });
  };

  const abortHeld = (h: Held, reason: unknown) => {
    if (h.aborted) return;
    h.aborted = true;
    h.abortReason = reason;
    h.ctrl?.abort(reason);
  };
  const signalOf = (h: Held): AbortSignal => {
    if (!h.ctrl) {
      h.ctrl = new AbortController();
      if (h.aborted) h.ctrl.abort(h.abortReason);
    }
    return h.ctrl.signal;
  };

  const leaveGroup = (h: Held) => {
    const g = h.group;
    if (!g) return;
    h.group = null;
    g.members.delete(h);
    if (g.members.size === 0 && g.timer) {
      clearTimeout(g.timer);
      g.timer = null;
    }
  };
  /** Gives `members` one shared deadline; the timer marks those still queued or running as lost. */
  const joinGroup = (members: Held[], deadline: number) => {
    if (!members.length) return;
    const g: Group = { deadline, timer: null, members: new Set() };
    for (const h of members) {
      leaveGroup(h);
      h.deadline = deadline;
      h.group = g;
      g.members.add(h);
    }
    g.timer = setTimeout(() => {
      g.timer = null;
      for (const h of [...g.members]) if (h.state === 'queued' || h.state === 'running') markLost(h, 'deadline');
      wake();
    }, Math.max(0, deadline - monotonic()));
    g.timer.unref();
  };

  const settle = (h: Held) => {
    h.state = 'settled';
    leaveGroup(h);
    held.delete(h.ref.key);
  };
  const markLost = (h: Held, phase: 'renew' | 'deadline' | 'complete' | 'fail' | 'release', error?: LeaseLostError) => {
    if (h.state === 'settled' || h.lost) return;
    h.lost = true;
    const err = error ?? cp.lost(h.ref, phase === 'deadline' ? 'keep (lease deadline passed)' : phase);
    abortHeld(h, err);
    if (h.state === 'queued') {
      const idx = queue.indexOf(h);
      if (idx >= 0) queue.splice(idx, 1);
    }
    // A running handler settles when it returns; a queued or completing one settles now.
    if (h.state !== 'running') settle(h);
    summary.lost += 1;
    cp.emit('lease.lost', { stream, owner, key: h.ref.key, token: h.ref.token, phase, error: err });
  };

  // Renewal of every held lease, one statement per tick, at a third of the lease.
  let renewing = false;
  const renewTimer = setInterval(() => {
    if (renewing || held.size === 0) return;
    renewing = true;
    const list = [...held.values()];
    const startedAt = monotonic();
    track(
      backend
        .renew(stream, list.map((h) => h.ref), o.leaseMs)
        .then((expiries) => {
          const renewed: Held[] = [];
          list.forEach((h, i) => {
            const exp = expiries[i];
            if (h.state === 'settled') return;
            if (exp === null || exp === undefined) {
              if (h.state !== 'completing') markLost(h, 'renew');
              return;
            }
            h.lease = { ...h.lease, expiresAt: exp };
            renewed.push(h);
          });
          joinGroup(renewed, startedAt + o.leaseMs);
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
    flushRetry = false;
    const batch = pendingCompletions;
    pendingCompletions = [];
    if (!batch.length) {
      wake();
      return;
    }
    const now = monotonic();
    const live = batch.filter(({ h }) => {
      if (h.state === 'settled' || h.lost) return false;
      if (h.deadline > now) return true;
      markLost(h, 'deadline');
      return false;
    });
    if (!live.length) {
      wake();
      return;
    }
    track(
      backend
        .complete(stream, live.map(({ h, result }) => ({ lease: h.ref, result })))
        .then((results) => {
          const announce = cp.listenerCount('item.completed') > 0;
          live.forEach(({ h }, i) => {
            if (results[i]?.ok) {
              settle(h);
              summary.completed += 1;
              if (announce) cp.emit('item.completed', { stream, owner, key: h.ref.key, token: h.ref.token });
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
          if (flushTimer) clearTimeout(flushTimer);
          flushTimer = null;
          scheduleFlush(o.pollMs);
          flushRetry = true;
        }),
    );
  };
  const scheduleFlush = (ms: number) => {
    if (flushTimer) return;
    flushTimer = setTimeout(flush, ms); // ref'd: see sleep()
  };

  const runOne = async (h: Held) => {
    running += 1;
    try {
      await runItem(h);
    } finally {
      running -= 1;
      // Take the next queued item here; wake the main loop only when it has something to do
      // (claim more, stop, drain).
      if (!stopping && queue.length > o.concurrency) void runOne(queue.shift()!);
      else wake();
    }
  };
  const runItem = async (h: Held) => {
    h.state = 'running';
    let ok = false;
    let result: JsonValue | null = null;
    let failure: unknown;
    try {
      const item: WorkItem = { key: h.lease.key, payload: h.lease.payload, priority: h.lease.priority, attempts: h.lease.attempts };
      const value = await handler(item, new Context(h, signalOf));
      result = value === undefined ? null : (value as JsonValue);
      ok = true;
    } catch (err) {
      failure = err;
    }
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
      pendingCompletions.push({ h, result });
      if (pendingCompletions.length >= batchSize || stopping) flush();
      else scheduleFlush(o.flushMs);
      return;
    }
    h.state = 'completing';
    if (stopping) {
      // Stopped mid-work: give the item back without counting an attempt.
      await releaseMany([h]);
      return;
    }
    const attempts = h.lease.attempts;
    const dead = attempts + 1 >= cp.maxAttempts;
    const error = errorText(failure);
    try {
      const res = await backend.fail(stream, h.ref, {
        error,
        status: dead ? 'dead' : 'failed',
        retryInMs: dead ? 0 : cp.retryDelay(attempts),
      });
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

  const startClaim = (idle: boolean) => {
    claimsInFlight += 1;
    const startedAt = monotonic();
    track(
      backend.claim(stream, { owner, limit: batchSize, leaseMs: o.leaseMs, maxAttempts: cp.maxAttempts }).then(
        (leases) => {
          claimsInFlight -= 1;
          if (!leases.length) {
            if (idle) drained = true;
            else claimBlocked = true;
            return;
          }
          claimBlocked = false;
          summary.claimed += leases.length;
          if (cp.listenerCount('batch.claimed')) cp.emit('batch.claimed', { stream, owner, leases });
          const fresh: Held[] = [];
          for (const lease of leases) {
            const h: Held = {
              lease,
              ref: { key: lease.key, token: lease.token, owner: lease.owner },
              ctrl: null,
              aborted: false,
              abortReason: undefined,
              deadline: startedAt + o.leaseMs,
              group: null,
              state: 'queued',
              lost: false,
            };
            held.set(lease.key, h);
            queue.push(h);
            fresh.push(h);
          }
          joinGroup(fresh, startedAt + o.leaseMs);
        },
        (err: unknown) => {
          claimsInFlight -= 1;
          reportError(err, 'claim');
          retryAt = monotonic() + o.pollMs;
        },
      ),
    );
  };

  const onAbort = () => {
    stopping = true;
    for (const h of held.values()) if (h.state === 'running') abortHeld(h, o.signal?.reason);
    wake();
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    for (;;) {
      while (!stopping && running < o.concurrency && queue.length) void runOne(queue.shift()!);
      if (stopping) break;
      if (drained) {
        if (o.until === 'drained') break;
        await sleep(o.pollMs);
        drained = false;
        claimBlocked = false;
        continue;
      }
      const idle = running === 0 && queue.length === 0 && held.size === 0 && inflight.size === 0;
      const mayClaim = claimsInFlight === 0 || (claimsInFlight < MAX_CLAIMS_IN_FLIGHT && held.size > 0);
      if (mayClaim && queue.length < o.concurrency && (!claimBlocked || idle)) {
        const wait = retryAt - monotonic();
        if (wait <= 0) {
          startClaim(idle);
          continue;
        }
        // After a store error: try again once the pause is over (ref'd: see sleep()).
        retryTimer ??= setTimeout(() => {
          retryTimer = null;
          wake();
        }, Math.ceil(wait) + 1);
      }
      // Flush completions early when nothing else is running, so the drain check sees them.
      if (running === 0 && queue.length === 0 && pendingCompletions.length && !flushRetry) flush();
      await nextWake();
    }

    // Stop or drain: give back what never started, let running handlers settle, write completions.
    if (stopping) summary.reason = 'aborted';
    while (running > 0 || inflight.size > 0 || pendingCompletions.length || queue.length) {
      if (queue.length) {
        await releaseMany(queue.splice(0));
        continue;
      }
      if (pendingCompletions.length && running === 0 && !flushRetry) flush();
      if (inflight.size === 0 && running === 0 && !flushTimer) continue;
      // A pending flush timer (a retry after a store error) wakes us when it has written.
      await Promise.race([...inflight, nextWake()]);
    }
  } finally {
    clearInterval(renewTimer);
    if (flushTimer) clearTimeout(flushTimer);
    if (retryTimer) clearTimeout(retryTimer);
    for (const h of held.values()) leaveGroup(h);
    o.signal?.removeEventListener('abort', onAbort);
  }
  progress();
  return summary;
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.length > 2000 ? `${text.slice(0, 1997)}...` : text;
}
