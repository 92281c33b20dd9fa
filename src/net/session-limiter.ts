import { RateLimitError } from '../errors.js';
import type { Clock } from '../types.js';
import { rateLimitOf } from './config.js';
import { TokenBucket } from './token-bucket.js';

/**
 * One session's outbound rate limit: the bucket behind `manager.send` and `ctx.fetch`. It lives
 * as long as the session's runtime (a restart keeps the debt: reconnecting never resets a flood
 * wait); a config change to other `rateLimit` settings starts a fresh bucket. Each session has its
 * own, so one session's waits never hold up another's.
 */
export class SessionRateLimiter {
  readonly #clock: Clock;
  #config: unknown = undefined;
  #settings: ReturnType<typeof rateLimitOf> = null;
  #bucket: TokenBucket | null = null;

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
   * `manager.send`'s turn: takes a token, waiting for it when it is due within
   * `rateLimit.maxWaitMs`; otherwise throws `RateLimitError` at once and takes nothing.
   * Returns `null` synchronously when the send may go at once (no rate limit, or a free token:
   * no promise on the hot path), else a promise of the wait, which rejects when `signal` aborts.
   */
  acquireForSend(config: unknown, sessionId: string, signal?: AbortSignal): Promise<number> | null {
    this.#read(config);
    const bucket = this.#bucket;
    if (!bucket || !this.#settings) return null;
    const { maxWaitMs } = this.#settings;
    const wait = bucket.reserve(maxWaitMs);
    if (wait === null) throw new RateLimitError(sessionId, bucket.delay(), maxWaitMs);
    if (wait === 0) return null;
    return bucket.sleep(wait, signal).then(() => wait);
  }
}
