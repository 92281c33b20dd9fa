import { z } from 'zod';
import { networkConfigSchema } from '../../net/config.js';
import { messageEnvelopeSchema } from '../message.js';
import { INTENT_NAMES } from './intents.js';

/**
 * What the Developer Portal hands out (Bot → Reset Token): three base64url parts joined by dots,
 * the first being the bot's user id.
 */
export const DISCORD_TOKEN_PATTERN = /^[A-Za-z0-9_-]{17,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}$/;

/** A session's credentials: the bot token (encrypted at rest, never echoed). */
export const discordBotCredentials = z.strictObject({
  token: z
    .string('must be the bot token from the Developer Portal, a string')
    .regex(
      DISCORD_TOKEN_PATTERN,
      "must be a bot token from the Developer Portal (Bot → Reset Token): three dot-separated parts of A-Z a-z 0-9 _ -, without a 'Bot ' prefix",
    ),
});

const httpUrl = (what: string) => z.url({ protocol: /^https?$/, error: `must be an http(s) URL (${what})` });

/**
 * A session's config. Unknown keys are refused (a typo never silently falls back to a default).
 * `proxy` and `rateLimit` are the session's network settings: REST calls go through `ctx.fetch`,
 * the gateway's WebSocket through the same proxy.
 */
export const discordBotConfig = z.strictObject({
  ...networkConfigSchema.shape,
  /** The REST API root, without the version (a local stand-in in tests). */
  apiRoot: httpUrl('e.g. https://discord.com/api').default('https://discord.com/api'),
  /** Gateway intents by name; MessageContent, GuildMembers and GuildPresences are privileged. */
  intents: z
    .array(z.enum(INTENT_NAMES, { error: `must be a gateway intent: ${INTENT_NAMES.join(', ')}` }))
    .max(INTENT_NAMES.length)
    .default(['Guilds', 'GuildMessages', 'DirectMessages']),
  /** Longest a send waits for its route's rate-limit bucket (or a 429 `retry_after`); past it, `RateLimitError` at once. */
  maxRateLimitWaitMs: z.number().int().min(0).max(600_000).default(10_000),
  /** Time limit of each REST request. */
  requestTimeoutMs: z.number().int().min(100).max(300_000).default(15_000),
  /** Gateway reconnects in a row (with back-off, 1 s doubling to 30 s) before the connection fails and the manager restarts it. */
  maxReconnects: z.number().int().min(0).max(100).default(5),
});

/** A channel, message, user or guild id: a snowflake, as a string of digits. */
const snowflake = z.string('must be a snowflake id as a string of digits').regex(/^\d{1,20}$/, 'must be a snowflake id: a string of 1-20 digits');
const embeds = z.array(z.record(z.string(), z.json())).max(10);
const components = z.array(z.record(z.string(), z.json())).max(5);
const allowedMentions = z.strictObject({
  parse: z.array(z.enum(['roles', 'users', 'everyone'])).optional(),
  roles: z.array(snowflake).max(100).optional(),
  users: z.array(snowflake).max(100).optional(),
  replied_user: z.boolean().optional(),
});
const messageReference = z.strictObject({
  message_id: snowflake,
  channel_id: snowflake.optional(),
  guild_id: snowflake.optional(),
  fail_if_not_exists: z.boolean().optional(),
});
const content = z.string().min(1).max(2_000);

/**
 * What `manager.send` takes: one REST method (named as in Discord's docs, in camelCase) and its
 * parameters, in Discord's own names. Anything else — an unknown method, a missing or unknown
 * parameter — is a `ValidationError` naming the field, before any request.
 */
export const discordBotAction = z.discriminatedUnion('method', [
  z
    .strictObject({
      method: z.literal('createMessage'),
      channel_id: snowflake,
      content: content.optional(),
      embeds: embeds.optional(),
      components: components.optional(),
      allowed_mentions: allowedMentions.optional(),
      message_reference: messageReference.optional(),
      tts: z.boolean().optional(),
      flags: z.number().int().min(0).optional(),
    })
    .refine((a) => a.content !== undefined || (a.embeds?.length ?? 0) > 0 || (a.components?.length ?? 0) > 0, {
      path: ['content'],
      message: 'is required unless embeds or components are given',
    }),
  z.strictObject({
    method: z.literal('editMessage'),
    channel_id: snowflake,
    message_id: snowflake,
    content: content.nullable().optional(),
    embeds: embeds.nullable().optional(),
    components: components.nullable().optional(),
    allowed_mentions: allowedMentions.optional(),
    flags: z.number().int().min(0).optional(),
  }),
  z.strictObject({ method: z.literal('deleteMessage'), channel_id: snowflake, message_id: snowflake }),
  z.strictObject({ method: z.literal('triggerTyping'), channel_id: snowflake }),
  z.strictObject({
    method: z.literal('createReaction'),
    channel_id: snowflake,
    message_id: snowflake,
    /** A unicode emoji (`👍`) or a custom one as `name:id`. */
    emoji: z.string().min(1).max(100),
  }),
  z.strictObject({ method: z.literal('createDM'), recipient_id: snowflake }),
]);

/**
 * An inbound message (a `MESSAGE_CREATE` dispatch) as the common envelope: `id` is the message's
 * snowflake (the same when the gateway replays it on a resume), `chatId` its `channel_id`, `raw`
 * the Message object; plus `guildId` (null in DMs).
 */
export const discordBotMessage = messageEnvelopeSchema.extend({ guildId: z.string().min(1).nullable() });

export type DiscordBotCredentials = z.output<typeof discordBotCredentials>;
export type DiscordBotConfig = z.output<typeof discordBotConfig>;
export type DiscordBotAction = z.output<typeof discordBotAction>;
export type DiscordBotMessage = z.output<typeof discordBotMessage>;
