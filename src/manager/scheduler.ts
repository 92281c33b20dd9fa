import type { Clock } from '../types.js';
import { AbortedError } from '../errors.js';

/** A scheduled task; `cancel()` is idempotent. */
export interface ScheduledTask {
  cancel(): void;
}

interface Entry extends ScheduledTask {
  at: number;
  seq: number;
  fn: (() => void) | null;
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

  constructor(clock: Clock, onError: (error: unknown) => void) {
    this.#clock = clock;
    this.#onError = onError;
  }

  get size(): number {
    return this.#heap.length - this.#cancelled;
  }

  /** Runs `fn` after `delayMs` (on the injected clock). */
  schedule(delayMs: number, fn: () => void): ScheduledTask {
    const entry: Entry = {
      at: this.#clock.now() + Math.max(0, delayMs),
      seq: this.#seq++,
      fn,
      cancel: () => {
        if (entry.fn === null) return;
        entry.fn = null;
        this.#cancelled++;
        if (this.#cancelled > 64 && this.#cancelled > this.#heap.length / 2) this.#compact();
      },
    };
    if (this.#closed) {
      entry.fn = null;
      return entry;
    }
    this.#push(entry);
    if (entry.at < this.#timerAt) this.#arm();
    return entry;
  }

  /** Resolves after `ms`; rejects with the signal's reason (or AbortedError) when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason ?? new AbortedError());
      const onAbort = () => {
        task.cancel();
        reject(signal?.reason ?? new AbortedError());
      };
      const task = this.schedule(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
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
    this.#timerAt = next.at;
    this.#timer = this.#clock.setTimeout(() => this.#fire(), Math.max(0, next.at - this.#clock.now()));
  }

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
        fn();
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
      [h[i], h[p]] = [h[p]!, h[i]!];
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
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
