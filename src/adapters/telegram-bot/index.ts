/**
 * `multisession/adapters/telegram-bot`: the Telegram Bot API, over the session's own `ctx.fetch`
 * (undici, so each session's proxy and rate limit apply). Nothing is loaded until this module is
 * imported.
 *
 * @example
 * ```ts
 * import { SessionManager, isMessageFrom } from 'multisession';
 * import { telegramBot } from 'multisession/adapters/telegram-bot';
 *
 * const telegram = telegramBot();
 * const manager = new SessionManager({ adapters: [telegram] });
 * await manager.open();
 * await manager.create({ id: 'support-bot', platform: 'telegram-bot', credentials: { token: process.env.BOT_TOKEN } });
 * manager.on('session.message', async (e) => {
 *   if (isMessageFrom(telegram, e) && e.message.chatId && e.message.text) {
 *     await manager.send(e.id, { method: 'sendMessage', chat_id: Number(e.message.chatId), text: `You said: ${e.message.text}` });
 *   }
 * });
 * await manager.start('support-bot');
 * ```
 */
import { z } from 'zod';
import { defineAdapter, type Adapter } from '../contract.js';
import { fromZodError } from '../../validation.js';
import { TelegramBotConnection } from './connection.js';
import { telegramBotAction, telegramBotConfig, telegramBotCredentials, telegramBotMessage } from './schemas.js';
import { WebhookRouter, type TelegramWebhookHandler } from './webhook.js';

export { TelegramApiError } from './bot-api.js';
export { OFFSET_KEY as TELEGRAM_OFFSET_KEY } from './poller.js';
export { WEBHOOK_SECRET_KEY as TELEGRAM_WEBHOOK_SECRET_KEY } from './connection.js';
export { SECRET_TOKEN_HEADER as TELEGRAM_SECRET_TOKEN_HEADER, type TelegramWebhookHandler } from './webhook.js';
export { envelopeOf as telegramEnvelopeOf, type TelegramUpdate } from './updates.js';
export {
  TELEGRAM_TOKEN_PATTERN,
  telegramBotAction,
  telegramBotConfig,
  telegramBotCredentials,
  telegramBotMessage,
  type TelegramBotAction,
  type TelegramBotConfig,
  type TelegramBotCredentials,
  type TelegramBotMessage,
} from './schemas.js';

/** The Telegram adapter: a registered adapter plus the webhook handler of its webhook-mode sessions. */
export type TelegramBotAdapter = Adapter<typeof telegramBotCredentials, typeof telegramBotConfig, typeof telegramBotAction, typeof telegramBotMessage> & {
  /**
   * The webhook request handler of this adapter's webhook-mode sessions (see `TelegramWebhookHandler`):
   * `http.createServer(telegram.webhook)` or `app.post('/telegram', telegram.webhook)`.
   */
  readonly webhook: TelegramWebhookHandler;
};

const optionsSchema = z.strictObject({
  /** The platform name sessions use. Default `telegram-bot`. */
  name: z.string().optional(),
});

/** Options of {@link telegramBot}. */
export type TelegramBotOptions = z.input<typeof optionsSchema>;

/**
 * Makes the Telegram Bot API adapter (one per manager; its `webhook` handler serves the webhook-
 * mode sessions of that manager). Credentials `{ token }`; config, actions and inbound messages as
 * `telegramBotConfig`, `telegramBotAction` and `telegramBotMessage` describe them.
 */
export function telegramBot(options: TelegramBotOptions = {}): TelegramBotAdapter {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw fromZodError('telegramBot options', parsed.error);
  const router = new WebhookRouter();
  const adapter = defineAdapter({
    name: parsed.data.name ?? 'telegram-bot',
    description: 'Telegram bots over the Bot API: long polling or a webhook, paced sends, at-least-once updates.',
    credentials: telegramBotCredentials,
    config: telegramBotConfig,
    action: telegramBotAction,
    message: telegramBotMessage,
    connect: (ctx) => new TelegramBotConnection(ctx, router),
  });
  return Object.freeze({ ...adapter, webhook: router.handler });
}
