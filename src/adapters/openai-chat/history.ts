import type { SessionKv } from '../contract.js';

/**
 * A conversation's history in the session's context KV (`ctx.kv`), so `manager.clear(id)`
 * empties it and no session reads another's. One key per conversation holds its messages, oldest
 * first, bounded by a window of messages and (estimated) tokens.
 */

/** `ctx.kv` key prefix of the histories: `openai:history:<conversation>`. */
export const HISTORY_PREFIX = 'openai:history:';

/** One stored message. `tokens` is the back-end's count when it gave one, else an estimate. */
export type HistoryMessage = { role: 'user' | 'assistant'; content: string; tokens: number; at: number };

/** The window a conversation is kept within. */
export interface HistoryWindow {
  messages: number;
  tokens: number | null;
}

/**
 * An estimate of a text's tokens: about four characters a token for English text (OpenAI's rule
 * of thumb), plus the few tokens each message costs in the prompt. Used only to bound the history.
 */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4) + 4;
}

/**
 * The newest messages that fit the window, starting with a user message (a window never opens
 * with a reply to a question it dropped). The last message is kept even when it alone is over the
 * token bound, when it is the user's: the new message is always sent.
 */
export function fitWindow(messages: readonly HistoryMessage[], window: HistoryWindow): HistoryMessage[] {
  let start = Math.max(0, messages.length - window.messages);
  if (window.tokens !== null) {
    let total = 0;
    for (let i = messages.length - 1; i >= start; i--) {
      total += messages[i]!.tokens;
      if (total > window.tokens) {
        start = Math.min(i + 1, messages.length - 1);
        break;
      }
    }
  }
  while (start < messages.length && messages[start]!.role !== 'user') start++;
  return messages.slice(start);
}

function isMessage(value: unknown): value is HistoryMessage {
  const m = value as Partial<HistoryMessage> | null;
  return (
    m !== null &&
    typeof m === 'object' &&
    (m.role === 'user' || m.role === 'assistant') &&
    typeof m.content === 'string' &&
    typeof m.tokens === 'number' &&
    typeof m.at === 'number'
  );
}

/** The stored history of `conversation` (empty when there is none or it is not a history). */
export async function readHistory(kv: SessionKv, conversation: string): Promise<HistoryMessage[]> {
  const stored = await kv.get(HISTORY_PREFIX + conversation);
  return Array.isArray(stored) ? stored.filter(isMessage) : [];
}

/** Stores `messages` as the history of `conversation`, fitted to the window. */
export async function writeHistory(kv: SessionKv, conversation: string, messages: readonly HistoryMessage[], window: HistoryWindow): Promise<void> {
  await kv.set(HISTORY_PREFIX + conversation, fitWindow(messages, window));
}

/**
 * Runs one task per key at a time, in call order: two sends to one conversation never read the
 * same history and overwrite each other's exchange.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const next = previous.then(task, task);
    const tail = next.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }
}
