import type { z } from 'zod';
import { ValidationError, type LeaseLostError } from '../../errors.js';
import { systemClock, type Clock, type JsonValue } from '../../types.js';
import { parseWith } from '../../validation.js';
import type { CheckpointEvents, WorkItem } from '../checkpoint.js';
import type { CheckpointBackend, Lease, LeaseRef } from '../contract.js';
import { processOptionsSchema, type ProcessOptions, type ProcessSummary, type WorkHandler } from '../process.js';
import { Claimer } from './claimer.js';
import { CompletionBatcher } from './completion-batcher.js';
import { HandlerContext, HeldLease, type HeldState } from './held-lease.js';
import { LeaseKeeper, type LeaseLossReason } from './lease-keeper.js';

/** What a checkpoint hands its `process()` runner (never part of the public class). */
export interface ProcessHost {
  readonly stream: string;
  readonly maxAttempts: number;
  /** Every timer and time read of the run. */
  readonly clock: Clock;
  /** The backend, once it is ready. */
  backend(): Promise<CheckpointBackend>;
  /** Retry delay after a lease that had `attempts` earlier failures fails again. */
  retryDelay(attempts: number): number;
  /** The error of a lease lost during `operation`. */
  lost(ref: LeaseRef, operation: string): LeaseLostError;
  emit<E extends keyof CheckpointEvents>(event: E, payload: Parameters<CheckpointEvents[E]>[0]): void;
  /** Whether anyone listens (spares building payloads nobody reads). */
  listens(event: keyof CheckpointEvents): boolean;
}

type LossPhase = Parameters<CheckpointEvents['lease.lost']>[0]['phase'];
interface Completion {
  held: HeldLease;
  result: JsonValue | null;
}

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
 * One `process()` run: takes claimed leases through their handlers and settles each one exactly
 * once (completed, failed, released or lost). The claimer decides when to claim, the lease keeper
 * keeps every held lease alive (or says it is lost), the batcher writes completions together.
 */
class ProcessRunner {
  readonly #host: ProcessHost;
  readonly #backend: CheckpointBackend;
  readonly #handler: WorkHandler;
  readonly #o: z.output<typeof processOptionsSchema>;
  readonly #summary: ProcessSummary = { reason: 'drained', claimed: 0, completed: 0, failed: 0, dead: 0, lost: 0, released: 0, errors: 0 };
  /** Every lease held, by key, until it settles. */
  readonly #held = new Map<string, HeldLease>();
  /** Claimed, waiting for a handler slot. */
  readonly #queue: HeldLease[] = [];
  /** Store calls under way (claims, renewals, completion writes). */
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #keeper: LeaseKeeper<HeldLease>;
  readonly #claimer: Claimer;
  readonly #batcher: CompletionBatcher<Completion>;
  #running = 0;
  #stopping: boolean;
  #wakeResolve: (() => void) | null = null;

  constructor(host: ProcessHost, backend: CheckpointBackend, handler: WorkHandler, o: z.output<typeof processOptionsSchema>) {
    this.#host = host;
    this.#backend = backend;
    this.#handler = handler;
    this.#o = o;
    this.#stopping = o.signal?.aborted ?? false;
    const { clock, stream } = host;
    const batchSize = o.batchSize ?? Math.min(200, Math.max(16, 8 * o.concurrency));
    this.#keeper = new LeaseKeeper<HeldLease>({
      clock,
      leaseMs: o.leaseMs,
      renew: (held, leaseMs) => backend.renew(stream, held.map((h) => h.ref), leaseMs),
      renewed: (h, expiresAt) => {
        h.lease = { ...h.lease, expiresAt };
      },
      lost: (h, reason) => this.#keeperLost(h, reason),
      error: (error) => this.#reportError(error, 'renew'),
      track: this.#track,
    });
    this.#claimer = new Claimer({
      clock,
      concurrency: o.concurrency,
      pollMs: o.pollMs,
      signal: o.signal,
      claim: () => backend.claim(stream, { owner: o.owner, limit: batchSize, leaseMs: o.leaseMs, maxAttempts: host.maxAttempts }),
      claimed: (leases, startedAt) => this.#claimed(leases, startedAt),
      error: (error) => this.#reportError(error, 'claim'),
      track: this.#track,
      wake: this.#wake,
    });
    this.#batcher = new CompletionBatcher<Completion>({
      clock,
      batchSize,
      flushMs: o.flushMs,
      retryMs: o.pollMs,
      keep: (c) => this.#worthCompleting(c.held),
      write: (batch) => backend.complete(stream, batch.map((c) => ({ lease: c.held.ref, result: c.result }))),
      written: (batch, results) => this.#completed(batch, results),
      error: (error) => this.#reportError(error, 'complete'),
      idle: this.#wake,
      track: this.#track,
    });
  }

  async run(): Promise<ProcessSummary> {
    const o = this.#o;
    const queue = this.#queue;
    // The system clock's timers are unref'd, but whoever awaits process() expects its answer:
    // hold the event loop open until the run ends.
    const keepAlive = this.#host.clock === systemClock ? setInterval(() => {}, 1 << 30) : null;
    o.signal?.addEventListener('abort', this.#onAbort, { once: true });
    try {
      for (;;) {
        while (!this.#stopping && this.#running < o.concurrency && queue.length) void this.#runOne(queue.shift()!);
        if (this.#stopping) break;
        if (this.#claimer.drained) {
          if (o.until === 'drained') break;
          await this.#claimer.poll();
          continue;
        }
        const idle = this.#running === 0 && queue.length === 0 && this.#held.size === 0 && this.#inflight.size === 0;
        if (this.#claimer.maybeClaim(idle, this.#held.size, queue.length)) continue;
        // Flush completions early when nothing else is running, so the drain check sees them.
        if (this.#running === 0 && queue.length === 0 && this.#batcher.pending && !this.#batcher.retrying) this.#batcher.flush();
        await this.#nextWake();
      }

      // Stop or drain: give back what never started, let running handlers settle, write completions.
      if (this.#stopping) this.#summary.reason = 'aborted';
      while (this.#running > 0 || this.#inflight.size > 0 || this.#batcher.pending || queue.length) {
        if (queue.length) {
          await this.#releaseMany(queue.splice(0));
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
    this.#progress();
    return this.#summary;
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
    for (const h of this.#held.values()) if (h.state === 'running') h.abort(this.#o.signal?.reason);
    this.#wake();
  };

  #claimed(leases: Lease[], startedAt: number): void {
    const { stream } = this.#host;
    this.#summary.claimed += leases.length;
    if (this.#host.listens('batch.claimed')) this.#host.emit('batch.claimed', { stream, owner: this.#o.owner, leases });
    const fresh: HeldLease[] = [];
    for (const lease of leases) {
      const h = new HeldLease(lease);
      this.#held.set(lease.key, h);
      this.#queue.push(h);
      fresh.push(h);
    }
    this.#keeper.hold(fresh, startedAt);
  }

  async #runOne(h: HeldLease): Promise<void> {
    this.#running += 1;
    try {
      await this.#runItem(h);
    } finally {
      this.#running -= 1;
      // Take the next queued item here; wake the main loop only when it has something to do
      // (claim more, stop, drain).
      if (!this.#stopping && this.#queue.length > this.#o.concurrency) void this.#runOne(this.#queue.shift()!);
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
      // The lease was lost while the handler ran: #markLost counted it; never complete.
      this.#settle(h);
      return;
    }
    if (this.#keeper.expired(h)) {
      h.state = 'queued';
      this.#markLost(h, 'deadline');
      return;
    }
    h.state = 'completing';
    if (ok) {
      this.#batcher.add({ held: h, result }, this.#stopping);
      return;
    }
    if (this.#stopping) {
      // Stopped mid-work: give the item back without counting an attempt.
      await this.#releaseMany([h]);
      return;
    }
    await this.#fail(h, failure);
  }

  async #fail(h: HeldLease, failure: unknown): Promise<void> {
    const { stream, maxAttempts } = this.#host;
    const attempts = h.lease.attempts;
    const dead = attempts + 1 >= maxAttempts;
    const status = dead ? 'dead' : 'failed';
    const error = errorText(failure);
    try {
      const res = await this.#backend.fail(stream, h.ref, { error, status, retryInMs: dead ? 0 : this.#host.retryDelay(attempts) });
      if (res.ok) {
        this.#settle(h);
        if (dead) this.#summary.dead += 1;
        else this.#summary.failed += 1;
        this.#host.emit('item.failed', { stream, owner: this.#o.owner, key: h.ref.key, token: h.ref.token, error, status });
      } else {
        this.#markLost(h, 'fail');
      }
    } catch (err) {
      this.#reportError(err, 'fail');
      this.#settle(h); // the lease expires by itself and the item comes back
    }
  }

  async #releaseMany(list: HeldLease[]): Promise<void> {
    if (!list.length) return;
    try {
      const res = await this.#backend.release(this.#host.stream, list.map((h) => h.ref));
      list.forEach((h, i) => {
        if (res[i]?.ok) {
          this.#settle(h);
          this.#summary.released += 1;
        } else this.#markLost(h, 'release');
      });
    } catch (err) {
      this.#reportError(err, 'release');
      list.forEach((h) => this.#settle(h));
    }
  }

  /** Still to be completed when its batch is written? Drops (and reports) a lease past its deadline. */
  #worthCompleting(h: HeldLease): boolean {
    if (h.state === 'settled' || h.lost) return false;
    if (!this.#keeper.expired(h)) return true;
    this.#markLost(h, 'deadline');
    return false;
  }

  #completed(batch: readonly Completion[], results: readonly ({ ok: boolean } | undefined)[]): void {
    const { stream } = this.#host;
    const announce = this.#host.listens('item.completed');
    batch.forEach(({ held: h }, i) => {
      if (results[i]?.ok) {
        this.#settle(h);
        this.#summary.completed += 1;
        if (announce) this.#host.emit('item.completed', { stream, owner: this.#o.owner, key: h.ref.key, token: h.ref.token });
      } else {
        this.#markLost(h, 'complete');
      }
    });
    this.#progress();
  }

  /** The keeper's report: a refused renewal loses a lease unless its completion is being written; a passed deadline, one not yet done. */
  #keeperLost(h: HeldLease, reason: LeaseLossReason): void {
    if (reason === 'renew') {
      if (h.state !== 'completing') this.#markLost(h, 'renew');
      return;
    }
    if (h.state === 'queued' || h.state === 'running') this.#markLost(h, 'deadline');
    this.#wake();
  }

  #settle(h: HeldLease): void {
    h.state = 'settled';
    this.#keeper.release(h);
    this.#held.delete(h.ref.key);
  }

  #markLost(h: HeldLease, phase: LossPhase): void {
    if (h.state === 'settled' || h.lost) return;
    h.lost = true;
    const { stream } = this.#host;
    const error = this.#host.lost(h.ref, phase === 'deadline' ? 'keep (lease deadline passed)' : phase);
    h.abort(error);
    if (h.state === 'queued') {
      const idx = this.#queue.indexOf(h);
      if (idx >= 0) this.#queue.splice(idx, 1);
    }
    // A running handler settles when it returns; a queued or completing one settles now.
    if (h.state !== 'running') this.#settle(h);
    this.#summary.lost += 1;
    this.#host.emit('lease.lost', { stream, owner: this.#o.owner, key: h.ref.key, token: h.ref.token, phase, error });
  }

  #reportError(error: unknown, operation: string): void {
    this.#summary.errors += 1;
    const { stream } = this.#host;
    this.#host.emit('process.error', { stream, owner: this.#o.owner, operation, error: error instanceof Error ? error : new Error(String(error)) });
  }

  #progress(): void {
    if (!this.#host.listens('process.progress')) return;
    const { stream } = this.#host;
    this.#host.emit('process.progress', { ...this.#summary, stream, owner: this.#o.owner, inFlight: this.#held.size });
  }
}

/** The failure as stored on the item: its message (or name), at most 2,000 characters. */
function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.length > 2000 ? `${text.slice(0, 1997)}...` : text;
}
