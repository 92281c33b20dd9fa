import { z } from 'zod';
import { networkConfigSchema } from '../../net/config.js';
import { messageEnvelopeSchema } from '../message.js';

/** What BotFather hands out: the bot's id, a colon, then the secret part. */
export const TELEGRAM_TOKEN_PATTERN = /^\d+:[A-Za-z0-9_-]{30,}$/;

/** A session's credentials: the bot token (encrypted at rest, never echoed). */
export const telegramBotCredentials = z.strictObject({
  token: z
    .string('must be the bot token from @BotFather, a string')
    .regex(TELEGRAM_TOKEN_PATTERN, 'must be a bot token from @BotFather: digits, a colon, then 30 or more of A-Z a-z 0-9 _ -'),
});

const httpUrl = (what: string) => z.url({ protocol: /^https?$/, error: `must be an http(s) URL (${what})` });

/**
 * A session's config. Unknown keys are refused (a typo never silently falls back to a default).
 * `proxy` and `rateLimit` are the session's network settings, applied to every Bot API request.
 */
export const telegramBotConfig = z
  .strictObject({
    ...networkConfigSchema.shape,
    /** The Bot API server: the cloud one, or a self-hosted `telegram-bot-api`. */
    apiRoot: httpUrl('e.g. https://api.telegram.org').default('https://api.telegram.org'),
    /** How updates arrive: `getUpdates` long polling, or a webhook Telegram calls. */
    mode: z.enum(['polling', 'webhook']).default('polling'),
    /** Long-poll `timeout` of `getUpdates`, in seconds (0: short polling). */
    pollTimeoutSec: z.number().int().min(0).max(50).default(30),
    /** Most updates one `getUpdates` returns. */
    pollLimit: z.number().int().min(1).max(100).default(100),
    /** Update types to receive (`message`, `callback_query` …); without it, Telegram's default (all but a few). */
    allowedUpdates: z
      .array(z.string().regex(/^[a-z_]{1,64}$/, 'must be an update type such as message or callback_query'))
      .max(32)
      .optional(),
    /** Webhook mode: the public URL Telegram posts updates to (the cloud Bot API wants https on 443, 80, 88 or 8443). */
    webhookUrl: httpUrl('the public address of your webhook handler').optional(),
    /** Messages a second to one chat (Telegram: about 1). */
    perChatPerSecond: z.number().positive().max(100).default(1),
    /** Messages a second across all chats of the bot (Telegram: about 30). */
    perBotPerSecond: z.number().positive().max(1_000).default(30),
    /** Longest a `send` waits for its chat's or the bot's pace; past it, `RateLimitError` at once. */
    maxPacingWaitMs: z.number().int().min(0).max(600_000).default(60_000),
    /** Time limit of each Bot API request but long polls (which get their timeout plus 15 s). */
    requestTimeoutMs: z.number().int().min(100).max(300_000).default(15_000),
  })
  .superRefine((config, ctx) => {
    if (config.mode === 'webhook' && config.webhookUrl === undefined) {
      ctx.addIssue({ code: 'custom', path: ['webhookUrl'], message: 'is required in webhook mode: the public URL of your webhook handler' });
    }
  });

const chatId = z.union(
  [z.number().int(), z.string().regex(/^(-?\d+|@[A-Za-z0-9_]{4,})$/)],
  'must be a chat id (a number) or a channel username (@name)',
);
const messageId = z.number().int().positive();
const parseMode = z.enum(['MarkdownV2', 'HTML', 'Markdown']);
/** Inline or reply keyboards and the like, passed to Telegram as they are. */
const replyMarkup = z.record(z.string(), z.json());
const replyParameters = z.strictObject({
  message_id: messageId,
  chat_id: chatId.optional(),
  allow_sending_without_reply: z.boolean().optional(),
});
/** A file by its Telegram `file_id`, or an http(s) URL Telegram fetches. Uploads of local files are not supported. */
const fileRef = z.string().min(1).max(4_096);
const sending = {
  chat_id: chatId,
  message_thread_id: z.number().int().positive().optional(),
  disable_notification: z.boolean().optional(),
  protect_content: z.boolean().optional(),
  reply_parameters: replyParameters.optional(),
  reply_markup: replyMarkup.optional(),
};

/**
 * What `manager.send` takes: one Bot API method and its parameters, in Telegram's own names.
 * Anything else — an unknown method, a missing or unknown parameter — is a `ValidationError`
 * naming the field, before any request.
 */
export const telegramBotAction = z.discriminatedUnion('method', [
  z.strictObject({
    method: z.literal('sendMessage'),
    ...sending,
    text: z.string().min(1).max(4_096),
    parse_mode: parseMode.optional(),
    link_preview_options: z.record(z.string(), z.json()).optional(),
  }),
  z.strictObject({ method: z.literal('sendPhoto'), ...sending, photo: fileRef, caption: z.string().max(1_024).optional(), parse_mode: parseMode.optional(), has_spoiler: z.boolean().optional() }),
  z.strictObject({ method: z.literal('sendDocument'), ...sending, document: fileRef, caption: z.string().max(1_024).optional(), parse_mode: parseMode.optional() }),
  z.strictObject({
    method: z.literal('editMessageText'),
    chat_id: chatId,
    message_id: messageId,
    text: z.string().min(1).max(4_096),
    parse_mode: parseMode.optional(),
    reply_markup: replyMarkup.optional(),
  }),
  z.strictObject({ method: z.literal('deleteMessage'), chat_id: chatId, message_id: messageId }),
  z.strictObject({
    method: z.literal('answerCallbackQuery'),
    callback_query_id: z.string().min(1),
    text: z.string().max(200).optional(),
    show_alert: z.boolean().optional(),
    url: z.string().optional(),
    cache_time: z.number().int().min(0).optional(),
  }),
  z.strictObject({
    method: z.literal('sendChatAction'),
    chat_id: chatId,
    message_thread_id: z.number().int().positive().optional(),
    action: z.enum(['typing', 'upload_photo', 'record_video', 'upload_video', 'record_voice', 'upload_voice', 'upload_document', 'choose_sticker', 'find_location']),
  }),
  z.strictObject({ method: z.literal('forwardMessage'), ...sending, from_chat_id: chatId, message_id: messageId }),
  z.strictObject({ method: z.literal('copyMessage'), ...sending, from_chat_id: chatId, message_id: messageId, caption: z.string().max(1_024).optional(), parse_mode: parseMode.optional() }),
]);

/**
 * An inbound update as a message: the common envelope (`id` is the update's `update_id`, the
 * same when Telegram delivers it again; `raw` is the Update object) plus `kind`, the update type
 * (`message`, `edited_message`, `channel_post`, `callback_query` …).
 */
export const telegramBotMessage = messageEnvelopeSchema.extend({ kind: z.string().min(1) });

export type TelegramBotCredentials = z.output<typeof telegramBotCredentials>;
export type TelegramBotConfig = z.output<typeof telegramBotConfig>;
export type TelegramBotAction = z.output<typeof telegramBotAction>;
export type TelegramBotMessage = z.output<typeof telegramBotMessage>;
