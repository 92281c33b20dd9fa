import { z } from 'zod';
import type { JsonValue } from '../types.js';

/**
 * Inbound messages: the one envelope every built-in adapter emits, so an app can handle messages
 * from every platform alike, and the typed `session.message` event.
 */

/** Who sent an inbound message. */
export type MessageSender = {
  /** The sender's id on the platform, as a string. */
  id: string;
  /** A display name (first and last name, a nickname …). */
  name: string;
  /** The sender's handle (`@username` without the `@`), if the platform has one. */
  username: string | null;
  /** The sender is a bot or another automated account. */
  bot: boolean;
};

/**
 * The common envelope of an inbound message (`ctx.emitMessage`, `session.message` with direction
 * `in`). An adapter may add fields of its own (declare them with `messageEnvelopeSchema.extend`).
 *
 * @example
 * ```ts
 * manager.on('session.message', async (e) => {
 *   if (e.direction !== 'in' || !isInboundMessage(e.message)) return;
 *   await inbox.save({ session: e.id, key: e.message.id, chat: e.message.chatId, text: e.message.text });
 * });
 * ```
 */
export type InboundMessage<TRaw extends JsonValue = JsonValue> = {
  /**
   * The message's id, unique within the session and the same when the platform delivers it again
   * (delivery is at least once): deduplicate by it.
   */
  id: string;
  /** The conversation (chat, channel, thread) to answer in, or null when there is none. */
  chatId: string | null;
  from: MessageSender | null;
  /** The text (or a media caption, a button's data …), or null when there is none. */
  text: string | null;
  /** When it was sent, in ms since the epoch (when it arrived, if the platform does not say). */
  at: number;
  /** The platform's own object, as it came. */
  raw: TRaw;
};

const senderSchema = z.object({
  id: z.string().min(1),
  name: z.string(),
  username: z.string().nullable(),
  bot: z.boolean(),
});

/**
 * The zod schema of {@link InboundMessage}. Give it (or an extension) as an adapter's `message`
 * schema: `ctx.emitMessage` then takes only such messages and `session.message` is typed by it.
 */
export const messageEnvelopeSchema = z.object({
  id: z.string().min(1, 'must be the message id'),
  chatId: z.string().min(1).nullable(),
  from: senderSchema.nullable(),
  text: z.string().nullable(),
  at: z.number().int().nonnegative(),
  raw: z.json(),
});

/** Whether `value` has the shape of the common envelope (without checking `raw` deeply). */
export function isInboundMessage(value: unknown): value is InboundMessage {
  return messageEnvelopeSchema.omit({ raw: true }).safeParse(value).success && (value as { raw?: unknown }).raw !== undefined;
}

/** The payload of `session.message`; `TMessage` is the adapter's message type for inbound ones. */
export type SessionMessageEvent<TMessage = JsonValue> = {
  /** The session's id. */
  id: string;
  /** The session's platform (its adapter's name). */
  platform: string;
  direction: 'in' | 'out';
  /** Inbound: what the adapter emitted. Outbound: the action given to `manager.send`. */
  message: TMessage;
  at: number;
};

/** The type of the messages an adapter emits (its `message` schema's output), e.g. `AdapterMessage<typeof telegram>`. */
export type AdapterMessage<A> = A extends { readonly message: infer S extends z.ZodType } ? z.output<S> : JsonValue;

/**
 * Narrows a `session.message` event to an inbound message of `adapter`'s platform, typed by its
 * `message` schema.
 *
 * @example
 * ```ts
 * manager.on('session.message', async (e) => {
 *   if (isMessageFrom(telegram, e)) await reply(e.id, e.message.chatId, e.message.text);
 * });
 * ```
 */
export function isMessageFrom<A extends { readonly name: string; readonly message: z.ZodType }>(
  adapter: A,
  event: SessionMessageEvent<unknown>,
): event is SessionMessageEvent<AdapterMessage<A>> & { direction: 'in' } {
  return event.direction === 'in' && event.platform === adapter.name;
}
