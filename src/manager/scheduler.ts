import type { Clock } from '../types.js';
import { AbortedError } from '../errors.js';
import type { Cancellation } from './cancellation.js';

/** Heap index of a task taken out of the heap to run in the current batch. */
const DUE = -2;

/** A scheduled task. `cancel()` is idempotent; `rearm(ms)` runs it again after `ms` (same function). */
export interface ScheduledTask {
  cancel(): void;
  rearm(delayMs: number): void;
  /**
   * Arms the task `delayMs` from now, but only at the end of this event-loop turn, and not at all
   * when it is cancelled before then. For timeouts of calls that usually settle at once (a
   * health probe): those never touch the heap.
   */
  rearmSoon(delayMs: number): void;
}

/**
 * A task in the heap. It knows its heap index, so cancelling removes it at once and re-arming
 * moves it in place: a session's health tick is one object for its whole life, and nothing
 * cancelled lingers (a lingering, promoted entry is old-generation garbage at 10,000 sessions).
 */
class Task implements ScheduledTask {
  at = 0;
  seq = 0;
  /** Position in the heap; -1 when not scheduled. */
  index = -1;
  /** When rearmSoon() was called (its delay counts from then); -1 when not waiting to be armed. */
  soonAt = -1;
  soonDelay = 0;

  constructor(
    readonly owner: Scheduler,
    readonly fn: (arg: any) => void,
    readonly arg: unknown,
  ) {}

  cancel(): void {
    this.soonAt = -1;
    this.owner.remove(this);
  }

  rearm(delayMs: number): void {
    this.soonAt = -1;
    this.owner.arm(this, delayMs);
  }

  rearmSoon(delayMs: number): void {
    this.owner.armSoon(this, delayMs);
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
  readonly #resolution: number;
  #heap: Task[] = [];
  #seq = 0;
  #timer: unknown = null;
  #timerAt = Infinity;
  #closed = false;

  constructor(clock: Clock, onError: (error: unknown) => void, resolutionMs = 10) {
    this.#clock = clock;
    this.#onError = onError;
    this.#resolution = resolutionMs;
  }

  get size(): number {
    return this.#heap.length;
  }

  /** A task not yet armed: `rearm` or `rearmSoon` schedules it. */
  task<A = undefined>(fn: (arg: A) => void, arg?: A): ScheduledTask {
    return new Task(this, fn, arg);
  }

  /** Runs `fn(arg)` after `delayMs` (on the injected clock). Passing `arg` spares a closure per task. */
  schedule<A = undefined>(delayMs: number, fn: (arg: A) => void, arg?: A): ScheduledTask {
    const task = new Task(this, fn, arg);
    this.arm(task, delayMs);
    return task;
  }

  /** For {@link Task}: (re)schedules it `delayMs` from now. */
  arm(task: Task, delayMs: number): void {
    if (this.#closed) return;
    if (task.index >= 0) this.remove(task);
    task.at = this.#clock.now() + Math.max(0, delayMs);
    task.seq = this.#seq++;
    task.index = this.#heap.length;
    this.#heap.push(task);
    this.#up(task.index);
    if (this.#gridded(task.at) < this.#timerAt) this.#arm();
  }

  #soon: Task[] = [];
  #soonScheduled: NodeJS.Immediate | null = null;

  /** For {@link Task}: see {@link ScheduledTask.rearmSoon}. */
  armSoon(task: Task, delayMs: number): void {
    if (this.#closed) return;
    this.remove(task);
    task.soonAt = this.#clock.now();
    task.soonDelay = delayMs;
    this.#soon.push(task);
    if (!this.#soonScheduled) {
      this.#soonScheduled = setImmediate(this.#armSoonTasks);
      this.#soonScheduled.unref();
    }
  }

  readonly #armSoonTasks = () => {
    this.#soonScheduled = null;
    const tasks = this.#soon;
    this.#soon = [];
    const now = this.#clock.now();
    for (const t of tasks) {
      if (t.soonAt < 0) continue; // cancelled (or re-armed) meanwhile
      const delay = t.soonDelay - (now - t.soonAt);
      t.soonAt = -1;
      this.arm(t, delay);
    }
  };

  /** For {@link Task}: takes it out of the heap (no-op when it is not in it). */
  remove(task: Task): void {
    const i = task.index;
    if (i === DUE) task.index = -1; // taken out to run in this batch: cancelled before its turn
    if (i < 0) return;
    task.index = -1;
    const h = this.#heap;
    const last = h.pop()!;
    if (i < h.length) {
      h[i] = last;
      last.index = i;
      this.#down(i);
      this.#up(last.index);
    }
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
    if (this.#soonScheduled) clearImmediate(this.#soonScheduled);
    this.#soonScheduled = null;
    for (const t of this.#soon) t.soonAt = -1;
    this.#soon = [];
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
    for (const t of this.#heap) t.index = -1;
    this.#heap = [];
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

  #arm(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
    const next = this.#heap[0];
    if (!next) return;
    this.#timerAt = this.#gridded(next.at);
    this.#timer = this.#clock.setTimeout(this.#onTimer, Math.max(0, this.#timerAt - this.#clock.now()));
  }

  readonly #onTimer = () => this.#fire();

  #fire(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    const now = this.#clock.now();
    // Take out everything due now first; tasks scheduled (or re-armed) while running land in the
    // heap and are picked up by the re-arm below, never in this loop, so a zero-delay reschedule
    // cannot spin.
    const due: Task[] = [];
    for (let top = this.#heap[0]; top && top.at <= now; top = this.#heap[0]) {
      this.remove(top);
      top.index = DUE;
      due.push(top);
    }
    for (const t of due) {
      // A task cancelled (or re-armed) by an earlier one in this batch does not run now.
      if (t.index !== DUE || this.#closed) continue;
      t.index = -1;
      try {
        t.fn(t.arg);
      } catch (error) {
        this.#onError(error);
      }
    }
    if (!this.#closed) this.#arm();
  }

  #less(a: Task, b: Task): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #swap(i: number, j: number): void {
    const h = this.#heap;
    const t = h[i]!;
    h[i] = h[j]!;
    h[j] = t;
    h[i]!.index = i;
    h[j]!.index = j;
  }

  #up(i: number): void {
    const h = this.#heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) return;
      this.#swap(i, p);
      i = p;
    }
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
      this.#swap(i, m);
      i = m;
    }
  }
}
