/**
 * A token bucket per caller (API key id, or client address for unauthenticated requests).
 * Each bucket holds `max` tokens and refills `max` tokens per `windowMs`, continuously.
 */
export interface RateLimitOptions {
  /** Requests allowed per window (the bucket size). */
  max: number;
  windowMs: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;

  constructor(options: RateLimitOptions, now: () => number = Date.now) {
    this.#max = options.max;
    this.#windowMs = options.windowMs;
    this.#now = now;
  }

  /** Takes one token. Returns 0 when allowed, else the milliseconds until the next token. */
  take(caller: string): number {
    const b = this.#refill(caller);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return this.#untilNext(b);
  }

  /** Like {@link take} without taking: 0 when a token is there, else the milliseconds until one is. */
  wait(caller: string): number {
    const b = this.#refill(caller);
    return b.tokens >= 1 ? 0 : this.#untilNext(b);
  }

  #refill(caller: string): Bucket {
    const now = this.#now();
    const b = this.#buckets.get(caller) ?? { tokens: this.#max, at: now };
    b.tokens = Math.min(this.#max, b.tokens + (now - b.at) * (this.#max / this.#windowMs));
    b.at = now;
    this.#buckets.set(caller, b);
    if (this.#buckets.size > 10_000) this.#prune(now);
    return b;
  }

  #untilNext(b: Bucket): number {
    return Math.max(1, Math.ceil((1 - b.tokens) / (this.#max / this.#windowMs)));
  }

  /** Drops buckets that have refilled completely (they carry no information). */
  #prune(now: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + (now - b.at) * (this.#max / this.#windowMs) >= this.#max) this.#buckets.delete(k);
    }
  }
}
