import type { Dispatcher } from 'undici';
import { AbortedError, PermanentFailureError } from '../../errors.js';
import { proxyOf } from '../../net/config.js';
import { createProxyDispatcher, loadUndici } from '../../net/dispatcher.js';
import { parseProxy } from '../../net/proxy.js';
import type { JsonValue } from '../../types.js';
import type { HealthReport, PlatformConnection } from '../contract.js';
import { sleep } from './buckets.js';
import { envelopeOf, isDiscordMessage } from './envelope.js';
import { GatewaySocket, type GatewayOutcome } from './gateway.js';
import { closeProblem, DiscordGatewayError } from './close-codes.js';
import { intentBits } from './intents.js';
import { DiscordApiError, DiscordRest, type DiscordContext } from './rest.js';
import { CURRENT_USER, GATEWAY_BOT, requestOf } from './routes.js';
import type { DiscordBotAction } from './schemas.js';

/**
 * `ctx.kv` key of the gateway session to resume: `{ sessionId, seq, resumeUrl }`, where `seq` is
 * the last event handled (every message before it went to the app's listeners).
 */
export const GATEWAY_STATE_KEY = 'discord:gateway';

interface StoredSession {
  sessionId: string;
  seq: number | null;
  resumeUrl: string;
}

const isStoredSession = (v: unknown): v is StoredSession => {
  const s = v as Partial<StoredSession> | null;
  return !!s && typeof s.sessionId === 'string' && typeof s.resumeUrl === 'string' && /^wss?:\/\/[^\s]+$/.test(s.resumeUrl) && (s.seq === null || typeof s.seq === 'number');
};

/** Whether an error is "the connection is shut down" (nothing to report). */
const isAborted = (error: unknown): boolean => (error as { code?: unknown; name?: unknown } | null)?.code === 'ABORTED' || (error as Error | null)?.name === 'AbortError';
const MAX_BACKOFF_MS = 30_000;
/** How long stop() waits for the close handshake before it lets the socket go. */
const CLOSE_WAIT_MS = 1_000;

/** The credentials were refused (401, or gateway close 4004): the session ends `expired`. */
class Refused extends Error {}

/**
 * One session's live connection: the gateway (a WebSocket through the session's proxy) for
 * inbound events, REST through `ctx.fetch` for health and sends. The gateway session and the
 * sequence number of the last event handled live in `ctx.kv`, so a restart resumes where the
 * app left off instead of logging in afresh; zombies, RECONNECT, INVALID_SESSION and resumable
 * close codes are handled inside the connection, with back-off.
 */
export class DiscordBotConnection implements PlatformConnection<DiscordBotAction> {
  readonly ctx: DiscordContext;
  readonly rest: DiscordRest;
  /** Aborted by stop(): ends requests in flight, waits and the gateway loop. */
  readonly #closed = new AbortController();
  readonly #signal: AbortSignal;
  #started = false;
  #socket: GatewaySocket | null = null;
  #dispatcher: Promise<Dispatcher> | null = null;
  /** The live gateway session (from READY), or the stored one being resumed. */
  #session: { sessionId: string; resumeUrl: string } | null = null;
  /** The last event handled, and whether it is newer than what the KV holds. */
  #handled: { sessionId: string; seq: number } | null = null;
  #dirty = false;
  /** Dispatches are handled one at a time, in order. */
  #queue: Promise<void> = Promise.resolve();
  #userId: string | null = null;
  /** Why the gateway is down between two sockets (for health), or null while it is up. */
  #down: string | null = 'connecting';
  #ready: { resolve(): void; reject(error: unknown): void } | null = null;

  constructor(ctx: DiscordContext) {
    this.ctx = ctx;
    this.#signal = AbortSignal.any([ctx.signal, this.#closed.signal]);
    this.rest = new DiscordRest(ctx, this.#signal);
  }

  get stopped(): boolean {
    return this.#signal.aborted;
  }

  async start(): Promise<void> {
    const stored = await this.ctx.kv.get(GATEWAY_STATE_KEY);
    if (this.stopped) throw new AbortedError('stopped while starting');
    const ready = new Promise<void>((resolve, reject) => (this.#ready = { resolve, reject }));
    // The session going down (ctx.signal) ends a start that waits, before stop() is called.
    this.#signal.addEventListener('abort', () => this.#halt(), { once: true });
    this.#loop(isStoredSession(stored) ? stored : null).then(
      () => this.#ready?.reject(new AbortedError('stopped while starting')),
      (error: unknown) => this.#ended(error),
    );
    await ready;
    this.#started = true;
  }

  /** The gateway loop ended with `error`: before READY, start() rejects; after, the session fails or expires. */
  #ended(error: unknown): void {
    if (error instanceof Refused) this.ctx.expired(error.message);
    const ready = this.#ready;
    if (ready) ready.reject(error);
    else if (!this.stopped && !(error instanceof Refused) && !isAborted(error)) this.ctx.fail(error);
  }

  /** Connects, and reconnects (resuming when it can) until stopped, refused or out of tries. */
  async #loop(stored: StoredSession | null): Promise<void> {
    const ctx = this.ctx;
    let resume: { url: string; sessionId: string; seq: number | null } | null = stored ? { url: stored.resumeUrl, sessionId: stored.sessionId, seq: stored.seq } : null;
    if (stored) {
      this.#session = { sessionId: stored.sessionId, resumeUrl: stored.resumeUrl };
      if (stored.seq !== null) this.#handled = { sessionId: stored.sessionId, seq: stored.seq };
    }
    let failures = 0;
    let gatewayUrl: string | null = null;
    for (;;) {
      const url = resume?.url ?? (gatewayUrl ??= await this.#gatewayUrl());
      const [undici, dispatcher] = await Promise.all([loadUndici(), this.#proxyDispatcher()]);
      if (this.stopped) return;
      const socket = new GatewaySocket(undici.WebSocket, url, {
        clock: ctx.clock,
        login: { token: ctx.credentials.token, intents: intentBits(ctx.config.intents), resume: resume && { sessionId: resume.sessionId, seq: resume.seq } },
        log: ctx.log,
        dispatcher,
        onDispatch: (seq, type, data) => this.#onDispatch(socket, seq, type, data),
      });
      this.#socket = socket;
      const outcome = await socket.done;
      if (this.stopped) return;
      if (this.#down === null) failures = 0; // it was up: a new run of failures starts
      this.#down = describe(outcome);
      const problem = outcome.kind === 'closed' ? closeProblem(outcome.code, outcome.reason, ctx.config.intents) : null;
      if (problem === 'expired') throw new Refused(`Discord refused the bot token (gateway close 4004 ${outcome.kind === 'closed' ? outcome.reason : ''})`.trim());
      // A close code no reconnect fixes (4010-4014): the session ends failed now, not after restarts.
      if (problem instanceof DiscordGatewayError) throw new PermanentFailureError(problem.message, { cause: problem, context: { closeCode: problem.closeCode } });
      let wait = 0;
      if (problem === 'reidentify' || (outcome.kind === 'invalid' && !outcome.resumable)) {
        // The session is gone: forget it, and log in afresh (after 1-5 s, as Discord asks after INVALID_SESSION).
        this.#forget();
        if (outcome.kind === 'invalid') wait = 1_000 + Math.floor(Math.random() * 4_000);
      }
      resume = this.#session && { url: this.#session.resumeUrl, sessionId: this.#session.sessionId, seq: socket.lastSeq };
      if (++failures > ctx.config.maxReconnects) {
        throw new DiscordGatewayError(outcome.kind === 'closed' ? outcome.code : 0, `the gateway went down ${failures} times in a row (last: ${this.#down}); raise config.maxReconnects or check the network`);
      }
      if (failures > 1) wait = Math.max(wait, Math.min(MAX_BACKOFF_MS, 1_000 * 2 ** (failures - 2)));
      ctx.log.warn(`gateway ${this.#down}; ${resume ? 'resuming' : 'identifying'}${wait ? ` in ${wait} ms` : ''}`);
      ctx.stats.increment('gatewayReconnects');
      if (wait > 0) await sleep(ctx.clock, wait, this.#signal);
    }
  }

  /** GET /gateway/bot: where to connect; a refused token ends in `expired`. */
  async #gatewayUrl(): Promise<string> {
    let answer: { url?: unknown; session_start_limit?: { remaining?: unknown; reset_after?: unknown } };
    try {
      answer = await this.rest.request(GATEWAY_BOT);
    } catch (error) {
      if (error instanceof DiscordApiError && error.status === 401) throw new Refused(`Discord refused the bot token (401 ${error.description})`);
      throw error;
    }
    const limit = answer?.session_start_limit;
    if (limit && limit.remaining === 0) {
      throw new DiscordGatewayError(0, `Discord allows this bot no more gateway logins (IDENTIFY) for ${String(limit.reset_after)} ms (session_start_limit)`);
    }
    if (typeof answer?.url !== 'string') throw new DiscordGatewayError(0, 'GET /gateway/bot answered without a url');
    return answer.url;
  }

  #proxyDispatcher(): Promise<Dispatcher | null> {
    const setting = proxyOf(this.ctx.config);
    if (setting === null) return Promise.resolve(null);
    // A WebSocket cannot go through an HTTP proxy in absolute form: always a CONNECT tunnel.
    return (this.#dispatcher ??= createProxyDispatcher({ ...parseProxy(setting, ['config', 'proxy']), tunnel: true }));
  }

  #forget(): void {
    this.#session = null;
    this.#handled = null;
    this.#dirty = false;
    this.ctx.kv.delete(GATEWAY_STATE_KEY).catch(() => undefined);
  }

  /** A dispatch from the live socket: queued behind the ones before it. */
  #onDispatch(socket: GatewaySocket, seq: number | null, type: string, data: unknown): void {
    if (this.stopped || socket !== this.#socket) return;
    if (type === 'READY') {
      const d = data as { session_id?: unknown; resume_gateway_url?: unknown; user?: { id?: unknown; username?: unknown } } | null;
      if (typeof d?.session_id !== 'string' || typeof d.resume_gateway_url !== 'string') return;
      this.#session = { sessionId: d.session_id, resumeUrl: d.resume_gateway_url };
      this.#userId = typeof d.user?.id === 'string' ? d.user.id : null;
      this.ctx.log.info(`gateway ready as ${String(d.user?.username ?? this.#userId)} (session ${d.session_id.slice(0, 8)}…)`);
    }
    if (type === 'READY' || type === 'RESUMED') {
      this.#down = null;
      const ready = this.#ready;
      this.#ready = null;
      ready?.resolve();
    }
    const session = this.#session?.sessionId;
    if (session === undefined) return;
    this.#queue = this.#queue
      .then(() => this.#handle(session, seq, type, data))
      .catch((error: unknown) => {
        if (!this.stopped && !isAborted(error)) this.ctx.fail(error);
      });
  }

  /** Handles one dispatch (a message: once the app's listeners are done), then moves the cursor past it. */
  async #handle(sessionId: string, seq: number | null, type: string, data: unknown): Promise<void> {
    if (this.stopped) return;
    const isMessage = type === 'MESSAGE_CREATE' && isDiscordMessage(data);
    if (isMessage && (data as { author?: { id?: unknown } }).author?.id !== this.#userId) {
      try {
        await this.ctx.emitMessage(envelopeOf(data, this.ctx.clock.now()));
      } catch (error) {
        if (isAborted(error)) return; // shut down: not handled, the cursor stays before it
        throw error;
      }
    }
    if (seq === null || this.#session?.sessionId !== sessionId) return;
    this.#handled = { sessionId, seq };
    this.#dirty = true;
    if (isMessage || type === 'READY') await this.#commit();
  }

  /** Stores the gateway session and the last event handled. */
  async #commit(): Promise<void> {
    const session = this.#session;
    const handled = this.#handled;
    if (!session || !handled || handled.sessionId !== session.sessionId || !this.#dirty) return;
    this.#dirty = false;
    await this.ctx.kv.set(GATEWAY_STATE_KEY, { sessionId: session.sessionId, seq: handled.seq, resumeUrl: session.resumeUrl });
  }

  async stop(): Promise<void> {
    // Idempotent, and safe before start(). The socket closes with a resumable code, so the next
    // start (this process or another) resumes the session instead of logging in again.
    this.#closed.abort();
    this.#halt();
    const socket = this.#socket;
    if (socket) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([socket.closed, new Promise<void>((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
    }
    await this.#commit().catch(() => undefined); // events handled since the last message, if the KV still takes writes
    const dispatcher = this.#dispatcher;
    this.#dispatcher = null;
    if (dispatcher) await dispatcher.then((d) => d.destroy()).catch(() => undefined);
  }

  /** Ends a pending start() and closes the socket (resumable). */
  #halt(): void {
    this.#ready?.reject(new AbortedError('stopped while starting'));
    this.#ready = null;
    this.#socket?.close({ kind: 'stopped' });
  }

  async health(): Promise<HealthReport> {
    if (!this.#started || this.stopped) return { status: 'unknown', detail: 'not connected' };
    if (this.#down !== null) return { status: 'unhealthy', detail: `gateway ${this.#down}; reconnecting` };
    const paused = this.ctx.rateLimit.pausedMs();
    if (paused > 0) {
      const trouble = this.rest.trouble;
      const detail = `${trouble?.detail ?? 'Discord asked to wait'}; outbound traffic paused for ${paused} ms`;
      return { status: trouble?.kind === 'unavailable' ? 'unhealthy' : 'healthy', detail };
    }
    try {
      await this.rest.request(CURRENT_USER);
      return { status: 'healthy' };
    } catch (error) {
      if (error instanceof DiscordApiError && error.status === 401) return { status: 'expired', detail: `Discord refused the bot token (401 ${error.description})` };
      if (error instanceof DiscordApiError && error.status === 429) return { status: 'healthy', detail: error.message };
      return { status: 'unhealthy', detail: error instanceof Error ? error.message : String(error) };
    }
  }

  async send(action: DiscordBotAction): Promise<JsonValue> {
    if (!this.#started || this.stopped) throw new Error('not connected; start the session first');
    try {
      return (await this.rest.request<JsonValue>(requestOf(action))) ?? null;
    } catch (error) {
      if (error instanceof DiscordApiError) {
        if (error.rateLimit) throw error.rateLimit; // 429: the caller gets RateLimitError (retryAfterMs)
        if (error.status === 401) this.ctx.expired(`Discord refused the bot token (401 ${error.description})`);
      }
      throw error;
    }
  }
}

/** A socket's end, in words. */
function describe(outcome: GatewayOutcome): string {
  switch (outcome.kind) {
    case 'closed':
      return `closed (${outcome.code}${outcome.reason ? ` ${outcome.reason}` : ''})`;
    case 'zombie':
      return 'stopped acknowledging heartbeats (zombie connection)';
    case 'reconnect':
      return 'asked to reconnect (op 7)';
    case 'invalid':
      return `invalidated the session (op 9, ${outcome.resumable ? 'resumable' : 'not resumable'})`;
    case 'stopped':
      return 'stopped';
  }
}
