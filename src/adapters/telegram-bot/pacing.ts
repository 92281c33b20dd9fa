import { AbortedError, RateLimitError } from '../../errors.js';
import { TokenBucket } from '../../net/token-bucket.js';
import type { Clock } from '../../types.js';

/** Chats remembered at most; idle ones are forgotten past it. */
const MAX_CHATS = 10_000;

/**
 * Telegram's own pace, kept by the adapter: at most `perChat` messages a second to one chat and
 * `perBot` a second over all chats (evenly spaced, on the session's clock). A send whose turn is
 * further away than `maxWaitMs` fails at once with `RateLimitError` and takes no turn.
 */
export class Pacing {
  readonly #clock: Clock;
  readonly #perChat: number;
  readonly #maxWaitMs: number;
  readonly #bot: TokenBucket;
  readonly #chats = new Map<string, TokenBucket>();

  constructor(clock: Clock, settings: { perChatPerSecond: number; perBotPerSecond: number; maxPacingWaitMs: number }) {
    this.#clock = clock;
    this.#perChat = settings.perChatPerSecond;
    this.#maxWaitMs = settings.maxPacingWaitMs;
    this.#bot = new TokenBucket({ perSecond: settings.perBotPerSecond, burst: 1 }, clock);
  }

  #chat(chatId: string): TokenBucket {
    let bucket = this.#chats.get(chatId);
    if (!bucket) {
      if (this.#chats.size >= MAX_CHATS) for (const [id, b] of this.#chats) if (b.delay() === 0) this.#chats.delete(id);
      this.#chats.set(chatId, (bucket = new TokenBucket({ perSecond: this.#perChat, burst: 1 }, this.#clock)));
    }
    return bucket;
  }

  /** Waits for the turn of a call to `chatId` (or of a call to no chat: the bot's pace only). */
  turn(sessionId: string, chatId: string | null, signal: AbortSignal): Promise<void> | null {
    const chat = chatId === null ? null : this.#chat(chatId);
    const chatWait = chat ? chat.reserve(this.#maxWaitMs) : 0;
    if (chatWait === null) {
      throw new RateLimitError(sessionId, chat!.delay(), this.#maxWaitMs, { reason: `chat ${chatId} takes ${this.#perChat} message(s) a second (perChatPerSecond)` });
    }
    const botWait = this.#bot.reserve(this.#maxWaitMs);
    if (botWait === null) {
      chat?.release();
      throw new RateLimitError(sessionId, this.#bot.delay(), this.#maxWaitMs, { reason: `the bot sends ${this.#bot.settings.perSecond} message(s) a second (perBotPerSecond)` });
    }
    const wait = Math.max(chatWait, botWait);
    if (wait === 0) return null;
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#clock.clearTimeout(handle);
        chat?.release();
        this.#bot.release();
        reject(signal.reason instanceof Error ? signal.reason : new AbortedError('The send was aborted while it waited for its turn.'));
      };
      const handle = this.#clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, wait);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
