import type { HealthReport, PlatformConnection } from '../contract.js';
import { ChatApi, OpenAIApiError, type OpenAIContext } from './api.js';
import { complete, type ChatMessage } from './completion.js';
import { estimateTokens, fitWindow, KeyedQueue, readHistory, writeHistory, type HistoryMessage, type HistoryWindow } from './history.js';
import type { OpenAIChatParsedAction, OpenAIChatReply } from './schemas.js';

/** Whether an error is "the connection is shut down" (nothing to report). */
const isAborted = (error: unknown): boolean => (error as { code?: unknown; name?: unknown } | null)?.code === 'ABORTED' || (error as Error | null)?.name === 'AbortError';

/**
 * One session's connection to an OpenAI-compatible back-end: `GET /models` to log in and as
 * health; `send` posts the conversation to `/chat/completions` (plain or streamed) and keeps the
 * exchange in the session's context KV.
 */
export class OpenAIChatConnection implements PlatformConnection<OpenAIChatParsedAction> {
  readonly #ctx: OpenAIContext;
  readonly #api: ChatApi;
  /** Aborted by stop(): ends requests in flight. */
  readonly #closed = new AbortController();
  readonly #signal: AbortSignal;
  readonly #queue = new KeyedQueue();
  readonly #window: HistoryWindow;
  #started = false;

  constructor(ctx: OpenAIContext) {
    this.#ctx = ctx;
    this.#signal = AbortSignal.any([ctx.signal, this.#closed.signal]);
    this.#api = new ChatApi(ctx, this.#signal);
    this.#window = { messages: ctx.config.historyMessages, tokens: ctx.config.historyTokens ?? null };
  }

  /** The key is refused: the session is `expired` (no restart loop), then the caller throws. */
  #refused(error: OpenAIApiError): void {
    this.#ctx.expired(`the back-end refused the API key (401 ${error.message})`);
  }

  async start(): Promise<void> {
    try {
      await this.#probe();
    } catch (error) {
      if (error instanceof OpenAIApiError && error.refusedKey) this.#refused(error);
      throw error;
    }
    if (this.#signal.aborted) throw new Error('stopped while starting');
    this.#started = true;
    this.#ctx.log.info(`connected to ${new URL(this.#ctx.config.baseUrl).host} (model ${this.#ctx.config.model})`);
  }

  /** `GET /models`: resolves with a detail when the model is not listed, throws when refused. A server without the endpoint (404) counts as reachable. */
  async #probe(): Promise<string | undefined> {
    let res: Response;
    try {
      res = await this.#api.request('models', { method: 'GET', probe: true });
    } catch (error) {
      if (error instanceof OpenAIApiError && error.status === 404) return 'the back-end has no /models endpoint';
      throw error;
    }
    const body = (await res.json().catch(() => null)) as { data?: { id?: unknown }[] } | null;
    const ids = Array.isArray(body?.data) ? body.data.map((m) => m?.id) : null;
    if (ids && ids.length > 0 && !ids.includes(this.#ctx.config.model)) return `the model ${this.#ctx.config.model} is not among the ${ids.length} the back-end lists`;
    return undefined;
  }

  async stop(): Promise<void> {
    this.#closed.abort(); // idempotent, and safe before start()
  }

  async health(): Promise<HealthReport> {
    if (!this.#started || this.#signal.aborted) return { status: 'unknown', detail: 'not connected' };
    const paused = this.#ctx.rateLimit.pausedMs();
    if (paused > 0) return { status: 'healthy', detail: `the back-end asked to slow down; outbound traffic paused for ${paused} ms` };
    try {
      const detail = await this.#probe();
      return detail ? { status: 'healthy', detail } : { status: 'healthy' };
    } catch (error) {
      if (error instanceof OpenAIApiError) {
        if (error.refusedKey) return { status: 'expired', detail: `the back-end refused the API key (401 ${error.message})` };
        if (error.status === 403) return { status: 'unauthorized', detail: error.message };
        if (error.status === 429) return { status: 'healthy', detail: error.message };
      }
      return { status: 'unhealthy', detail: error instanceof Error ? error.message : String(error) };
    }
  }

  async send(action: OpenAIChatParsedAction): Promise<OpenAIChatReply> {
    if (!this.#started || this.#signal.aborted) throw new Error('not connected; start the session first');
    if (!action.history) return this.#exchange(action, []);
    return this.#queue.run(action.conversation, async () => {
      return this.#exchange(action, await readHistory(this.#ctx.kv, action.conversation));
    });
  }

  /** One request with `history` before the new message; stores the exchange when `action.history`. */
  async #exchange(action: OpenAIChatParsedAction, history: HistoryMessage[]): Promise<OpenAIChatReply> {
    const ctx = this.#ctx;
    const question: HistoryMessage = { role: 'user', content: action.text, tokens: estimateTokens(action.text), at: ctx.clock.now() };
    const window = fitWindow([...history, question], this.#window);
    const system = action.system ?? ctx.config.systemPrompt;
    const messages: ChatMessage[] = [...(system ? [{ role: 'system' as const, content: system }] : []), ...window.map((m) => ({ role: m.role, content: m.content }))];
    let reply: OpenAIChatReply;
    try {
      reply = await complete(this.#api, ctx, { messages, stream: action.stream ?? ctx.config.stream, conversation: action.conversation });
    } catch (error) {
      if (error instanceof OpenAIApiError) {
        if (error.rateLimit) throw error.rateLimit; // 429: the caller gets RateLimitError (retryAfterMs)
        if (error.refusedKey) this.#refused(error);
      }
      throw error;
    }
    if (reply.usage) {
      ctx.stats.increment('promptTokens', reply.usage.promptTokens);
      ctx.stats.increment('completionTokens', reply.usage.completionTokens);
    }
    ctx.stats.increment('replies');
    if (action.history) {
      const answer: HistoryMessage = { role: 'assistant', content: reply.text, tokens: reply.usage?.completionTokens || estimateTokens(reply.text), at: ctx.clock.now() };
      await writeHistory(ctx.kv, action.conversation, [...window, answer], this.#window);
    }
    const from = { id: reply.model, name: reply.model, username: null, bot: true };
    try {
      await ctx.emitMessage({ id: reply.id, kind: 'reply', replyId: reply.id, index: 0, chatId: action.conversation, from, text: reply.text, at: ctx.clock.now(), raw: reply });
    } catch (error) {
      if (!isAborted(error)) throw error;
    }
    return reply;
  }
}
