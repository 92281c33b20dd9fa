import { EventSourceParserStream } from 'eventsource-parser/stream';
import type { JsonValue } from '../../types.js';
import { errorOf, OpenAIApiError, type ChatApi, type OpenAIContext } from './api.js';
import type { OpenAIChatReply } from './schemas.js';

/**
 * One `/chat/completions` request, plain or streamed (SSE, parsed by `eventsource-parser`): the
 * reply with its usage. A streamed reply emits each delta as a `session.message` as it arrives.
 */

export type ChatMessage = { role: 'system' | 'user' | 'assistant'; content: string };

export interface CompletionRequest {
  messages: ChatMessage[];
  stream: boolean;
  /** The conversation (the `chatId` of the emitted messages). */
  conversation: string;
}

const ENDPOINT = 'chat/completions';

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function usageOf(body: Record<string, unknown>): OpenAIChatReply['usage'] {
  const u = body.usage;
  if (!isRecord(u)) return null;
  const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v) : 0);
  const promptTokens = n(u.prompt_tokens);
  const completionTokens = n(u.completion_tokens);
  return { promptTokens, completionTokens, totalTokens: n(u.total_tokens) || promptTokens + completionTokens };
}

/** Sends the request; resolves with the reply. */
export async function complete(api: ChatApi, ctx: OpenAIContext, request: CompletionRequest): Promise<OpenAIChatReply> {
  const { config } = ctx;
  const body: Record<string, JsonValue> = { model: config.model, messages: request.messages };
  if (config.temperature !== undefined) body.temperature = config.temperature;
  if (config.maxTokens !== undefined) body.max_tokens = config.maxTokens;
  if (request.stream) {
    body.stream = true;
    if (config.streamUsage) body.stream_options = { include_usage: true };
  }
  const res = await api.request(ENDPOINT, { method: 'POST', body, stream: request.stream });
  const streamed = request.stream && (res.headers.get('content-type') ?? '').includes('text/event-stream');
  return streamed ? readStream(res, ctx, request.conversation) : readPlain(res, ctx.config.model, ctx.clock.now());
}

async function readPlain(res: Response, model: string, now: number): Promise<OpenAIChatReply> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new OpenAIApiError(ENDPOINT, res.status, 'the answer is not JSON');
  }
  const choice = isRecord(body) && Array.isArray(body.choices) ? (body.choices[0] as unknown) : undefined;
  const message = isRecord(choice) ? choice.message : undefined;
  if (!isRecord(body) || !isRecord(choice) || !isRecord(message)) throw new OpenAIApiError(ENDPOINT, res.status, 'the answer has no choices[0].message');
  return {
    text: typeof message.content === 'string' ? message.content : '',
    id: typeof body.id === 'string' && body.id ? body.id : `reply-${now.toString(36)}`,
    model: typeof body.model === 'string' ? body.model : model,
    finishReason: typeof choice.finish_reason === 'string' ? choice.finish_reason : null,
    usage: usageOf(body),
  };
}

/**
 * Reads `data: {chunk}` events until `data: [DONE]` (or the end of the body), emitting each
 * non-empty content delta in order. An `{ error }` event ends it with `OpenAIApiError`.
 */
async function readStream(res: Response, ctx: OpenAIContext, conversation: string): Promise<OpenAIChatReply> {
  if (!res.body) throw new OpenAIApiError(ENDPOINT, res.status, 'the stream has no body');
  const events = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  const reader = events.getReader();
  const reply: OpenAIChatReply = { text: '', id: '', model: ctx.config.model, finishReason: null, usage: null };
  let index = 0;
  let finished = false;
  try {
    for (;;) {
      const { value: event, done } = await readNext(reader, ctx);
      if (done || event.data.trim() === '[DONE]') {
        finished = !done || reply.finishReason !== null;
        break;
      }
      let chunk: unknown;
      try {
        chunk = JSON.parse(event.data);
      } catch {
        throw new OpenAIApiError(ENDPOINT, 0, `the stream sent an event that is not JSON: ${event.data.slice(0, 80)}`);
      }
      const error = errorOf(chunk);
      if (error) throw new OpenAIApiError(ENDPOINT, 0, error.message, error);
      if (!isRecord(chunk)) continue;
      if (typeof chunk.id === 'string' && chunk.id && !reply.id) reply.id = chunk.id;
      if (typeof chunk.model === 'string' && chunk.model) reply.model = chunk.model;
      reply.usage = usageOf(chunk) ?? reply.usage;
      const choice = Array.isArray(chunk.choices) ? (chunk.choices[0] as unknown) : undefined;
      if (!isRecord(choice)) continue;
      if (typeof choice.finish_reason === 'string') reply.finishReason = choice.finish_reason;
      const delta = isRecord(choice.delta) ? choice.delta.content : undefined;
      if (typeof delta !== 'string' || delta === '') continue;
      reply.text += delta;
      reply.id ||= `reply-${ctx.clock.now().toString(36)}`;
      // Emitted in order; the next waits until listeners handled this one.
      const from = { id: reply.model, name: reply.model, username: null, bot: true }; // the model as the back-end names it
      await ctx.emitMessage({ id: `${reply.id}:${index}`, kind: 'delta', replyId: reply.id, index, chatId: conversation, from, text: delta, at: ctx.clock.now(), raw: chunk as JsonValue });
      index++;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  // A body that ends without [DONE] or a finish reason was cut off: not a reply to keep.
  if (!finished) throw new OpenAIApiError(ENDPOINT, 0, 'the stream ended before the reply was complete');
  reply.id ||= `reply-${ctx.clock.now().toString(36)}`;
  return reply;
}

/** The next event; a body that breaks off (a reset, the time limit) is an `OpenAIApiError`, a stop stays what it is. */
async function readNext<T>(reader: ReadableStreamDefaultReader<T>, ctx: OpenAIContext): Promise<{ done: true; value?: undefined } | { done: false; value: T }> {
  try {
    return (await reader.read()) as { done: true; value?: undefined } | { done: false; value: T };
  } catch (error) {
    if (ctx.signal.aborted || error instanceof OpenAIApiError) throw error;
    const detail = error instanceof Error ? `${error.name === 'TimeoutError' ? 'the time limit (requestTimeoutMs) passed' : error.message}` : String(error);
    throw new OpenAIApiError(ENDPOINT, 0, `the stream broke off: ${detail}`, { type: null, code: null });
  }
}
