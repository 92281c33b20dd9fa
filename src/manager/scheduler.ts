import type { Clock } from '../types.js';
import { AbortedError } from '../errors.js';
import type { Cancellation } from './cancellation.js';

/** A scheduled task; `cancel()` is idempotent. */
export interface ScheduledTask {
  cancel(): void;
}

/** A heap entry; a class (not a closure) so ten thousand pending tasks stay small. */
class Entry implements ScheduledTask {
  constructor(
    readonly at: number,
    readonly seq: number,
    public fn: ((arg: any) => void) | null,
    readonly owner: Scheduler,
    readonly arg: unknown,
  ) {}

  cancel(): void {
    if (this.fn === null) return;
    this.fn = null;
    this.owner.noteCancelled();
  }
}

/**
 * One timer for every session's health checks, idle checks, back-offs and timeouts: a binary
 * min-heap of due times on top of a single (unref'd) clock timer. Ten thousand sessions cost
 * one armed timer, not ten thousand.
 */
export class Scheduler {
  readonly #clock: Clock;
  readonly #onError: (error: unknown) => void;
  #heap: Entry[] = [];
  #seq = 0;
  #cancelled = 0;
  #timer: unknown = null;
  #timerAt = Infinity;
  #closed = false;

  readonly #resolution: number;

  constructor(clock: Clock, onError: (error: unknown) => void, resolutionMs = 10) {
    this.#clock = clock;
    this.#onError = onError;
    this.#resolution = resolutionMs;
  }

  get size(): number {
    return this.#heap.length - this.#cancelled;
  }

  /** Runs `fn(arg)` after `delayMs` (on the injected clock). Passing `arg` spares a closure per task. */
  schedule<A = undefined>(delayMs: number, fn: (arg: A) => void, arg?: A): ScheduledTask {
    const entry = new Entry(this.#clock.now() + Math.max(0, delayMs), this.#seq++, this.#closed ? null : fn, this, arg);
    if (this.#closed) return entry;
    this.#push(entry);
    if (this.#gridded(entry.at) < this.#timerAt) this.#arm();
    return entry;
  }

  /** @internal An entry was cancelled: compact the heap when cancelled entries dominate it. */
  noteCancelled(): void {
    this.#cancelled++;
    if (this.#cancelled > 64 && this.#cancelled > this.#heap.length / 2) this.#compact();
  }

  /**
   * Timers fire on a grid of `resolutionMs`: tasks due within one grid step share one wake-up,
   * so ten thousand jittered health checks a second cost at most 1000 / resolutionMs timer
   * callbacks, not ten thousand. A task never fires early, and at most one step late.
   */
  #gridded(at: number): number {
    const r = this.#resolution;
    return r > 1 ? Math.ceil(at / r) * r : at;
  }

  /** Resolves after `ms`; rejects with the cancellation's reason (or AbortedError) when cancelled. */
  sleep(ms: number, cancel?: Cancellation): Promise<void> {
    return new Promise((resolve, reject) => {
      if (cancel?.aborted) return reject(cancel.reason ?? new AbortedError());
      let off = () => {};
      const task = this.schedule(ms, () => {
        off();
        resolve();
      });
      if (cancel) {
        off = cancel.onAbort(() => {
          task.cancel();
          reject(cancel.reason ?? new AbortedError());
        });
      }
    });
  }

  /** Cancels everything and the clock timer; later schedules are ignored. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
    for (const e of this.#heap) e.fn = null;
    this.#heap = [];
    this.#cancelled = 0;
  }

  #arm(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
    const next = this.#peekLive();
    if (!next) return;
    this.#timerAt = this.#gridded(next.at);
    this.#timer = this.#clock.setTimeout(this.#onTimer, Math.max(0, this.#timerAt - this.#clock.now()));
  }

  readonly #onTimer = () => this.#fire();

  #fire(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    const now = this.#clock.now();
    // Run everything due now; tasks scheduled while running land in the heap and are picked up
    // by the re-arm below (never in this loop, so a zero-delay reschedule cannot spin).
    const due: Entry[] = [];
    for (let top = this.#heap[0]; top && top.at <= now; top = this.#heap[0]) {
      this.#pop();
      if (top.fn === null) this.#cancelled--;
      else due.push(top);
    }
    for (const e of due) {
      const fn = e.fn;
      e.fn = null;
      if (!fn) continue;
      try {
        fn(e.arg);
      } catch (error) {
        this.#onError(error);
      }
    }
    if (!this.#closed) this.#arm();
  }

  #peekLive(): Entry | undefined {
    while (this.#heap.length && this.#heap[0]!.fn === null) {
      this.#pop();
      this.#cancelled--;
    }
    return this.#heap[0];
  }

  #compact(): void {
    this.#heap = this.#heap.filter((e) => e.fn !== null);
    this.#cancelled = 0;
    // heapify
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  #less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(e: Entry): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      const t = h[i]!;
      h[i] = h[p]!;
      h[p] = t;
      i = p;
    }
  }

  #pop(): Entry | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      h[0] = last;
      this.#down(0);
    }
    return top;
  }

  #down(i: number): void {
    const h = this.#heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      const t = h[i]!;
      h[i] = h[m]!;
      h[m] = t;
      i = m;
    }
  }
}
