import { RateLimitError } from '../../errors.js';
import type { AdapterContext } from '../contract.js';
import { Buckets, sleep } from './buckets.js';
import type { DiscordBotConfig, DiscordBotCredentials, DiscordBotMessage } from './schemas.js';

/** The context a Discord connection gets. */
export type DiscordContext = AdapterContext<DiscordBotConfig, DiscordBotCredentials, DiscordBotMessage>;

/** The REST API version every path goes to. */
export const API_VERSION = 10;
/** The longest pause after failures in a row (5xx, network errors). */
const MAX_BACKOFF_MS = 30_000;
/** Times a request is sent again after a per-route 429 it may wait out. */
const MAX_ROUTE_RETRIES = 2;

/** One REST call: the HTTP verb, the path under `/api/v10`, and the route its rate limit is kept by. */
export interface RestRequest {
  verb: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** e.g. `/channels/123/messages`. */
  path: string;
  /**
   * The route: the verb and the path with every id but the major one (channel, guild or webhook)
   * replaced, e.g. `POST /channels/123/messages` or `PATCH /channels/123/messages/:id`.
   */
  route: string;
  body?: unknown;
  /** A health probe: it takes no token of the session's rate limit. */
  probe?: boolean;
}

/**
 * Discord refused a request (`{ message, code }` with a 4xx or 5xx) or could not be reached. Its
 * message names the route and Discord's message, never the token.
 */
export class DiscordApiError extends Error {
  /** The HTTP status, or 0 when no answer came (network error, time-out). */
  readonly status: number;
  /** Discord's JSON error `code` (e.g. 50001 Missing Access), or null. */
  readonly code: number | null;
  readonly route: string;
  readonly description: string;
  /** How long the session's traffic (a global 429, 5xx, network errors) or the route (a 429) was held, or null. */
  readonly retryAfterMs: number | null;
  /** For a 429: the `RateLimitError` a `send()` rejects with. */
  readonly rateLimit: RateLimitError | null;

  constructor(route: string, status: number, code: number | null, description: string, retryAfterMs: number | null = null, rateLimit: RateLimitError | null = null) {
    super(`Discord ${route} failed: ${status ? `${status} ` : ''}${description}${code ? ` (code ${code})` : ''}`);
    this.name = 'DiscordApiError';
    this.status = status;
    this.code = code;
    this.route = route;
    this.description = description;
    this.retryAfterMs = retryAfterMs;
    this.rateLimit = rateLimit;
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** Seconds (a float, as Discord sends them) from a header, or null. */
function secondsHeader(res: Response, name: string): number | null {
  const value = Number(res.headers.get(name));
  return res.headers.has(name) && Number.isFinite(value) && value >= 0 ? value : null;
}

/**
 * One connection's REST client: `<apiRoot>/v10<path>` with `Authorization: Bot <token>`, through
 * `ctx.fetch` (the session's proxy and rate limit). Requests of one route go one at a time and
 * honour its bucket (`X-RateLimit-Bucket`, `-Remaining`, `-Reset-After`); a 429 holds the route
 * for its `retry_after` (and is retried while that fits `maxRateLimitWaitMs`), a global one
 * (`global: true`) pauses the whole session; a 5xx or an unreachable server pauses it with
 * back-off (1 s, doubling to 30 s, reset by a success).
 */
export class DiscordRest {
  readonly #ctx: DiscordContext;
  readonly #signal: AbortSignal;
  readonly #buckets: Buckets;
  #failures = 0;
  /** The last trouble, for health reports while the session is paused. */
  trouble: { kind: 'slow-down' | 'unavailable'; detail: string } | null = null;

  constructor(ctx: DiscordContext, signal: AbortSignal) {
    this.#ctx = ctx;
    this.#signal = signal;
    this.#buckets = new Buckets(ctx.clock);
  }

  /** Resolves with the JSON answer (null for 204). Throws `DiscordApiError`, `RateLimitError` or the abort reason. */
  request<T>(req: RestRequest): Promise<T> {
    return this.#buckets.serial(req.route, () => this.#send<T>(req));
  }

  async #send<T>(req: RestRequest): Promise<T> {
    const ctx = this.#ctx;
    const { maxRateLimitWaitMs } = ctx.config;
    for (let attempt = 0; ; attempt++) {
      const wait = this.#buckets.delay(req.route);
      if (wait > maxRateLimitWaitMs) {
        throw new RateLimitError(ctx.id, wait, maxRateLimitWaitMs, { reason: `Discord route ${req.route} is out of requests until its bucket resets` });
      }
      if (wait > 0) await sleep(ctx.clock, wait, this.#signal);
      const res = await this.#fetch(req);
      this.#buckets.update(req.route, res);
      const text = await res.text().catch(() => '');
      let body: unknown = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        // not JSON (a proxy's or Cloudflare's error page): judged by the status
      }
      if (res.status < 300) {
        this.#failures = 0;
        this.trouble = null;
        return body as T;
      }
      const code = isRecord(body) && typeof body.code === 'number' ? body.code : null;
      const message = isRecord(body) && typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
      if (res.status === 429) {
        const seconds = (isRecord(body) && typeof body.retry_after === 'number' ? body.retry_after : null) ?? secondsHeader(res, 'retry-after') ?? 1;
        const ms = Math.max(1, Math.ceil(seconds * 1_000));
        const global = (isRecord(body) && body.global === true) || res.headers.get('x-ratelimit-global') === 'true';
        this.trouble = { kind: 'slow-down', detail: `Discord asked to slow down (${message})` };
        if (global) {
          // The bot's global limit: every request of the session waits, sends and probes alike.
          const rateLimit = ctx.rateLimit.pause(ms, `Discord global rate limit: ${message}`);
          throw new DiscordApiError(req.route, 429, code, message, ms, rateLimit);
        }
        this.#buckets.hold(req.route, ms);
        if (attempt < MAX_ROUTE_RETRIES && ms <= maxRateLimitWaitMs) continue; // waited out above, then sent again
        const rateLimit = new RateLimitError(ctx.id, ms, maxRateLimitWaitMs, { reason: `Discord route ${req.route}: ${message}` });
        throw new DiscordApiError(req.route, 429, code, message, ms, rateLimit);
      }
      if (res.status >= 500) throw this.#transient(req.route, res.status, message);
      throw new DiscordApiError(req.route, res.status, code, message);
    }
  }

  async #fetch(req: RestRequest): Promise<Response> {
    const ctx = this.#ctx;
    const url = `${ctx.config.apiRoot.replace(/\/+$/, '')}/v${API_VERSION}${req.path}`;
    const headers: Record<string, string> = { authorization: `Bot ${ctx.credentials.token}`, 'user-agent': 'DiscordBot (https://github.com/multisession/multisession, 0.1)' };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    try {
      return await ctx.fetch(url, {
        method: req.verb,
        headers,
        ...(req.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
        signal: AbortSignal.any([this.#signal, AbortSignal.timeout(ctx.config.requestTimeoutMs)]),
        longPoll: req.probe === true,
      });
    } catch (error) {
      if (this.#signal.aborted || ctx.signal.aborted) throw error;
      if ((error as { code?: unknown } | null)?.code === 'RATE_LIMITED') throw error; // the session's own limit
      const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
      const detail = typeof cause?.code === 'string' ? cause.code : error instanceof Error ? error.message : String(error);
      throw this.#transient(req.route, 0, `no answer (${detail.split(ctx.credentials.token).join('…')})`);
    }
  }

  /** A 5xx or no answer: pause the session's traffic with back-off, and say so. */
  #transient(route: string, status: number, description: string): DiscordApiError {
    this.#failures++;
    const ms = Math.min(MAX_BACKOFF_MS, 1_000 * 2 ** (this.#failures - 1));
    this.#ctx.rateLimit.pause(ms, `Discord ${route}: ${status ? `${status} ` : ''}${description}`);
    this.trouble = { kind: 'unavailable', detail: `Discord ${route} failed ${this.#failures} time(s) in a row: ${status ? `${status} ` : ''}${description}` };
    return new DiscordApiError(route, status, null, description, ms);
  }
}
