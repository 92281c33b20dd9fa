import { AbortedError } from '../../errors.js';
import type { Clock } from '../../types.js';

/** Routes and buckets remembered at most; those that have reset are forgotten past it. */
const MAX_ENTRIES = 10_000;
const noop = (): void => undefined;

/** Waits `ms` on `clock`; rejects with the abort reason when `signal` aborts first. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(signal.reason instanceof Error ? signal.reason : new AbortedError('The connection was shut down while it waited.'));
    };
    const handle = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** `POST /channels/123/messages/:id` → `channels/123`: the major parameter a bucket is split by. */
function majorOf(route: string): string {
  const path = route.slice(route.indexOf(' ') + 1).split('/').filter(Boolean);
  return ['channels', 'guilds', 'webhooks'].includes(path[0] ?? '') ? `${path[0]}/${path[1]}` : '';
}

/**
 * Discord's per-route rate limits, as its answers describe them: a route maps to a bucket
 * (`X-RateLimit-Bucket`, shared by routes with the same hash and major parameter), which has
 * `X-RateLimit-Remaining` requests until `X-RateLimit-Reset-After` seconds from now. Requests of
 * one route go one at a time, so each sees what the previous answer said.
 */
export class Buckets {
  readonly #clock: Clock;
  readonly #hashes = new Map<string, string>();
  readonly #state = new Map<string, { remaining: number; resetAt: number }>();
  readonly #queues = new Map<string, Promise<void>>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  #key(route: string): string {
    const hash = this.#hashes.get(route);
    return hash === undefined ? route : `${hash}:${majorOf(route)}`;
  }

  /** Runs `work` after the route's earlier requests have settled. */
  serial<T>(route: string, work: () => Promise<T>): Promise<T> {
    const run = (this.#queues.get(route) ?? Promise.resolve()).then(work);
    const tail = run.then(noop, noop);
    this.#queues.set(route, tail);
    void tail.then(() => {
      if (this.#queues.get(route) === tail) this.#queues.delete(route);
    });
    return run;
  }

  /** How long the route must wait before its next request, in ms (0: it may go). */
  delay(route: string): number {
    const state = this.#state.get(this.#key(route));
    if (!state || state.remaining > 0) return 0;
    return Math.max(0, state.resetAt - this.#clock.now());
  }

  /** Reads the bucket headers of an answer to `route`. */
  update(route: string, res: Response): void {
    const hash = res.headers.get('x-ratelimit-bucket');
    if (hash) this.#remember(this.#hashes, route, hash);
    const remaining = Number(res.headers.get('x-ratelimit-remaining'));
    const resetAfter = Number(res.headers.get('x-ratelimit-reset-after'));
    if (!res.headers.has('x-ratelimit-remaining') || !res.headers.has('x-ratelimit-reset-after') || !Number.isFinite(remaining) || !Number.isFinite(resetAfter)) return;
    this.#remember(this.#state, this.#key(route), { remaining, resetAt: this.#clock.now() + Math.ceil(resetAfter * 1_000) });
  }

  /** A 429 for the route: it waits `ms` before its next request. */
  hold(route: string, ms: number): void {
    this.#remember(this.#state, this.#key(route), { remaining: 0, resetAt: this.#clock.now() + ms });
  }

  #remember<V>(map: Map<string, V>, key: string, value: V): void {
    if (!map.has(key) && map.size >= MAX_ENTRIES) {
      const now = this.#clock.now();
      for (const [k, v] of this.#state) if (v.resetAt <= now) this.#state.delete(k);
      if (map.size >= MAX_ENTRIES) map.clear();
    }
    map.set(key, value);
  }
}
