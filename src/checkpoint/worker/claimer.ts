import type { Clock } from '../../types.js';
import type { Lease } from '../contract.js';
import { pause, TimerSlot } from './timer-slot.js';

export interface ClaimerOptions {
  clock: Clock;
  /** Handlers running at once: no claim while this many items already wait to run. */
  concurrency: number;
  /** Claims in flight at once while leases are held (claim-ahead); one while none are. */
  maxInFlight: number;
  /** The pause after a store error, and between polls of a drained stream. */
  pollMs: number;
  /** Ends a poll pause early. */
  signal: AbortSignal | undefined;
  /** One claim of a batch from the store. */
  claim(): Promise<Lease[]>;
  /** A claim brought leases; `startedAt` is the clock's time before the call (their deadline's start). */
  claimed(leases: Lease[], startedAt: number): void;
  /** A claim failed: the next waits for `pollMs`. */
  error(error: unknown): void;
  /** Sees each claim's promise (the runner waits for it, and counts it as work in flight). */
  track(claim: Promise<unknown>): void;
  /** The pause after an error is over: look again. */
  wake(): void;
}

/**
 * Decides when `process()` claims: ahead of the work (up to `maxInFlight` claims in flight while
 * leases are held, one while none are), only while fewer than `concurrency` items wait to run; it
 * tells an empty stream (a claim made while idle found nothing: drained) from a busy one (a claim found
 * nothing while work was in flight: blocked until the run is idle), and pauses `pollMs` after a
 * store error before the next claim.
 */
export class Claimer {
  readonly #o: ClaimerOptions;
  readonly #retry: TimerSlot;
  #inFlight = 0;
  /** A claim found nothing while work was in flight: wait until idle. */
  #blocked = false;
  /** A claim made while idle found nothing. */
  #drained = false;
  /** After a claim error, no claim before this (clock time). */
  #retryAt = -Infinity;

  constructor(options: ClaimerOptions) {
    this.#o = options;
    this.#retry = new TimerSlot(options.clock, options.wake);
  }

  /** A claim made while the run was idle found nothing. Cleared by {@link poll}. */
  get drained(): boolean {
    return this.#drained;
  }

  /**
   * Starts a claim when one is allowed and due; returns true when it did. When only the pause
   * after an error holds it back, arms a timer that wakes the runner once the pause is over.
   *
   * @param idle nothing is running, queued, held or in flight
   * @param held leases the run holds
   * @param queued items waiting to run
   */
  maybeClaim(idle: boolean, held: number, queued: number): boolean {
    const mayClaim = this.#inFlight === 0 || (this.#inFlight < this.#o.maxInFlight && held > 0);
    if (!mayClaim || queued >= this.#o.concurrency || (this.#blocked && !idle)) return false;
    const wait = this.#retryAt - this.#o.clock.now();
    if (wait <= 0) {
      this.#start(idle);
      return true;
    }
    this.#retry.arm(Math.ceil(wait) + 1);
    return false;
  }

  /** Waits `pollMs` (or until the signal aborts), then lets claims through again. */
  async poll(): Promise<void> {
    await pause(this.#o.clock, this.#o.pollMs, this.#o.signal);
    this.#drained = false;
    this.#blocked = false;
  }

  stop(): void {
    this.#retry.clear();
  }

  #start(idle: boolean): void {
    const o = this.#o;
    this.#inFlight += 1;
    const startedAt = o.clock.now();
    o.track(
      o.claim().then(
        (leases) => {
          this.#inFlight -= 1;
          if (!leases.length) {
            if (idle) this.#drained = true;
            else this.#blocked = true;
            return;
          }
          this.#blocked = false;
          o.claimed(leases, startedAt);
        },
        (error: unknown) => {
          this.#inFlight -= 1;
          o.error(error);
          this.#retryAt = o.clock.now() + o.pollMs;
        },
      ),
    );
  }
}
