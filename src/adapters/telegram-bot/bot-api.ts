import type { RateLimitError } from '../../errors.js';
import type { AdapterContext } from '../contract.js';
import type { TelegramBotConfig, TelegramBotCredentials, TelegramBotMessage } from './schemas.js';

/** The context a Telegram connection gets. */
export type TelegramContext = AdapterContext<TelegramBotConfig, TelegramBotCredentials, TelegramBotMessage>;

/** The longest pause after failures in a row (5xx, network errors). */
const MAX_BACKOFF_MS = 30_000;

/**
 * The Bot API refused a request (`{ ok: false, error_code, description }`) or could not be
 * reached. Its message names the method and Telegram's description, never the token.
 */
export class TelegramApiError extends Error {
  /** Telegram's `error_code` (the HTTP status), or 0 when no answer came (network error, time-out). */
  readonly errorCode: number;
  readonly method: string;
  readonly description: string;
  /** How long the session's outbound traffic was paused for it (429, 5xx, network errors), or null. */
  readonly retryAfterMs: number | null;
  /** For a 429: the `RateLimitError` a `send()` rejects with. */
  readonly rateLimit: RateLimitError | null;

  constructor(method: string, errorCode: number, description: string, retryAfterMs: number | null = null, rateLimit: RateLimitError | null = null) {
    super(`Telegram ${method} failed: ${errorCode ? `${errorCode} ` : ''}${description}`);
    this.name = 'TelegramApiError';
    this.method = method;
    this.errorCode = errorCode;
    this.description = description;
    this.retryAfterMs = retryAfterMs;
    this.rateLimit = rateLimit;
  }
}

/** The last trouble the API had, for health reports while the session is paused. */
export interface ApiTrouble {
  kind: 'slow-down' | 'unavailable';
  detail: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * One connection's Bot API client: `POST <apiRoot>/bot<token>/<method>` with a JSON body, through
 * `ctx.fetch` (the session's proxy and rate limit). Feeds Telegram's answers back to the session:
 * a 429 pauses outbound traffic for its `retry_after`; a 5xx or an unreachable server pauses it
 * with back-off (1 s, doubling to 30 s, reset by a success).
 */
export class BotApi {
  readonly #ctx: TelegramContext;
  readonly #signal: AbortSignal;
  #failures = 0;
  #trouble: ApiTrouble | null = null;

  /** `signal` ends every request (the connection's stop). */
  constructor(ctx: TelegramContext, signal: AbortSignal) {
    this.#ctx = ctx;
    this.#signal = signal;
  }

  get trouble(): ApiTrouble | null {
    return this.#trouble;
  }

  /**
   * Calls `method`; resolves with its `result`. Throws `TelegramApiError` for a refusal or a
   * failure, or the abort reason when the connection stops.
   */
  async call<T>(method: string, params: Record<string, unknown> = {}, options: { longPoll?: boolean; timeoutMs?: number } = {}): Promise<T> {
    const ctx = this.#ctx;
    const { apiRoot, requestTimeoutMs } = ctx.config;
    const url = `${apiRoot.replace(/\/+$/, '')}/bot${ctx.credentials.token}/${method}`;
    let status: number;
    let text: string;
    try {
      const res = await ctx.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(params),
        signal: AbortSignal.any([this.#signal, AbortSignal.timeout(options.timeoutMs ?? requestTimeoutMs)]),
        longPoll: options.longPoll === true,
      });
      status = res.status;
      text = await res.text();
    } catch (error) {
      if (this.#signal.aborted || ctx.signal.aborted) throw error;
      throw this.#transient(method, 0, this.#networkProblem(error));
    }
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON (a proxy's error page …): judged by the HTTP status
    }
    if (isRecord(body) && body.ok === true && status < 300) {
      this.#failures = 0;
      this.#trouble = null;
      return body.result as T;
    }
    const code = isRecord(body) && typeof body.error_code === 'number' ? body.error_code : status;
    const description = isRecord(body) && typeof body.description === 'string' ? body.description : `HTTP ${status}`;
    if (code === 429) {
      const parameters = isRecord(body) && isRecord(body.parameters) ? body.parameters : {};
      const seconds = typeof parameters.retry_after === 'number' && parameters.retry_after > 0 ? parameters.retry_after : 1;
      const rateLimit = ctx.rateLimit.pause(seconds * 1_000, `Telegram ${method}: ${description}`);
      this.#trouble = { kind: 'slow-down', detail: `Telegram asked to slow down (${description})` };
      throw new TelegramApiError(method, code, description, seconds * 1_000, rateLimit);
    }
    if (code >= 500) throw this.#transient(method, code, description);
    throw new TelegramApiError(method, code, description);
  }

  /** A 5xx or no answer: pause outbound traffic with back-off, and say so. */
  #transient(method: string, code: number, description: string): TelegramApiError {
    this.#failures++;
    const ms = Math.min(MAX_BACKOFF_MS, 1_000 * 2 ** (this.#failures - 1));
    this.#ctx.rateLimit.pause(ms, `Telegram ${method}: ${code ? `${code} ` : ''}${description}`);
    this.#trouble = { kind: 'unavailable', detail: `Telegram ${method} failed ${this.#failures} time(s) in a row: ${code ? `${code} ` : ''}${description}` };
    return new TelegramApiError(method, code, description, ms);
  }

  /** What went wrong on the wire, without the request URL (it holds the token). */
  #networkProblem(error: unknown): string {
    const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
    const detail = typeof cause?.code === 'string' ? cause.code : error instanceof Error ? error.message : String(error);
    return `no answer (${detail.split(this.#ctx.credentials.token).join('…')})`;
  }
}
