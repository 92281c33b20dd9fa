/**
 * Gateway intents by name (Discord's documented bits). Three are privileged: a bot gets them only
 * when they are switched on in the Developer Portal (Bot → Privileged Gateway Intents), and the
 * gateway closes with 4014 when one is requested without that.
 */
export const DISCORD_INTENTS = {
  Guilds: 1 << 0,
  GuildMembers: 1 << 1,
  GuildModeration: 1 << 2,
  GuildExpressions: 1 << 3,
  GuildIntegrations: 1 << 4,
  GuildWebhooks: 1 << 5,
  GuildInvites: 1 << 6,
  GuildVoiceStates: 1 << 7,
  GuildPresences: 1 << 8,
  GuildMessages: 1 << 9,
  GuildMessageReactions: 1 << 10,
  GuildMessageTyping: 1 << 11,
  DirectMessages: 1 << 12,
  DirectMessageReactions: 1 << 13,
  DirectMessageTyping: 1 << 14,
  MessageContent: 1 << 15,
  GuildScheduledEvents: 1 << 16,
  AutoModerationConfiguration: 1 << 20,
  AutoModerationExecution: 1 << 21,
  GuildMessagePolls: 1 << 24,
  DirectMessagePolls: 1 << 25,
} as const;

export type DiscordIntent = keyof typeof DISCORD_INTENTS;

export const INTENT_NAMES = Object.keys(DISCORD_INTENTS) as [DiscordIntent, ...DiscordIntent[]];

/** The intents a bot must be granted in the Developer Portal. */
export const PRIVILEGED_INTENTS: readonly DiscordIntent[] = ['GuildMembers', 'GuildPresences', 'MessageContent'];

/** The bitfield IDENTIFY sends for these intents. */
export function intentBits(intents: readonly DiscordIntent[]): number {
  return intents.reduce((bits, name) => bits | DISCORD_INTENTS[name], 0);
}
