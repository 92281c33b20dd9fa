import type { RateLimitError } from '../../errors.js';
import type { AdapterContext } from '../contract.js';
import type { OpenAIChatConfig, OpenAIChatCredentials, OpenAIChatMessage } from './schemas.js';

/** The context an OpenAI-compatible connection gets. */
export type OpenAIContext = AdapterContext<OpenAIChatConfig, OpenAIChatCredentials, OpenAIChatMessage>;

/** The pause taken for a 429 that names no wait. */
const DEFAULT_RETRY_MS = 1_000;

/**
 * The back-end refused a request (an error body `{ error: { message, type, code } }`) or could
 * not be reached. Its message names the endpoint and the back-end's message, never the key.
 */
export class OpenAIApiError extends Error {
  /** The HTTP status, or 0 when no answer came (network error, time-out) or the error came inside a stream. */
  readonly status: number;
  /** The endpoint: `chat/completions` or `models`. */
  readonly endpoint: string;
  /** The back-end's `error.type` (`invalid_request_error`, `rate_limit_exceeded` …), or null. */
  readonly type: string | null;
  /** The back-end's `error.code` (`invalid_api_key`, `model_not_found` …), or null. */
  readonly code: string | null;
  /** For a 429: the `RateLimitError` a `send()` rejects with (the session is paused for its `retryAfterMs`). */
  readonly rateLimit: RateLimitError | null;

  constructor(endpoint: string, status: number, message: string, details: { type?: string | null; code?: string | null; rateLimit?: RateLimitError | null } = {}) {
    super(`OpenAI-compatible ${endpoint} failed: ${status ? `${status} ` : ''}${message}`);
    this.name = 'OpenAIApiError';
    this.endpoint = endpoint;
    this.status = status;
    this.type = details.type ?? null;
    this.code = details.code ?? null;
    this.rateLimit = details.rateLimit ?? null;
  }

  /** The back-end refused the key (401). */
  get refusedKey(): boolean {
    return this.status === 401;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The `{ error: { message, type, code } }` of an error body (or of an error event in a stream). */
export function errorOf(body: unknown): { message: string; type: string | null; code: string | null } | null {
  if (!isRecord(body)) return null;
  const error = body.error;
  if (typeof error === 'string') return { message: error, type: null, code: null }; // some servers (Ollama) answer { error: "…" }
  if (!isRecord(error)) return null;
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);
  return { message: str(error.message) ?? 'unknown error', type: str(error.type), code: str(error.code) };
}

/**
 * How long a 429 asks to wait, in ms: `retry-after-ms` (OpenAI), else `retry-after` (seconds or an
 * HTTP date), else a second.
 */
export function retryAfterMsOf(headers: Headers, now: number): number {
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') !== null && Number.isFinite(ms) && ms > 0) return Math.ceil(ms);
  const after = headers.get('retry-after');
  if (after !== null && after.trim() !== '') {
    const seconds = Number(after);
    if (Number.isFinite(seconds) && seconds > 0) return Math.ceil(seconds * 1_000);
    const date = Date.parse(after);
    if (Number.isFinite(date) && date > now) return date - now;
  }
  return DEFAULT_RETRY_MS;
}

/** One connection's HTTP access to the back-end, through `ctx.fetch` (the session's proxy and rate limit). */
export class ChatApi {
  readonly #ctx: OpenAIContext;
  readonly #signal: AbortSignal;

  /** `signal` ends every request (the connection's stop). */
  constructor(ctx: OpenAIContext, signal: AbortSignal) {
    this.#ctx = ctx;
    this.#signal = signal;
  }

  url(endpoint: string): string {
    return `${this.#ctx.config.baseUrl.replace(/\/+$/, '')}/${endpoint}`;
  }

  headers(json: boolean): Record<string, string> {
    const headers: Record<string, string> = { accept: json ? 'application/json' : 'text/event-stream' };
    const key = this.#ctx.credentials?.apiKey;
    if (key) headers.authorization = `Bearer ${key}`;
    return headers;
  }

  /**
   * Sends one request; resolves with the response when it is 2xx. Throws `OpenAIApiError` for any
   * other answer (a 429 pauses the session first) or no answer, and the abort reason when the
   * connection stops.
   */
  async request(endpoint: string, init: { method: 'GET' | 'POST'; body?: unknown; stream?: boolean; probe?: boolean }): Promise<Response> {
    const ctx = this.#ctx;
    const headers = this.headers(!init.stream);
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await ctx.fetch(this.url(endpoint), {
        method: init.method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: AbortSignal.any([this.#signal, AbortSignal.timeout(ctx.config.requestTimeoutMs)]),
        longPoll: init.probe === true, // a health probe takes no rate-limit token
      });
    } catch (error) {
      if (this.#signal.aborted || ctx.signal.aborted) throw error;
      throw new OpenAIApiError(endpoint, 0, this.#networkProblem(error));
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON (a proxy's error page …): judged by the status
    }
    const error = errorOf(body) ?? { message: `HTTP ${res.status}${text && text.length < 200 && !/[<{]/.test(text) ? ` ${text.trim()}` : ''}`, type: null, code: null };
    if (res.status === 429) {
      const ms = retryAfterMsOf(res.headers, ctx.clock.now());
      const rateLimit = ctx.rateLimit.pause(ms, `${endpoint}: ${error.message}`);
      throw new OpenAIApiError(endpoint, 429, error.message, { ...error, rateLimit });
    }
    throw new OpenAIApiError(endpoint, res.status, error.message, error);
  }

  /** What went wrong on the wire, without the key. */
  #networkProblem(error: unknown): string {
    const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
    const detail = typeof cause?.code === 'string' ? cause.code : error instanceof Error ? error.message : String(error);
    const key = this.#ctx.credentials?.apiKey;
    return `no answer (${key ? detail.split(key).join('…') : detail})`;
  }
}
