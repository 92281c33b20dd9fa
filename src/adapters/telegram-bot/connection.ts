import { randomBytes } from 'node:crypto';
import type { HealthReport, PlatformConnection } from '../contract.js';
import type { JsonValue } from '../../types.js';
import { BotApi, TelegramApiError, type TelegramContext } from './bot-api.js';
import { Pacing } from './pacing.js';
import { OFFSET_KEY, pollUpdates, type PollHost } from './poller.js';
import type { TelegramBotAction } from './schemas.js';
import { envelopeOf, type TelegramUpdate } from './updates.js';
import type { WebhookRouter } from './webhook.js';

/** `ctx.authState` key of the session's webhook secret (a new one after `manager.logout`). */
export const WEBHOOK_SECRET_KEY = 'telegram:webhookSecret';

/** Whether an error is "the connection is shut down" (nothing to report). */
const isAborted = (error: unknown): boolean => (error as { code?: unknown; name?: unknown } | null)?.code === 'ABORTED' || (error as Error | null)?.name === 'AbortError';

/**
 * One session's live connection to the Bot API: `getMe` to log in and as health, updates by
 * `getUpdates` long polling or by webhook, `send` paced per chat and per bot.
 */
export class TelegramBotConnection implements PlatformConnection<TelegramBotAction>, PollHost {
  readonly ctx: TelegramContext;
  readonly api: BotApi;
  readonly #router: WebhookRouter;
  /** Aborted by stop(): ends requests in flight, the poll loop and pacing waits. */
  readonly #closed = new AbortController();
  readonly #signal: AbortSignal;
  readonly #pacing: Pacing;
  #secret: string | null = null;
  #started = false;

  constructor(ctx: TelegramContext, router: WebhookRouter) {
    this.ctx = ctx;
    this.#router = router;
    this.#signal = AbortSignal.any([ctx.signal, this.#closed.signal]);
    this.api = new BotApi(ctx, this.#signal);
    this.#pacing = new Pacing(ctx.clock, ctx.config);
  }

  get stopped(): boolean {
    return this.#signal.aborted;
  }

  /** The token is refused: the session is `expired` (no restart loop) and start() rejects. */
  #refused(error: TelegramApiError): never {
    this.ctx.expired(`Telegram refused the bot token (401 ${error.description})`);
    throw error;
  }

  async start(): Promise<void> {
    const ctx = this.ctx;
    let me: { id?: unknown; username?: unknown };
    try {
      me = await this.api.call('getMe');
    } catch (error) {
      if (error instanceof TelegramApiError && error.errorCode === 401) this.#refused(error);
      throw error;
    }
    if (ctx.config.mode === 'webhook') await this.#setWebhook();
    else {
      // getUpdates and a webhook exclude each other (409): polling takes the token back from a webhook.
      await this.api.call('deleteWebhook', { drop_pending_updates: false });
    }
    const offset = ctx.config.mode === 'polling' ? ((await ctx.kv.get<number>(OFFSET_KEY)) ?? null) : null;
    if (this.stopped) throw new Error('stopped while starting');
    this.#started = true;
    ctx.log.info(`connected as @${String(me.username ?? me.id)} (${ctx.config.mode})`);
    if (ctx.config.mode === 'polling') {
      pollUpdates(this, offset).catch((error: unknown) => {
        if (!this.stopped && !isAborted(error)) ctx.fail(error);
      });
    }
  }

  async #setWebhook(): Promise<void> {
    const ctx = this.ctx;
    let secret = await ctx.authState.get<string>(WEBHOOK_SECRET_KEY);
    if (typeof secret !== 'string') {
      secret = randomBytes(32).toString('base64url'); // 43 of A-Z a-z 0-9 _ -, as Telegram allows
      await ctx.authState.set(WEBHOOK_SECRET_KEY, secret);
    }
    const params: Record<string, unknown> = { url: ctx.config.webhookUrl, secret_token: secret };
    if (ctx.config.allowedUpdates !== undefined) params.allowed_updates = ctx.config.allowedUpdates;
    await this.api.call('setWebhook', params);
    if (this.stopped) return; // stopped meanwhile: no route to a connection that is gone
    this.#secret = secret;
    this.#router.add(secret, this);
  }

  /** Emits one update; true once the app handled it, false when the connection is shut down. */
  async deliver(update: TelegramUpdate): Promise<boolean> {
    if (this.stopped) return false;
    try {
      await this.ctx.emitMessage(envelopeOf(update, this.ctx.clock.now()));
      return true;
    } catch (error) {
      if (isAborted(error)) return false;
      throw error;
    }
  }

  async stop(): Promise<void> {
    // Idempotent, and safe before start(). The webhook stays set: Telegram keeps the updates
    // (and retries them) until the session is back.
    this.#closed.abort();
    if (this.#secret !== null) this.#router.remove(this.#secret, this);
    this.#secret = null;
  }

  async health(): Promise<HealthReport> {
    if (!this.#started || this.stopped) return { status: 'unknown', detail: 'not connected' };
    const trouble = this.api.trouble;
    const paused = this.ctx.rateLimit.pausedMs();
    if (paused > 0) {
      // No probe while Telegram asked to wait: report what the last answer said.
      const detail = `${trouble?.detail ?? 'Telegram asked to wait'}; outbound traffic paused for ${paused} ms`;
      return { status: trouble?.kind === 'unavailable' ? 'unhealthy' : 'healthy', detail };
    }
    try {
      await this.api.call('getMe', {}, { longPoll: true }); // a probe: it takes no rate-limit token
      return { status: 'healthy' };
    } catch (error) {
      if (error instanceof TelegramApiError && error.errorCode === 401) return { status: 'expired', detail: `Telegram refused the bot token (401 ${error.description})` };
      if (error instanceof TelegramApiError && error.errorCode === 429) return { status: 'healthy', detail: error.message };
      return { status: 'unhealthy', detail: error instanceof Error ? error.message : String(error) };
    }
  }

  async send(action: TelegramBotAction): Promise<JsonValue> {
    if (!this.#started || this.stopped) throw new Error('not connected; start the session first');
    const { method, ...params } = action;
    const chatId = 'chat_id' in action ? String(action.chat_id) : null;
    const turn = this.#pacing.turn(this.ctx.id, chatId, this.#signal);
    if (turn) await turn;
    try {
      return await this.api.call<JsonValue>(method, params);
    } catch (error) {
      if (error instanceof TelegramApiError) {
        if (error.rateLimit) throw error.rateLimit; // 429: the caller gets RateLimitError (retryAfterMs)
        if (error.errorCode === 401) this.ctx.expired(`Telegram refused the bot token (401 ${error.description})`);
      }
      throw error;
    }
  }
}
