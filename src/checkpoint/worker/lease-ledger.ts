import type { JsonValue } from '../../types.js';
import type { CheckpointBackend, Lease } from '../contract.js';
import type { ProcessSummary } from '../process.js';
import { HeldLease } from './held-lease.js';
import type { LossPhase, ProcessHost } from './process-host.js';

/** A handler's result on its way to the store. */
export interface Completion {
  held: HeldLease;
  result: JsonValue | null;
}

/**
 * The book of a `process()` run: the leases it holds (and which of them wait to run), how each
 * one ended — completed, failed, released or lost, exactly once — and the summary's counters and
 * the events that go with them.
 */
export class LeaseLedger {
  readonly summary: ProcessSummary = { reason: 'drained', claimed: 0, completed: 0, failed: 0, dead: 0, lost: 0, released: 0, errors: 0 };
  readonly #host: ProcessHost;
  readonly #backend: CheckpointBackend;
  readonly #owner: string;
  /** Called once for each lease that settles (to stop keeping it). */
  readonly #settled: (h: HeldLease) => void;
  /** Every lease held, by key, until it settles. */
  readonly #held = new Map<string, HeldLease>();
  /** Claimed, waiting for a handler slot. */
  readonly #queue: HeldLease[] = [];

  constructor(host: ProcessHost, backend: CheckpointBackend, owner: string, settled: (h: HeldLease) => void) {
    this.#host = host;
    this.#backend = backend;
    this.#owner = owner;
    this.#settled = settled;
  }

  /** Leases held. */
  get size(): number {
    return this.#held.size;
  }

  /** Leases waiting for a handler slot. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The next lease to run, taken off the queue. */
  next(): HeldLease | undefined {
    return this.#queue.shift();
  }

  /** Every queued lease, taken off the queue. */
  takeQueued(): HeldLease[] {
    return this.#queue.splice(0);
  }

  held(): IterableIterator<HeldLease> {
    return this.#held.values();
  }

  /** Holds freshly claimed leases, queued to run; returns their records. */
  admit(leases: Lease[]): HeldLease[] {
    this.summary.claimed += leases.length;
    if (this.#host.listens('batch.claimed')) this.#host.emit('batch.claimed', { stream: this.#host.stream, owner: this.#owner, leases });
    const fresh: HeldLease[] = [];
    for (const lease of leases) {
      const h = new HeldLease(lease);
      this.#held.set(lease.key, h);
      this.#queue.push(h);
      fresh.push(h);
    }
    return fresh;
  }

  settle(h: HeldLease): void {
    h.state = 'settled';
    this.#settled(h);
    this.#held.delete(h.ref.key);
  }

  /** Counts and announces a lost lease (once), aborts its handler's signal; settles it unless its handler runs. */
  lose(h: HeldLease, phase: LossPhase): void {
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
    if (h.state !== 'running') this.settle(h);
    this.summary.lost += 1;
    this.#host.emit('lease.lost', { stream, owner: this.#owner, key: h.ref.key, token: h.ref.token, phase, error });
  }

  /** A completion batch came back: `results[i]` is `batch[i]`'s compare-and-swap. */
  completed(batch: readonly Completion[], results: readonly ({ ok: boolean } | undefined)[]): void {
    const { stream } = this.#host;
    const announce = this.#host.listens('item.completed');
    batch.forEach(({ held: h }, i) => {
      if (results[i]?.ok) {
        this.settle(h);
        this.summary.completed += 1;
        if (announce) this.#host.emit('item.completed', { stream, owner: this.#owner, key: h.ref.key, token: h.ref.token });
      } else {
        this.lose(h, 'complete');
      }
    });
    this.progress();
  }

  /** Records a handler failure: retried after the back-off, or `dead` after `maxAttempts`. */
  async fail(h: HeldLease, failure: unknown): Promise<void> {
    const { stream, maxAttempts } = this.#host;
    const attempts = h.lease.attempts;
    const dead = attempts + 1 >= maxAttempts;
    const status = dead ? 'dead' : 'failed';
    const error = errorText(failure);
    try {
      const res = await this.#backend.fail(stream, h.ref, { error, status, retryInMs: dead ? 0 : this.#host.retryDelay(attempts) });
      if (res.ok) {
        this.settle(h);
        if (dead) this.summary.dead += 1;
        else this.summary.failed += 1;
        this.#host.emit('item.failed', { stream, owner: this.#owner, key: h.ref.key, token: h.ref.token, error, status });
      } else {
        this.lose(h, 'fail');
      }
    } catch (err) {
      this.error(err, 'fail');
      this.settle(h); // the lease expires by itself and the item comes back
    }
  }

  /** Gives leases back unprocessed (no attempt counted). */
  async release(list: HeldLease[]): Promise<void> {
    if (!list.length) return;
    try {
      const res = await this.#backend.release(this.#host.stream, list.map((h) => h.ref));
      list.forEach((h, i) => {
        if (res[i]?.ok) {
          this.settle(h);
          this.summary.released += 1;
        } else this.lose(h, 'release');
      });
    } catch (err) {
      this.error(err, 'release');
      list.forEach((h) => this.settle(h));
    }
  }

  /** A store error met (and retried, or left to lease expiry). */
  error(error: unknown, operation: string): void {
    this.summary.errors += 1;
    const { stream } = this.#host;
    this.#host.emit('process.error', { stream, owner: this.#owner, operation, error: error instanceof Error ? error : new Error(String(error)) });
  }

  progress(): void {
    if (!this.#host.listens('process.progress')) return;
    this.#host.emit('process.progress', { ...this.summary, stream: this.#host.stream, owner: this.#owner, inFlight: this.#held.size });
  }
}

/** The failure as stored on the item: its message (or name), at most 2,000 characters. */
function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.length > 2000 ? `${text.slice(0, 1997)}...` : text;
}
