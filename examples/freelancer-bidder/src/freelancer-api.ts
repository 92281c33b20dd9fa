import type { AdapterContext, RateLimitError } from 'multisession';

/**
 * The Freelancer.com REST API (v0.1) client of one session: every request through `ctx.fetch`
 * (the session's proxy and its per-token rate limit) with the OAuth token in the
 * `freelancer-oauth-v1` header; answers are `{ status: 'success', result }`, refusals
 * `{ status: 'error', message, error_code }`.
 */

/** Freelancer refused a request, or could not be reached. The message never holds the token. */
export class FreelancerApiError extends Error {
  /** The HTTP status, or 0 when no answer came (network error, time-out). */
  readonly status: number;
  /** Freelancer's `error_code` (e.g. `ProjectExceptionCodes.DUPLICATE_BID`), or null. */
  readonly errorCode: string | null;
  /** For a 429: the `RateLimitError` a `send()` rejects with (the session is paused meanwhile). */
  readonly rateLimit: RateLimitError | null;

  constructor(what: string, status: number, message: string, errorCode: string | null, rateLimit: RateLimitError | null = null) {
    super(`Freelancer ${what} failed: ${status ? `${status} ` : ''}${message}${errorCode ? ` (${errorCode})` : ''}`);
    this.name = 'FreelancerApiError';
    this.status = status;
    this.errorCode = errorCode;
    this.rateLimit = rateLimit;
  }
}

export interface ApiConfig {
  apiRoot: string;
  requestTimeoutMs: number;
}

type Ctx = AdapterContext<ApiConfig, { oauthToken: string }, unknown>;

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** One JSON request; resolves with `result`, throws `FreelancerApiError` (a 429 pauses the session first). */
export async function callFreelancer<T>(
  ctx: Ctx,
  signal: AbortSignal,
  method: 'GET' | 'POST',
  path: string,
  options: { query?: Record<string, string | number | boolean>; body?: unknown } = {},
): Promise<T> {
  const url = new URL(ctx.config.apiRoot.replace(/\/+$/, '') + path);
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, String(v));
  const what = `${method} ${path}`;
  let status: number;
  let text: string;
  let retryAfter: string | null;
  try {
    const res = await ctx.fetch(url, {
      method,
      headers: { 'freelancer-oauth-v1': ctx.credentials.oauthToken, accept: 'application/json', ...(options.body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.any([signal, AbortSignal.timeout(ctx.config.requestTimeoutMs)]),
    });
    status = res.status;
    retryAfter = res.headers.get('retry-after');
    text = await res.text();
  } catch (error) {
    if (signal.aborted) throw error;
    const cause = (error as { cause?: { code?: unknown } }).cause;
    throw new FreelancerApiError(what, 0, `no answer (${typeof cause?.code === 'string' ? cause.code : error instanceof Error ? error.name : 'error'})`, null);
  }
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (a proxy's error page …): judged by the status
  }
  if (status < 300 && isRecord(body) && body.status === 'success') return body.result as T;
  const message = isRecord(body) && typeof body.message === 'string' ? body.message : `HTTP ${status}`;
  const errorCode = isRecord(body) && typeof body.error_code === 'string' ? body.error_code : null;
  if (status === 429) {
    // Freelancer's "slow down" holds back all of this token's traffic, polls and bids alike.
    const seconds = Number(retryAfter);
    const ms = Number.isFinite(seconds) && seconds > 0 ? seconds * 1_000 : 5_000;
    const rateLimit = ctx.rateLimit.pause(ms, `Freelancer ${what}: ${message}`);
    throw new FreelancerApiError(what, status, message, errorCode, rateLimit);
  }
  throw new FreelancerApiError(what, status, message, errorCode);
}
