/**
 * `multisession/adapters/discord-bot`: Discord bots over the gateway (a WebSocket through the
 * session's proxy) and REST (the session's own `ctx.fetch`, so its proxy and rate limit apply).
 * Nothing is loaded until this module is imported; undici not before the first connection.
 *
 * @example
 * ```ts
 * import { SessionManager, isMessageFrom } from 'multisession';
 * import { discordBot } from 'multisession/adapters/discord-bot';
 *
 * const discord = discordBot();
 * const manager = new SessionManager({ adapters: [discord] });
 * await manager.open();
 * await manager.create({
 *   id: 'helper-bot',
 *   platform: 'discord-bot',
 *   credentials: { token: process.env.DISCORD_TOKEN },
 *   config: { intents: ['Guilds', 'GuildMessages', 'DirectMessages', 'MessageContent'] },
 * });
 * manager.on('session.message', async (e) => {
 *   if (isMessageFrom(discord, e) && e.message.chatId && e.message.text === '!ping') {
 *     await manager.send(e.id, { method: 'createMessage', channel_id: e.message.chatId, content: 'pong' });
 *   }
 * });
 * await manager.start('helper-bot');
 * ```
 */
import { z } from 'zod';
import { defineAdapter, type Adapter } from '../contract.js';
import { fromZodError } from '../../validation.js';
import { DiscordBotConnection } from './connection.js';
import { discordBotAction, discordBotConfig, discordBotCredentials, discordBotMessage } from './schemas.js';

export { DiscordApiError } from './rest.js';
export { DiscordGatewayError } from './close-codes.js';
export { GATEWAY_STATE_KEY as DISCORD_GATEWAY_STATE_KEY } from './connection.js';
export { envelopeOf as discordEnvelopeOf, type DiscordMessage } from './envelope.js';
export { DISCORD_INTENTS, PRIVILEGED_INTENTS as DISCORD_PRIVILEGED_INTENTS, type DiscordIntent } from './intents.js';
export {
  DISCORD_TOKEN_PATTERN,
  discordBotAction,
  discordBotConfig,
  discordBotCredentials,
  discordBotMessage,
  type DiscordBotAction,
  type DiscordBotConfig,
  type DiscordBotCredentials,
  type DiscordBotMessage,
} from './schemas.js';

/** The Discord adapter. */
export type DiscordBotAdapter = Adapter<typeof discordBotCredentials, typeof discordBotConfig, typeof discordBotAction, typeof discordBotMessage>;

const optionsSchema = z.strictObject({
  /** The platform name sessions use. Default `discord-bot`. */
  name: z.string().optional(),
});

/** Options of {@link discordBot}. */
export type DiscordBotOptions = z.input<typeof optionsSchema>;

/**
 * Makes the Discord bot adapter. Credentials `{ token }`; config, actions and inbound messages as
 * `discordBotConfig`, `discordBotAction` and `discordBotMessage` describe them.
 */
export function discordBot(options: DiscordBotOptions = {}): DiscordBotAdapter {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw fromZodError('discordBot options', parsed.error);
  return defineAdapter({
    name: parsed.data.name ?? 'discord-bot',
    description: 'Discord bots over the gateway and REST: resumable sessions across restarts, per-route rate limits, at-least-once messages.',
    credentials: discordBotCredentials,
    config: discordBotConfig,
    action: discordBotAction,
    message: discordBotMessage,
    connect: (ctx) => new DiscordBotConnection(ctx),
  });
}
