import { TimeoutError } from '../errors.js';
import type { Clock } from '../types.js';

/** Options of {@link createManualClock}. */
export interface ManualClockOptions {
  /**
   * How many `setImmediate` rounds {@link ManualClock.advance} yields to the event loop after
   * each timer (and once before it looks for due timers), so promise chains started by a timer
   * settle before the next one fires. Default 5.
   */
  yieldRounds?: number;
}

/**
 * A {@link Clock} whose time only moves when a test says so. Pass it as the manager's `clock`
 * option and drive health checks, back-off, auth timeouts and idle expiry by hand.
 */
export interface ManualClock extends Clock {
  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way in due-time order
   * (ties: creation order), each with `now()` set to its own due time. Between timers it yields
   * to the event loop so work started by a timer settles first. Timers created while advancing
   * fire within the same call when they fall due before its end. Ends with `now()` at the target.
   * A timer that throws makes `advance` reject with that error (time stays at that timer's due
   * time; later timers stay pending).
   */
  advance(ms: number): Promise<void>;
  /**
   * Fires pending timers one by one, moving time to each one's due time, until none is left.
   * Throws when more than `maxTimers` (default 10,000) fire: a timer that re-arms itself forever.
   * Resolves with how many fired.
   */
  runAll(maxTimers?: number): Promise<number>;
  /** How many timers are scheduled and not yet fired or cleared. */
  pendingTimers(): number;
  /**
   * Sets the current time (forwards or backwards) without firing anything; timers keep their due
   * times and fire on the next `advance`/`runAll` that reaches them.
   */
  set(time: number): void;
}

interface Timer {
  readonly due: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** Opaque handle returned by `setTimeout`; holds nothing a caller could rely on. */
class ManualTimerHandle {
  readonly #timer: Timer;
  constructor(timer: Timer) {
    this.#timer = timer;
  }
  /** The timer behind a handle this module made (the class is not exported). */
  static timerOf(handle: unknown): Timer | undefined {
    return handle instanceof ManualTimerHandle ? handle.#timer : undefined;
  }
}

const before = (a: Timer, b: Timer): boolean => a.due < b.due || (a.due === b.due && a.seq < b.seq);

/** A binary min-heap ordered by (due, seq). */
class TimerHeap {
  readonly #items: Timer[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(timer: Timer): void {
    const items = this.#items;
    items.push(timer);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  peek(): Timer | undefined {
    return this.#items[0];
  }

  pop(): Timer | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < items.length && before(items[l]!, items[m]!)) m = l;
      if (r < items.length && before(items[r]!, items[m]!)) m = r;
      if (m === i) break;
      [items[i], items[m]] = [items[m]!, items[i]!];
      i = m;
    }
    return top;
  }
}

const checkTime = (value: number, what: string): void => {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`${what} must be a finite number of milliseconds, got ${String(value)}`);
  }
};

/**
 * Creates a manual clock for tests: `now()` starts at `startAt` (default 2026-01-01T00:00:00Z)
 * and moves only through `advance`, `runAll` and `set`. Its timers never touch the real event
 * loop's timer queue, so they keep no handle open.
 *
 * @example
 * ```ts
 * import { SessionManager } from 'multisession';
 * import { createManualClock, simulatedAdapter } from 'multisession/testing';
 *
 * const clock = createManualClock();
 * const manager = new SessionManager({ adapters: [simulatedAdapter()], clock, idleTimeoutMs: 60_000 });
 * await manager.open();
 * await manager.create({ id: 'a', platform: 'simulated', credentials: { token: 't' } });
 * await manager.start('a');
 * await clock.advance(60_000);               // the idle timer fires
 * await manager.waitFor('a', 'stopped');
 * ```
 */
export function createManualClock(startAt: number = Date.UTC(2026, 0, 1), options: ManualClockOptions = {}): ManualClock {
  checkTime(startAt, 'startAt');
  const yieldRounds = options.yieldRounds ?? 5;
  if (!Number.isInteger(yieldRounds) || yieldRounds < 0) {
    throw new TypeError(`yieldRounds must be a non-negative integer, got ${String(yieldRounds)}`);
  }
  let now = startAt;
  let seq = 0;
  let live = 0;
  const heap = new TimerHeap();

  const settle = async (): Promise<void> => {
    for (let i = 0; i < yieldRounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  };

  /** Drops cancelled timers from the top of the heap and returns the next live one. */
  const nextLive = (): Timer | undefined => {
    let top = heap.peek();
    while (top !== undefined && top.cancelled) {
      heap.pop();
      top = heap.peek();
    }
    return top;
  };

  const fire = (timer: Timer): void => {
    heap.pop();
    timer.cancelled = true;
    live--;
    if (timer.due > now) now = timer.due;
    timer.fn();
  };

  const clock: ManualClock = {
    now: () => now,
    setTimeout(fn: () => void, ms: number) {
      if (typeof fn !== 'function') throw new TypeError('setTimeout needs a function');
      const delay = typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : 0;
      const timer: Timer = { due: now + delay, seq: seq++, fn, cancelled: false };
      heap.push(timer);
      live++;
      return new ManualTimerHandle(timer);
    },
    clearTimeout(handle: unknown) {
      const timer = ManualTimerHandle.timerOf(handle);
      if (timer && !timer.cancelled) {
        timer.cancelled = true;
        live--;
      }
    },
    async advance(ms: number) {
      checkTime(ms, 'advance(ms)');
      if (ms < 0) throw new RangeError(`advance(ms) cannot go backwards (got ${ms}); use set(time)`);
      const target = now + ms;
      await settle();
      for (;;) {
        const timer = nextLive();
        if (timer === undefined || timer.due > target) break;
        fire(timer);
        await settle();
      }
      if (target > now) now = target;
      await settle();
    },
    async runAll(maxTimers = 10_000) {
      if (!Number.isInteger(maxTimers) || maxTimers < 0) {
        throw new TypeError(`runAll(maxTimers) needs a non-negative integer, got ${String(maxTimers)}`);
      }
      let fired = 0;
      await settle();
      for (;;) {
        const timer = nextLive();
        if (timer === undefined) return fired;
        if (fired >= maxTimers) {
          throw new TimeoutError(`runAll fired ${maxTimers} timers and more are pending (${live}); a timer probably re-arms itself`);
        }
        fire(timer);
        fired++;
        await settle();
      }
    },
    pendingTimers: () => live,
    set(time: number) {
      checkTime(time, 'set(time)');
      now = time;
    },
  };
  return clock;
}
