import { z } from 'zod';
import { defineAdapter, networkConfigSchema, type AdapterContext, type HealthReport, type JsonValue, type PlatformConnection } from 'multisession';

/**
 * `http-poller`: a platform adapter for a chat service reached over plain HTTP (the platform in
 * `platform-server.ts`): log in with an API token plus a one-time code sent to the account's
 * owner, poll `GET /updates` for inbound messages, send with `POST /messages`.
 *
 * It shows every part of the adapter contract a real adapter needs:
 * - `ctx.auth.request('code')`: the session goes `authenticating` until `manager.submitAuth()`;
 * - `ctx.authState`: the platform's session key survives restarts (dropped by `manager.logout()`);
 * - `ctx.kv`: the polling cursor, moved past a message only once `ctx.emitMessage` resolved (the
 *   app handled it): none is lost in a crash, none delivered twice after a clean restart
 *   (dropped by `manager.clear()`);
 * - `ctx.emitMessage`, `ctx.stats`, `ctx.log` (never with the token);
 * - `ctx.fetch`: every request goes through the session's own proxy and rate limit (config
 *   `proxy`, `rateLimit`, from `networkConfigSchema`) and is aborted when the session stops;
 * - `ctx.signal`: waits end when the session stops;
 * - `ctx.expired()` when the platform refuses the token, `ctx.fail()` when polling keeps failing.
 */

export const httpPollerCredentials = z.object({
  /** The account's API token (encrypted at rest by the manager, never logged). */
  apiToken: z.string().min(8, 'must be at least 8 characters'),
});

export const httpPollerConfig = z.object({
  /** Optional per-session `proxy` and `rateLimit`, applied by `ctx.fetch` (and `manager.send`). */
  ...networkConfigSchema.shape,
  /** The platform's base URL, e.g. `https://chat.example.com/api`. */
  baseUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  /** Pause between two polls of `/updates`. */
  pollIntervalMs: z.number().int().min(10).max(600_000).default(1_000),
  /** How long one HTTP request may take. */
  requestTimeoutMs: z.number().int().min(10).max(120_000).default(5_000),
  /** Polls failing in a row before the connection counts as lost (`ctx.fail`: restart with back-off). */
  maxPollFailures: z.number().int().min(1).max(100).default(3),
});

/** What `manager.send(id, action)` takes for this platform. */
export const httpPollerAction = z.strictObject({
  text: z.string().min(1).max(4096),
  to: z.string().min(1).max(256).optional(),
});

export type HttpPollerConfig = z.output<typeof httpPollerConfig>;
export type HttpPollerCredentials = z.output<typeof httpPollerCredentials>;

/** `ctx.authState` key of the platform's session key. */
export const SESSION_KEY = 'sessionKey';
/** `ctx.kv` key of the id of the newest message delivered. */
export const CURSOR_KEY = 'cursor';
/** Wrong login codes accepted before start() gives up. */
const CODE_ATTEMPTS = 3;

interface Reply {
  status: number;
  body: Record<string, unknown> | null;
}

/** An HTTP answer the adapter did not expect (its message names the request, never the token). */
class PlatformError extends Error {
  constructor(readonly status: number, what: string) {
    super(`${what} answered HTTP ${status}`);
    this.name = 'PlatformError';
  }
}

class HttpPollerConnection implements PlatformConnection<z.output<typeof httpPollerAction>> {
  readonly #ctx: AdapterContext<HttpPollerConfig, HttpPollerCredentials>;
  /** Aborted by stop(): ends requests in flight even when ctx.signal was not aborted first. */
  readonly #closed = new AbortController();
  #sessionKey: string | null = null;
  #cursor = 0;
  #failures = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(ctx: AdapterContext<HttpPollerConfig, HttpPollerCredentials>) {
    this.#ctx = ctx;
  }

  get #stopped(): boolean {
    return this.#closed.signal.aborted || this.#ctx.signal.aborted;
  }

  /**
   * One JSON request through `ctx.fetch` (the session's proxy and rate limit); aborted when the
   * session stops, by stop() and after requestTimeoutMs.
   */
  async #call(method: 'GET' | 'POST', path: string, body?: JsonValue): Promise<Reply> {
    const ctx = this.#ctx;
    const { config, signal } = ctx;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#sessionKey !== null) headers.authorization = `Bearer ${this.#sessionKey}`;
    const res = await ctx.fetch(config.baseUrl.replace(/\/+$/, '') + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.any([signal, this.#closed.signal, AbortSignal.timeout(config.requestTimeoutMs)]),
    });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    return { status: res.status, body: parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null };
  }

  /** The token is refused: tell the manager (session → `expired`, no restart loop) and end start(). */
  #tokenRefused(): never {
    this.#ctx.expired('the platform refused the API token');
    throw new PlatformError(401, 'login');
  }

  /** Token, then the one-time code the user submits with `manager.submitAuth()`. */
  async #login(): Promise<string> {
    const ctx = this.#ctx;
    const token = ctx.credentials.apiToken;
    const first = await this.#call('POST', '/login', { token });
    if (first.status === 401) this.#tokenRefused();
    if (first.status !== 200) throw new PlatformError(first.status, 'POST /login');
    const hint = typeof first.body?.hint === 'string' ? first.body.hint : 'a login code was sent to the account owner';
    for (let attempt = 1; attempt <= CODE_ATTEMPTS; attempt++) {
      // The session is `authenticating` (auth.kind 'code', auth.data { hint }) until the code arrives.
      const code = await ctx.auth.request('code', { data: { hint, attempt } });
      const reply = await this.#call('POST', '/login/code', { token, code });
      if (reply.status === 200 && typeof reply.body?.sessionKey === 'string') {
        ctx.log.info('logged in with a one-time code');
        return reply.body.sessionKey;
      }
      if (reply.status === 401) this.#tokenRefused();
      if (reply.status !== 400) throw new PlatformError(reply.status, 'POST /login/code');
      ctx.log.warn(`wrong login code (attempt ${attempt} of ${CODE_ATTEMPTS})`);
    }
    throw new Error(`wrong login code ${CODE_ATTEMPTS} times; start the session again to retry`);
  }

  async start(): Promise<void> {
    const ctx = this.#ctx;
    // A session key from an earlier run skips the login code, if the platform still takes it.
    this.#sessionKey = (await ctx.authState.get<string>(SESSION_KEY)) ?? null;
    if (this.#sessionKey !== null) {
      const ping = await this.#call('GET', '/ping');
      if (ping.status === 401) {
        ctx.log.info('the stored session key was refused; logging in again');
        this.#sessionKey = null;
        await ctx.authState.delete(SESSION_KEY);
      } else if (ping.status === 200) {
        ctx.log.info('resumed with the stored session key');
      } else {
        throw new PlatformError(ping.status, 'GET /ping'); // a failed start: the manager retries with back-off
      }
    }
    if (this.#sessionKey === null) {
      this.#sessionKey = await this.#login();
      await ctx.authState.set(SESSION_KEY, this.#sessionKey);
    }
    this.#cursor = (await ctx.kv.get<number>(CURSOR_KEY)) ?? 0;
    if (this.#stopped) throw new Error('stopped while starting');
    ctx.log.info('connected', { baseUrl: ctx.config.baseUrl, cursor: this.#cursor });
    this.#schedulePoll(0);
  }

  #schedulePoll(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#poll();
    }, ms);
    this.#timer.unref(); // never keeps the process alive
  }

  async #poll(): Promise<void> {
    const ctx = this.#ctx;
    try {
      const reply = await this.#call('GET', `/updates?after=${this.#cursor}`);
      if (reply.status === 401) {
        // The platform dropped our session key (revoked token, logout elsewhere): re-authentication needed.
        ctx.expired('the platform refused the session key');
        return;
      }
      if (reply.status !== 200) throw new PlatformError(reply.status, 'GET /updates');
      ctx.stats.increment('polls');
      const messages = Array.isArray(reply.body?.messages) ? (reply.body.messages as { id: number; from: string; text: string }[]) : [];
      for (const message of messages) {
        if (this.#stopped) return;
        // Resolves once the app's listeners have handled it; only then is the cursor moved past
        // it, so a crash in between delivers it again after the restart (at least once).
        await ctx.emitMessage({ id: message.id, from: message.from, text: message.text });
        this.#cursor = Math.max(this.#cursor, message.id);
        await ctx.kv.set(CURSOR_KEY, this.#cursor);
      }
      this.#failures = 0;
    } catch (error) {
      if (this.#stopped) return; // an aborted request on stop is no failure
      this.#failures++;
      const reason = error instanceof Error ? error.message : String(error);
      ctx.log.warn(`poll failed (${this.#failures} of ${ctx.config.maxPollFailures} in a row): ${reason}`);
      if (this.#failures >= ctx.config.maxPollFailures) {
        // The connection is lost: the manager restarts the session with back-off.
        ctx.fail(new Error(`polling failed ${this.#failures} times in a row: ${reason}`));
        return;
      }
    }
    this.#schedulePoll(ctx.config.pollIntervalMs);
  }

  async stop(): Promise<void> {
    // Idempotent: a second call, or a call before start(), finds nothing left to do.
    this.#closed.abort();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  async health(): Promise<HealthReport> {
    if (this.#sessionKey === null || this.#stopped) return { status: 'unknown', detail: 'not connected' };
    try {
      const reply = await this.#call('GET', '/ping');
      if (reply.status === 200) return { status: 'healthy' };
      if (reply.status === 401) return { status: 'unauthorized', detail: 'the platform refused the session key' };
      return { status: 'unhealthy', detail: `GET /ping answered HTTP ${reply.status}` };
    } catch (error) {
      return { status: 'unhealthy', detail: `GET /ping failed: ${error instanceof Error ? error.message : String(error)}` };
    }
  }

  async send(action: z.output<typeof httpPollerAction>): Promise<JsonValue> {
    if (this.#sessionKey === null || this.#stopped) throw new Error('not connected; start the session first');
    const reply = await this.#call('POST', '/messages', action.to === undefined ? { text: action.text } : { text: action.text, to: action.to });
    if (reply.status === 401) {
      this.#ctx.expired('the platform refused the session key');
      throw new PlatformError(401, 'POST /messages');
    }
    if (reply.status !== 201) throw new PlatformError(reply.status, 'POST /messages');
    this.#ctx.stats.increment('sent');
    return { id: typeof reply.body?.id === 'number' ? reply.body.id : null };
  }

  async logout(): Promise<void> {
    // Called by manager.logout() on a running session, before its auth state is dropped.
    if (this.#sessionKey === null) return;
    await this.#call('POST', '/logout').catch(() => undefined);
    this.#ctx.log.info('logged out of the platform');
  }
}

/**
 * The adapter. Register it with `new SessionManager({ adapters: [httpPoller] })` and create
 * sessions with `platform: 'http-poller'`.
 *
 * @example
 * ```ts
 * await manager.create({
 *   id: 'support-1',
 *   platform: 'http-poller',
 *   credentials: { apiToken: process.env.SUPPORT_TOKEN },
 *   config: { baseUrl: 'https://chat.example.com/api', pollIntervalMs: 2_000 },
 * });
 * await manager.start('support-1');                                  // authenticating: auth.kind 'code'
 * await manager.submitAuth('support-1', { kind: 'code', value: '424242' });
 * await manager.waitFor('support-1', 'ready');
 * ```
 */
export const httpPoller = defineAdapter({
  name: 'http-poller',
  description: 'A chat platform over HTTP: API token plus a one-time login code, inbound messages by polling.',
  credentials: httpPollerCredentials,
  config: httpPollerConfig,
  action: httpPollerAction,
  connect: (ctx) => new HttpPollerConnection(ctx),
});
