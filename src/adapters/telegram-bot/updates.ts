import type { JsonValue } from '../../types.js';
import type { MessageSender } from '../message.js';
import type { TelegramBotMessage } from './schemas.js';

/** A Bot API `Update`: its `update_id` and one field named after its kind. */
export type TelegramUpdate = { update_id: number } & { [kind: string]: JsonValue };

type Obj = { [key: string]: JsonValue };
const obj = (value: JsonValue | undefined): Obj | null => (value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null);
const str = (value: JsonValue | undefined): string | null => (typeof value === 'string' ? value : null);
const idOf = (value: JsonValue | undefined): string | null => (typeof value === 'number' || typeof value === 'string' ? String(value) : null);

/** Whether `value` looks like an Update (an object with a whole, non-negative `update_id`). */
export function isUpdate(value: unknown): value is TelegramUpdate {
  const id = (value as { update_id?: unknown } | null)?.update_id;
  return obj(value as JsonValue) !== null && typeof id === 'number' && Number.isSafeInteger(id) && id >= 0;
}

/** A Telegram `User` (or, for channel posts, the `Chat` that posted) as the envelope's sender. */
function senderOf(user: Obj | null, chat: Obj | null): MessageSender | null {
  if (user) {
    const id = idOf(user.id);
    if (id === null) return null;
    const name = [str(user.first_name), str(user.last_name)].filter(Boolean).join(' ') || str(user.username) || id;
    return { id, name, username: str(user.username), bot: user.is_bot === true };
  }
  if (chat) {
    const id = idOf(chat.id);
    if (id === null) return null;
    return { id, name: str(chat.title) ?? str(chat.username) ?? id, username: str(chat.username), bot: false };
  }
  return null;
}

/**
 * An Update as the common envelope: `id` is the `update_id` (the same when Telegram delivers it
 * again), `kind` the update type, `raw` the Update itself. The chat, sender, text and date come
 * from whatever the update carries: a message (text or caption), a callback query (its data,
 * in the chat of its message), an inline query, a member change …; `at` falls back to `now`.
 */
export function envelopeOf(update: TelegramUpdate, now: number): TelegramBotMessage {
  const kind = Object.keys(update).find((k) => k !== 'update_id') ?? 'unknown';
  const body = obj(update[kind]) ?? {};
  const message = obj(body.message); // a callback query's message
  const chat = obj(body.chat) ?? obj(message?.chat);
  const text = str(body.text) ?? str(body.caption) ?? str(body.data) ?? str(body.query) ?? null;
  const date = typeof body.date === 'number' ? body.date : typeof message?.date === 'number' ? message.date : null;
  const chatId = idOf(chat?.id);
  return {
    id: String(update.update_id),
    kind,
    chatId: chatId === '' ? null : chatId,
    from: senderOf(obj(body.from) ?? obj(body.user), obj(body.sender_chat)),
    text,
    at: date !== null && date > 0 ? Math.round(date * 1_000) : now,
    raw: update,
  };
}
