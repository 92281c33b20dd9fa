import type { Clock } from '../../types.js';
import { TimerSlot } from './timer-slot.js';

export interface CompletionBatcherOptions<E> {
  clock: Clock;
  /** A batch this large is written at once. */
  batchSize: number;
  /** The longest a completion waits for others to share its write. */
  flushMs: number;
  /** The pause before a batch is written again after a store error. */
  retryMs: number;
  /**
   * Whether `entry` is still worth writing, checked when its batch is written. False drops it:
   * its lease was settled or lost meanwhile, or its deadline passed (the callback reports that).
   */
  keep(entry: E): boolean;
  /** Writes a batch in ONE store call; resolves with one outcome per entry, in order. */
  write(batch: readonly E[]): Promise<readonly ({ ok: boolean } | undefined)[]>;
  /** A write came back: `results[i]` is `batch[i]`'s outcome. */
  written(batch: readonly E[], results: readonly ({ ok: boolean } | undefined)[]): void;
  /** A write failed (or `written` threw); its live entries wait `retryMs` and go again. */
  error(error: unknown): void;
  /** A flush found nothing to write. */
  idle(): void;
  /** Sees each write's promise (the runner waits for it, and counts it as work in flight). */
  track(write: Promise<unknown>): void;
}

/**
 * Collects the completions of a `process()` run and writes them together: a full batch at once,
 * otherwise within `flushMs` of the first waiting one. After a store error the batch waits
 * `retryMs` and is written again, without the entries whose lease was lost or whose deadline
 * passed in the meantime.
 */
export class CompletionBatcher<E> {
  readonly #o: CompletionBatcherOptions<E>;
  readonly #timer: TimerSlot;
  #pending: E[] = [];
  #retrying = false;

  constructor(options: CompletionBatcherOptions<E>) {
    this.#o = options;
    this.#timer = new TimerSlot(options.clock, () => this.flush());
  }

  /** Completions waiting to be written. */
  get pending(): number {
    return this.#pending.length;
  }

  /** The waiting batch is a retry after a store error: let its timer write it. */
  get retrying(): boolean {
    return this.#retrying;
  }

  /** A flush is scheduled (the window, or the retry after an error). */
  get scheduled(): boolean {
    return this.#timer.armed;
  }

  /** Adds a completion; writes now when the batch is full or `now` is set, else within the window. */
  add(entry: E, now: boolean): void {
    this.#pending.push(entry);
    if (this.#pending.length >= this.#o.batchSize || now) this.flush();
    else this.#timer.arm(this.#o.flushMs);
  }

  /** Writes every waiting completion (still worth writing) in one call. */
  flush(): void {
    const o = this.#o;
    this.#timer.clear();
    this.#retrying = false;
    const batch = this.#pending;
    this.#pending = [];
    const live = batch.length ? batch.filter(o.keep) : batch;
    if (!live.length) {
      o.idle();
      return;
    }
    o.track(
      o
        .write(live)
        .then((results) => o.written(live, results))
        .catch((error: unknown) => {
          o.error(error);
          // Try again after a pause; leases past their deadline are dropped then.
          this.#pending.push(...live);
          this.#timer.clear();
          this.#timer.arm(o.retryMs);
          this.#retrying = true;
        }),
    );
  }

  stop(): void {
    this.#timer.clear();
  }
}
