import { AsyncLocalStorage } from 'node:async_hooks';
import { AbortedError, RateLimitError } from '../errors.js';
import type { Clock } from '../types.js';
import { DEFAULT_SEND_MAX_WAIT_MS, rateLimitOf } from './config.js';
import { TokenBucket } from './token-bucket.js';

/** The send under way in this async context, if any: its fetches ride on its token. */
interface PaidSend {
  readonly limiter: SessionRateLimiter;
  open: boolean;
}

const paidSends = new AsyncLocalStorage<PaidSend>();

/**
 * One session's outbound rate limit: the bucket behind `manager.send` and `ctx.fetch`, and the
 * pause a platform's "wait N seconds" sets (`ctx.rateLimit.pause`). It lives as long as the
 * session's runtime (a restart keeps the debt: reconnecting never resets a flood wait); a config
 * change to other `rateLimit` settings starts a fresh bucket. Each session has its own, so one
 * session's waits never hold up another's.
 */
export class SessionRateLimiter {
  readonly #clock: Clock;
  #config: unknown = undefined;
  #settings: ReturnType<typeof rateLimitOf> = null;
  #bucket: TokenBucket | null = null;
  /** Clock time until which every outbound request waits (a platform's "slow down"). */
  #pausedUntil = 0;
  #pauseReason = '';

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  #read(config: unknown): void {
    if (config === this.#config) return; // the stored config object only changes on update
    this.#config = config;
    const next = rateLimitOf(config);
    const same = next && this.#settings && next.perSecond === this.#settings.perSecond && next.burst === this.#settings.burst;
    this.#settings = next;
    if (!same) this.#bucket = next ? new TokenBucket(next, this.#clock) : null;
  }

  /** The bucket for the session's current config, or null when it has no `rateLimit`. */
  bucket(config: unknown): TokenBucket | null {
    this.#read(config);
    return this.#bucket;
  }

  /**
   * Holds every outbound request of the session (`manager.send`, `ctx.fetch`) for `ms` from now;
   * a longer pause already set is kept. Returns how long outbound traffic is now paused.
   */
  pause(ms: number, reason: string): number {
    const until = this.#clock.now() + ms;
    if (until > this.#pausedUntil) {
      this.#pausedUntil = until;
      this.#pauseReason = reason;
    }
    return this.pausedMs();
  }

  /** How long outbound traffic stays paused, in ms (0: it flows). */
  pausedMs(): number {
    return Math.max(0, this.#pausedUntil - this.#clock.now());
  }

  /** Why traffic is (or was last) paused. */
  get pauseReason(): string {
    return this.#pauseReason;
  }

  /**
   * `manager.send`'s turn: waits out a pause, then takes a token, waiting for it when it is due
   * within `rateLimit.maxWaitMs` (default 60 s); otherwise throws `RateLimitError` at once and
   * takes nothing. Returns `null` synchronously when the send may go at once (no rate limit, or a
   * free token: no promise on the hot path), else a promise of the wait, which rejects when
   * `signal` aborts.
   */
  acquireForSend(config: unknown, sessionId: string, signal?: AbortSignal): Promise<number> | null {
    this.#read(config);
    const paused = this.pausedMs();
    if (paused > 0) {
      const maxWaitMs = this.#settings?.maxWaitMs ?? DEFAULT_SEND_MAX_WAIT_MS;
      if (paused > maxWaitMs) throw new RateLimitError(sessionId, paused, maxWaitMs, { reason: this.#pauseReason });
      // The pause may grow while we wait: ask again when it ends.
      return sleep(this.#clock, paused, signal).then(() => {
        const next = this.acquireForSend(config, sessionId, signal);
        return next ? next.then((w) => w + paused) : paused;
      });
    }
    const bucket = this.#bucket;
    if (!bucket || !this.#settings) return null;
    const { maxWaitMs } = this.#settings;
    const wait = bucket.reserve(maxWaitMs);
    if (wait === null) throw new RateLimitError(sessionId, bucket.delay(), maxWaitMs);
    if (wait === 0) return null;
    return bucket.sleep(wait, signal).then(() => wait);
  }

  /**
   * `ctx.fetch`'s turn: waits out a pause, then takes a token (waiting as long as it takes) —
   * except for a long poll, and for a request made inside `manager.send` (see {@link runPaid}),
   * which already paid. Returns `null` when the request may go at once.
   */
  acquireForFetch(config: unknown, signal: AbortSignal | undefined, longPoll: boolean): Promise<void> | null {
    if (signal?.aborted) throw abortReason(signal);
    const paused = this.pausedMs();
    if (paused > 0) return sleep(this.#clock, paused, signal).then(() => this.acquireForFetch(config, signal, longPoll) ?? undefined);
    if (longPoll) return null;
    const paid = paidSends.getStore();
    if (paid?.open && paid.limiter === this) return null;
    const bucket = this.bucket(config);
    if (!bucket) return null;
    const wait = bucket.reserve()!;
    return wait > 0 ? bucket.sleep(wait, signal) : null;
  }

  /**
   * Runs a `send()` that has taken its token: the session's `ctx.fetch` calls it makes until it
   * settles take none (one token per send, however many requests it needs).
   */
  runPaid<T>(fn: () => Promise<T>): Promise<T> {
    const ticket: PaidSend = { limiter: this, open: true };
    const close = (): void => {
      ticket.open = false;
    };
    let result: Promise<T>;
    try {
      result = paidSends.run(ticket, fn);
    } catch (error) {
      close();
      throw error;
    }
    return Promise.resolve(result).finally(close);
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new AbortedError('The request was aborted while it waited for its rate limit.');
}

/** Waits `ms` on `clock`; rejects when `signal` aborts. */
function sleep(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(abortReason(signal!));
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
