import type { JsonValue } from '../../types.js';
import type { MessageSender } from '../message.js';
import type { DiscordBotMessage } from './schemas.js';

type Obj = { [key: string]: JsonValue };
const obj = (value: JsonValue | undefined): Obj | null => (value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null);
const str = (value: JsonValue | undefined): string | null => (typeof value === 'string' && value !== '' ? value : null);

/** A Discord `Message` object, as a `MESSAGE_CREATE` dispatch carries it. */
export type DiscordMessage = { id: string; channel_id: string } & { [key: string]: JsonValue };

/** Whether `value` looks like a Message (an object with string `id` and `channel_id`). */
export function isDiscordMessage(value: unknown): value is DiscordMessage {
  const m = obj(value as JsonValue);
  return m !== null && str(m.id) !== null && str(m.channel_id) !== null;
}

/** A Discord `User` as the envelope's sender: its global display name, else its username. */
function senderOf(author: Obj | null): MessageSender | null {
  const id = str(author?.id);
  if (!author || id === null) return null;
  const username = str(author.username);
  return { id, name: str(author.global_name) ?? username ?? id, username, bot: author.bot === true };
}

/**
 * A Message as the common envelope: `id` is its snowflake (the same when a resume replays it),
 * `chatId` its channel, `text` its content (null when empty: an embed, an attachment, or no
 * MessageContent intent), `at` its `timestamp`, `raw` the Message; `guildId` null in DMs.
 */
export function envelopeOf(message: DiscordMessage, now: number): DiscordBotMessage {
  const at = typeof message.timestamp === 'string' ? Date.parse(message.timestamp) : NaN;
  return {
    id: message.id,
    chatId: message.channel_id,
    guildId: str(message.guild_id),
    from: senderOf(obj(message.author)),
    text: str(message.content),
    at: Number.isFinite(at) && at > 0 ? at : now,
    raw: message,
  };
}
