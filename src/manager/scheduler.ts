import type { Clock } from '../types.js';
import { AbortedError } from '../errors.js';
import type { Cancellation } from './cancellation.js';

/** `index` of a task taken out of its slot to run in the current batch. */
const DUE = -2;
/** Slots of the wheel: with 10 ms slots, 81.92 s ahead; later tasks wait in the far heap. */
const RING = 8192;
const MASK = RING - 1;

/** A scheduled task. `cancel()` is idempotent; `rearm(ms)` runs it again after `ms` (same function). */
export interface ScheduledTask {
  cancel(): void;
  rearm(delayMs: number): void;
}

/**
 * A task. It knows where it waits (its slot and its place in the slot, or its place in the far
 * heap), so cancelling takes it out at once and re-arming moves it: a session's health task is
 * one object for its whole life, and nothing cancelled lingers.
 */
class Task implements ScheduledTask {
  at = 0;
  seq = 0;
  /** The wheel slot it waits in (it fires at `slot × resolution`). */
  slot = 0;
  /**
   * Place in its slot or in the far heap; -1 when not scheduled; DUE while taken out to run. A
   * slot entry whose task no longer points back at it (other slot or index) is stale.
   */
  index = -1;
  far = false;

  constructor(
    readonly owner: Scheduler,
    readonly fn: (arg: any) => void,
    readonly arg: unknown,
  ) {}

  cancel(): void {
    this.owner.remove(this);
  }

  rearm(delayMs: number): void {
    this.owner.arm(this, delayMs);
  }
}

/**
 * One timer for every session's health checks, idle checks, back-offs and timeouts: a timing
 * wheel of `resolutionMs` slots on top of a single (unref'd) clock timer. Arming, re-arming and
 * cancelling touch only the task and its slot, whatever the number of sessions (a binary heap
 * touched log n other tasks each time: cache misses that cost microseconds at 100,000 sessions).
 * Tasks further away than the wheel (82 s at 10 ms) wait in a small heap until they come near.
 *
 * Tasks due within one slot share one wake-up and run in the order they were armed; slots run in
 * time order. A task never fires early, and at most one slot late.
 */
export class Scheduler {
  readonly #clock: Clock;
  readonly #onError: (error: unknown) => void;
  readonly #resolution: number;
  readonly #ring: (Task[] | undefined)[] = new Array<Task[] | undefined>(RING);
  /** The first slot not yet run. */
  #base: number;
  /** Tasks in the wheel (not counting the far heap). */
  #inRing = 0;
  #far: Task[] = [];
  #seq = 0;
  #timer: unknown = null;
  #timerAt = Infinity;
  /** Running a batch: tasks armed meanwhile wait for the timer armed after it. */
  #firing = false;
  #closed = false;

  constructor(clock: Clock, onError: (error: unknown) => void, resolutionMs = 10) {
    this.#clock = clock;
    this.#onError = onError;
    this.#resolution = Math.max(1, resolutionMs);
    this.#base = this.#slotOf(clock.now());
  }

  get size(): number {
    return this.#inRing + this.#far.length;
  }

  /** A task not yet armed: `rearm` schedules it. */
  task<A = undefined>(fn: (arg: A) => void, arg?: A): ScheduledTask {
    return new Task(this, fn, arg);
  }

  /** Runs `fn(arg)` after `delayMs` (on the injected clock). Passing `arg` spares a closure per task. */
  schedule<A = undefined>(delayMs: number, fn: (arg: A) => void, arg?: A): ScheduledTask {
    const task = new Task(this, fn, arg);
    this.arm(task, delayMs);
    return task;
  }

  /** Used by tasks: (re)schedules `task` `delayMs` from now. */
  arm(task: Task, delayMs: number): void {
    if (this.#closed) return;
    this.remove(task);
    task.at = this.#clock.now() + Math.max(0, delayMs);
    task.seq = this.#seq++;
    task.slot = Math.max(this.#base, this.#slotOf(task.at));
    this.#place(task);
    const fireAt = task.slot * this.#resolution;
    if (!this.#firing && fireAt < this.#timerAt) this.#armTimer(fireAt);
  }

  /** Used by tasks: takes `task` out (no-op when it is not scheduled). */
  remove(task: Task): void {
    const i = task.index;
    if (i === DUE) task.index = -1; // taken out to run in this batch: cancelled before its turn
    if (i < 0) return;
    task.index = -1;
    if (task.far) {
      task.far = false;
      this.#farRemove(i);
      return;
    }
    // Left in its slot as a stale entry (skipped when the slot comes due): taking it out would
    // touch the task moved into its place, a cache miss per cancel at 100,000 sessions.
    this.#inRing--;
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
    for (let s = 0; s < RING; s++) {
      for (const t of this.#ring[s] ?? []) t.index = -1;
      this.#ring[s] = undefined;
    }
    for (const t of this.#far) {
      t.index = -1;
      t.far = false;
    }
    this.#far = [];
    this.#inRing = 0;
  }

  /** The slot a time falls due in: slot `s` fires at `s × resolution`, never before its tasks. */
  #slotOf(at: number): number {
    return Math.ceil(at / this.#resolution);
  }

  /** Puts an armed task in its slot, or in the far heap when the wheel does not reach it yet. */
  #place(task: Task): void {
    if (task.slot - this.#base >= RING) {
      task.far = true;
      task.index = this.#far.length;
      this.#far.push(task);
      this.#farUp(task.index);
      return;
    }
    task.far = false;
    const bucket = (this.#ring[task.slot & MASK] ??= []);
    task.index = bucket.length;
    bucket.push(task);
    this.#inRing++;
  }

  #armTimer(fireAt: number): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timerAt = fireAt;
    this.#timer = this.#clock.setTimeout(this.#onTimer, Math.max(0, fireAt - this.#clock.now()));
  }

  readonly #onTimer = () => this.#fire();

  #fire(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    const nowSlot = Math.floor(this.#clock.now() / this.#resolution);
    // Take out everything due now first; tasks armed while running land in later slots and are
    // picked up by the timer re-armed below, never in this batch, so a zero-delay re-arm cannot spin.
    const due: Task[] = [];
    while (this.#base <= nowSlot) {
      this.#bringNear();
      if (this.#inRing === 0) {
        // Nothing in the wheel: skip the empty slots up to now (or to the first far task).
        const next = this.#far[0];
        this.#base = next ? Math.min(nowSlot + 1, Math.max(this.#base + 1, next.slot - RING + 1)) : nowSlot + 1;
        continue;
      }
      const bucket = this.#ring[this.#base & MASK];
      if (bucket && bucket.length) {
        const slot = this.#base;
        for (let i = 0; i < bucket.length; i++) {
          const t = bucket[i]!;
          if (t.index !== i || t.slot !== slot || t.far) continue; // cancelled or moved: a stale entry
          t.index = DUE;
          due.push(t);
          this.#inRing--;
        }
        bucket.length = 0;
      }
      this.#base++;
    }
    this.#firing = true;
    try {
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
    } finally {
      this.#firing = false;
    }
    if (!this.#closed) this.#armNext();
  }

  /** Moves far tasks the wheel now reaches into their slots. */
  #bringNear(): void {
    const far = this.#far;
    while (far.length && far[0]!.slot - this.#base < RING) {
      const t = far[0]!;
      this.#farRemove(0);
      t.slot = Math.max(t.slot, this.#base);
      this.#place(t);
    }
  }

  /** Arms the clock timer for the first slot that holds a task (or a stale entry: a wake-up for nothing). */
  #armNext(): void {
    if (this.#inRing > 0) {
      for (let s = this.#base; s < this.#base + RING; s++) {
        if (this.#ring[s & MASK]?.length) return this.#armTimer(s * this.#resolution);
      }
    }
    const next = this.#far[0];
    if (next) this.#armTimer((next.slot - RING + 1) * this.#resolution);
  }

  // ---------------------------------------------------------------- the far heap (by slot, then arming order)

  #farLess(a: Task, b: Task): boolean {
    return a.slot < b.slot || (a.slot === b.slot && a.seq < b.seq);
  }

  #farSet(i: number, t: Task): void {
    this.#far[i] = t;
    t.index = i;
  }

  #farUp(i: number): void {
    const h = this.#far;
    const t = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#farLess(t, h[p]!)) break;
      this.#farSet(i, h[p]!);
      i = p;
    }
    this.#farSet(i, t);
  }

  #farDown(i: number): void {
    const h = this.#far;
    const t = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const m = l + 1 < h.length && this.#farLess(h[l + 1]!, h[l]!) ? l + 1 : l;
      if (!this.#farLess(h[m]!, t)) break;
      this.#farSet(i, h[m]!);
      i = m;
    }
    this.#farSet(i, t);
  }

  #farRemove(i: number): void {
    const h = this.#far;
    const last = h.pop()!;
    if (i < h.length) {
      this.#farSet(i, last);
      this.#farDown(i);
      this.#farUp(last.index);
    }
  }
}
