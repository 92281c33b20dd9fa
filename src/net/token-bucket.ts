import { AbortedError } from '../errors.js';
import type { Clock } from '../types.js';

/** A rate: `perSecond` tokens per second on average, at most `burst` at once. */
export interface RateLimitSettings {
  readonly perSecond: number;
  readonly burst: number;
}

/**
 * A token bucket on an injectable {@link Clock}, as the generic cell rate algorithm: one number,
 * the theoretical arrival time of the next token. A full bucket holds `burst` tokens; one comes
 * back every `1000 / perSecond` ms. A caller that takes a token reserves its slot at once, so
 * waiters are served in order and each waits exactly until its token is due.
 */
export class TokenBucket {
  readonly settings: RateLimitSettings;
  readonly #clock: Clock;
  /** Milliseconds between two tokens. */
  readonly #interval: number;
  /** How far ahead of now reservations may run before a caller has to wait (burst − 1 tokens). */
  readonly #tolerance: number;
  /** When the bucket would be full again (GCRA "theoretical arrival time"). */
  #tat = Number.NEGATIVE_INFINITY;

  constructor(settings: RateLimitSettings, clock: Clock) {
    if (!(settings.perSecond > 0) || !Number.isFinite(settings.perSecond)) throw new RangeError('perSecond must be a positive number');
    if (!Number.isInteger(settings.burst) || settings.burst < 1) throw new RangeError('burst must be an integer of at least 1');
    this.settings = Object.freeze({ perSecond: settings.perSecond, burst: settings.burst });
    this.#clock = clock;
    this.#interval = 1000 / settings.perSecond;
    this.#tolerance = (settings.burst - 1) * this.#interval;
  }

  /** How long a token taken now would have to wait, in ms (0: one is free). Takes nothing. */
  delay(): number {
    const now = this.#clock.now();
    return Math.max(0, Math.max(this.#tat, now) - this.#tolerance - now);
  }

  /**
   * Takes a token if it is due within `maxWaitMs`: returns how long the caller must wait for it
   * (0: now), or `null` (nothing taken) when it would have to wait longer.
   */
  reserve(maxWaitMs = Number.POSITIVE_INFINITY): number | null {
    const now = this.#clock.now();
    const tat = Math.max(this.#tat, now);
    const wait = Math.max(0, tat - this.#tolerance - now);
    if (wait > maxWaitMs) return null;
    this.#tat = tat + this.#interval;
    return wait;
  }

  /** Gives back a reserved token that will not be used (its caller gave up). */
  release(): void {
    this.#tat -= this.#interval;
  }

  /**
   * Takes a token, waiting on the clock until it is due. Rejects (and gives the token back) when
   * `signal` aborts, with the signal's reason if it is an Error, else an `AbortedError`.
   */
  async take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw abortReason(signal);
    const wait = this.reserve()!;
    if (wait > 0) await this.sleep(wait, signal);
  }

  /** Waits `ms` on the bucket's clock for a token already reserved; gives it back on abort. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#clock.clearTimeout(handle);
        this.release();
        reject(abortReason(signal!));
      };
      const handle = this.#clock.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      if (signal) {
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new AbortedError('The request was aborted while it waited for its rate limit.');
}
