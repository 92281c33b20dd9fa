import { PlatformConflictError } from '../../errors.js';
import { TelegramApiError, type BotApi, type TelegramContext } from './bot-api.js';
import { isUpdate, type TelegramUpdate } from './updates.js';

/** `ctx.kv` key of the next `getUpdates` offset: the `update_id` after the last one handled. */
export const OFFSET_KEY = 'telegram:offset';

/** What the poll loop needs of its connection. */
export interface PollHost {
  readonly ctx: TelegramContext;
  readonly api: BotApi;
  readonly stopped: boolean;
  /** Emits the update; resolves true once the app handled it, false when the connection is shut down. */
  deliver(update: TelegramUpdate): Promise<boolean>;
}

/**
 * The `getUpdates` long-poll loop. Each update is emitted and awaited; only then is the offset
 * past it stored in the session's KV (and sent to Telegram with the next poll, which confirms it
 * there). A crash in between delivers it again after the restart; a clean restart replays
 * nothing. Telegram's refusals end the loop: 401 as `expired`, 409 (another poller or a webhook
 * on the token) as a `PlatformConflictError` through `ctx.fail` (the manager retries with
 * back-off, never in a hot loop). A 429, a 5xx or an unreachable server paused the session's
 * outbound traffic (see `BotApi`): the next poll waits it out on the session's clock.
 */
export async function pollUpdates(host: PollHost, startOffset: number | null): Promise<void> {
  const { ctx, api } = host;
  const { pollTimeoutSec, pollLimit, allowedUpdates } = ctx.config;
  let offset = startOffset;
  while (!host.stopped) {
    let updates: unknown;
    try {
      const params: Record<string, unknown> = { timeout: pollTimeoutSec, limit: pollLimit };
      if (offset !== null) params.offset = offset;
      if (allowedUpdates !== undefined) params.allowed_updates = allowedUpdates;
      updates = await api.call<unknown>('getUpdates', params, { longPoll: true, timeoutMs: (pollTimeoutSec + 15) * 1_000 });
    } catch (error) {
      if (host.stopped) return;
      if (!(error instanceof TelegramApiError)) throw error;
      if (error.errorCode === 401) return ctx.expired(`Telegram refused the bot token (401 ${error.description})`);
      if (error.errorCode === 409) {
        return ctx.fail(new PlatformConflictError(ctx.id, 'Telegram', `409 ${error.description}`, { cause: error }));
      }
      if (error.retryAfterMs === null) return ctx.fail(error); // 400 and the like: the config is wrong
      ctx.log.warn(`${error.message}; polling again in ${error.retryAfterMs} ms`);
      continue; // the session is paused: the next poll waits
    }
    if (!Array.isArray(updates)) return ctx.fail(new TelegramApiError('getUpdates', 0, 'the answer was not a list of updates'));
    for (const update of updates) {
      if (host.stopped) return;
      if (!isUpdate(update) || (offset !== null && update.update_id < offset)) continue;
      if (!(await host.deliver(update))) return;
      offset = update.update_id + 1;
      await ctx.kv.set(OFFSET_KEY, offset); // rejects once the connection is shut down: the loop ends
    }
  }
}
