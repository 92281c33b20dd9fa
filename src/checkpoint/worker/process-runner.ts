import type { z } from 'zod';
import { ValidationError } from '../../errors.js';
import { systemClock, type JsonValue } from '../../types.js';
import { parseWith } from '../../validation.js';
import type { WorkItem } from '../checkpoint.js';
import type { CheckpointBackend } from '../contract.js';
import { processOptionsSchema, type ProcessOptions, type ProcessSummary, type WorkHandler } from '../process.js';
import { Claimer } from './claimer.js';
import { CompletionBatcher } from './completion-batcher.js';
import { HandlerContext, type HeldLease, type HeldState } from './held-lease.js';
import { LeaseKeeper, type LeaseLossReason } from './lease-keeper.js';
import { LeaseLedger, type Completion } from './lease-ledger.js';
import type { ProcessHost } from './process-host.js';

export type { ProcessHost } from './process-host.js';

/** `Checkpoint.process()`: validates, waits for the backend, runs. */
export async function runProcess(host: ProcessHost, handler: WorkHandler, options: ProcessOptions): Promise<ProcessSummary> {
  if (typeof handler !== 'function') {
    throw new ValidationError('process handler', [{ path: [], message: 'pass a function (item, { lease, signal }) => result' }]);
  }
  const o = parseWith(processOptionsSchema, options, 'process options');
  const backend = await host.backend();
  return new ProcessRunner(host, backend, handler, o).run();
}

/**
 * One `process()` run: feeds claimed leases to the handler, `concurrency` at a time, until the
 * stream is drained or the signal stops it. The claimer decides when to claim, the lease keeper
 * keeps every held lease alive (or says it is lost), the batcher writes completions together,
 * and the ledger settles each lease exactly once and keeps the counters.
 */
class ProcessRunner {
  readonly #o: z.output<typeof processOptionsSchema>;
  readonly #handler: WorkHandler;
  readonly #usesSystemClock: boolean;
  readonly #ledger: LeaseLedger;
  readonly #keeper: LeaseKeeper<HeldLease>;
  readonly #claimer: Claimer;
  readonly #batcher: CompletionBatcher<Completion>;
  /** Store calls under way (claims, renewals, completion writes). */
  readonly #inflight = new Set<Promise<unknown>>();
  #running = 0;
  #stopping: boolean;
  #wakeResolve: (() => void) | null = null;

  constructor(host: ProcessHost, backend: CheckpointBackend, handler: WorkHandler, o: z.output<typeof processOptionsSchema>) {
    this.#o = o;
    this.#handler = handler;
    this.#stopping = o.signal?.aborted ?? false;
    const { clock, stream } = host;
    this.#usesSystemClock = clock === systemClock;
    const batchSize = o.batchSize ?? Math.min(200, Math.max(16, 8 * o.concurrency));
    const ledger = (this.#ledger = new LeaseLedger(host, backend, o.owner, (h) => this.#keeper.release(h)));
    this.#keeper = new LeaseKeeper<HeldLease>({
      clock,
      leaseMs: o.leaseMs,
      renew: (held, leaseMs) => backend.renew(stream, held.map((h) => h.ref), leaseMs),
      renewed: (h, expiresAt) => {
        h.lease = { ...h.lease, expiresAt };
      },
      lost: (h, reason) => this.#keeperLost(h, reason),
      error: (error) => ledger.error(error, 'renew'),
      track: this.#track,
    });
    this.#claimer = new Claimer({
      clock,
      concurrency: o.concurrency,
      // Two (claim-ahead), or enough to keep every handler busy when a claim brings few items.
      maxInFlight: Math.max(2, Math.min(o.concurrency, Math.ceil(o.concurrency / batchSize) + 1)),
      pollMs: o.pollMs,
      signal: o.signal,
      claim: () => host.claim({ owner: o.owner, limit: batchSize, leaseMs: o.leaseMs }),
      claimed: (leases, startedAt) => this.#keeper.hold(ledger.admit(leases), startedAt),
      error: (error) => ledger.error(error, 'claim'),
      track: this.#track,
      wake: this.#wake,
    });
    this.#batcher = new CompletionBatcher<Completion>({
      clock,
      batchSize,
      flushMs: o.flushMs,
      retryMs: o.pollMs,
      keep: (c) => this.#worthCompleting(c.held),
      write: (batch) => host.complete(batch.map((c) => ({ lease: c.held.ref, result: c.result }))),
      written: (batch, results) => ledger.completed(batch, results),
      error: (error) => ledger.error(error, 'complete'),
      idle: this.#wake,
      track: this.#track,
    });
  }

  async run(): Promise<ProcessSummary> {
    const o = this.#o;
    const ledger = this.#ledger;
    // The system clock's timers are unref'd, but whoever awaits process() expects its answer:
    // hold the event loop open until the run ends.
    const keepAlive = this.#usesSystemClock ? setInterval(() => {}, 1 << 30) : null;
    o.signal?.addEventListener('abort', this.#onAbort, { once: true });
    try {
      for (;;) {
        while (!this.#stopping && this.#running < o.concurrency && ledger.queued) void this.#runOne(ledger.next()!);
        if (this.#stopping) break;
        if (this.#claimer.drained) {
          if (o.until === 'drained') break;
          await this.#claimer.poll();
          continue;
        }
        const idle = this.#running === 0 && ledger.queued === 0 && ledger.size === 0 && this.#inflight.size === 0;
        if (this.#claimer.maybeClaim(idle, ledger.size, ledger.queued)) continue;
        // Flush completions early when nothing else is running, so the drain check sees them.
        if (this.#running === 0 && ledger.queued === 0 && this.#batcher.pending && !this.#batcher.retrying) this.#batcher.flush();
        await this.#nextWake();
      }

      // Stop or drain: give back what never started, let running handlers settle, write completions.
      if (this.#stopping) ledger.summary.reason = 'aborted';
      while (this.#running > 0 || this.#inflight.size > 0 || this.#batcher.pending || ledger.queued) {
        if (ledger.queued) {
          await ledger.release(ledger.takeQueued());
          continue;
        }
        if (this.#batcher.pending && this.#running === 0 && !this.#batcher.retrying) this.#batcher.flush();
        if (this.#inflight.size === 0 && this.#running === 0 && !this.#batcher.scheduled) continue;
        // A scheduled flush (a retry after a store error) wakes us when it has written.
        await Promise.race([...this.#inflight, this.#nextWake()]);
      }
    } finally {
      this.#keeper.stop();
      this.#batcher.stop();
      this.#claimer.stop();
      o.signal?.removeEventListener('abort', this.#onAbort);
      if (keepAlive) clearInterval(keepAlive);
    }
    ledger.progress();
    return ledger.summary;
  }

  readonly #wake = (): void => {
    const resolve = this.#wakeResolve;
    this.#wakeResolve = null;
    resolve?.();
  };

  #nextWake(): Promise<void> {
    return new Promise<void>((resolve) => (this.#wakeResolve = resolve));
  }

  readonly #track = (p: Promise<unknown>): void => {
    this.#inflight.add(p);
    void p
      .finally(() => {
        this.#inflight.delete(p);
        this.#wake();
      })
      .catch(() => {});
  };

  readonly #onAbort = (): void => {
    this.#stopping = true;
    for (const h of this.#ledger.held()) if (h.state === 'running') h.abort(this.#o.signal?.reason);
    this.#wake();
  };

  async #runOne(h: HeldLease): Promise<void> {
    this.#running += 1;
    try {
      await this.#runItem(h);
    } finally {
      this.#running -= 1;
      // Take the next queued item here; wake the main loop only when it has something to do
      // (claim more, stop, drain).
      if (!this.#stopping && this.#ledger.queued > this.#o.concurrency) void this.#runOne(this.#ledger.next()!);
      else this.#wake();
    }
  }

  async #runItem(h: HeldLease): Promise<void> {
    h.state = 'running';
    let ok = false;
    let result: JsonValue | null = null;
    let failure: unknown;
    try {
      const item: WorkItem = { key: h.lease.key, payload: h.lease.payload, priority: h.lease.priority, attempts: h.lease.attempts };
      const value = await this.#handler(item, new HandlerContext(h));
      result = value === undefined ? null : (value as JsonValue);
      ok = true;
    } catch (err) {
      failure = err;
    }
    // Never settle a lease twice (nothing settles a running one today).
    if ((h.state as HeldState) === 'settled') return;
    if (h.lost) {
      // The lease was lost while the handler ran: the ledger counted it; never complete.
      this.#ledger.settle(h);
      return;
    }
    if (this.#keeper.expired(h)) {
      h.state = 'queued';
      this.#ledger.lose(h, 'deadline');
      return;
    }
    h.state = 'completing';
    if (ok) {
      this.#batcher.add({ held: h, result }, this.#stopping);
    } else if (this.#stopping) {
      // Stopped mid-work: give the item back without counting an attempt.
      await this.#ledger.release([h]);
    } else {
      await this.#ledger.fail(h, failure);
    }
  }

  /** Still to be completed when its batch is written? Drops (and reports) a lease past its deadline. */
  #worthCompleting(h: HeldLease): boolean {
    if (h.state === 'settled' || h.lost) return false;
    if (!this.#keeper.expired(h)) return true;
    this.#ledger.lose(h, 'deadline');
    return false;
  }

  /**
   * The keeper's report. A refused renewal loses a lease unless its completion is on its way (the
   * completion's own compare-and-swap decides); a passed deadline loses one not yet handed in
   * (the batcher drops those past their deadline when it writes).
   */
  #keeperLost(h: HeldLease, reason: LeaseLossReason): void {
    if (reason === 'renew') {
      if (h.state !== 'completing') this.#ledger.lose(h, 'renew');
      return;
    }
    if (h.state === 'queued' || h.state === 'running') this.#ledger.lose(h, 'deadline');
    this.#wake();
  }
}
