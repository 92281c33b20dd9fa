import type { Dispatcher } from 'undici';
import { guardedLookup, refusedUrl } from './targets.js';

/**
 * One HTTP attempt of a delivery: a POST through an undici `Agent` whose connections resolve names
 * with {@link guardedLookup} (unless private targets are allowed), with a connect timeout, a total
 * timeout, no redirects (a 3xx is a failed attempt) and a capped read of the answer. undici is
 * loaded on the first attempt, not on import.
 */

export interface SenderOptions {
  allowPrivateTargets: boolean;
  connectTimeoutMs: number;
  totalTimeoutMs: number;
  maxResponseBytes: number;
}

/** What one attempt came to. `status` null: no HTTP answer (refused, timed out, connection failed). */
export interface AttemptResult {
  status: number | null;
  latencyMs: number;
  /** `Retry-After`, in ms from now, when the answer carried one. */
  retryAfterMs: number | null;
  /** Why it failed (never the request body or a secret), null on a 2xx. */
  error: string | null;
}

export class WebhookSender {
  readonly #options: SenderOptions;
  #agent: Promise<Dispatcher> | null = null;

  constructor(options: SenderOptions) {
    this.#options = options;
  }

  #dispatcher(): Promise<Dispatcher> {
    this.#agent ??= import('undici').then(
      ({ Agent }) =>
        new Agent({
          connect: { timeout: this.#options.connectTimeoutMs, ...(this.#options.allowPrivateTargets ? {} : { lookup: guardedLookup }) },
          headersTimeout: this.#options.totalTimeoutMs,
          bodyTimeout: this.#options.totalTimeoutMs,
          keepAliveTimeout: 4000,
        }),
    );
    return this.#agent;
  }

  async post(url: string, headers: Record<string, string>, body: string): Promise<AttemptResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return { status: null, latencyMs: 0, retryAfterMs: null, error: 'the URL cannot be parsed' };
    }
    const refused = refusedUrl(target, this.#options.allowPrivateTargets);
    if (refused) return { status: null, latencyMs: 0, retryAfterMs: null, error: `target refused: ${refused}` };
    const { request } = await import('undici');
    const dispatcher = await this.#dispatcher();
    const signal = AbortSignal.timeout(this.#options.totalTimeoutMs);
    try {
      const res = await request(target, { method: 'POST', headers, body, dispatcher, signal });
      await drain(res.body, this.#options.maxResponseBytes);
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      return {
        status: res.statusCode,
        latencyMs: elapsed(),
        retryAfterMs: parseRetryAfter(res.headers['retry-after'], Date.now()),
        error: ok ? null : `HTTP ${res.statusCode}${res.statusCode >= 300 && res.statusCode < 400 ? ' (redirects are not followed)' : ''}`,
      };
    } catch (err) {
      return { status: null, latencyMs: elapsed(), retryAfterMs: null, error: describe(err, signal) };
    }
  }

  async close(): Promise<void> {
    const agent = this.#agent;
    this.#agent = null;
    if (agent) await (await agent).close();
  }
}

/** Reads at most `max` bytes of the answer, then drops the rest (and the connection). */
async function drain(body: AsyncIterable<Buffer> & { destroy(): void }, max: number): Promise<void> {
  let read = 0;
  for await (const chunk of body) {
    read += chunk.length;
    if (read > max) {
      body.destroy();
      return;
    }
  }
}

function describe(err: unknown, signal: AbortSignal): string {
  if (signal.aborted) return 'timed out (total timeout)';
  let e: unknown = err;
  // undici wraps connection errors; the lookup's refusal is the cause.
  for (let i = 0; i < 4 && e instanceof Error; i++) {
    if ((e as { code?: unknown }).code === 'WEBHOOK_TARGET_REFUSED') return `target refused: ${e.message}`;
    e = (e as { cause?: unknown }).cause;
  }
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return `${typeof code === 'string' ? `${code}: ` : ''}${message}`.slice(0, 500);
}

/** `Retry-After` as ms from `now`: delay-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return null;
  if (/^\s*\d+\s*$/.test(text)) return Number(text.trim()) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
