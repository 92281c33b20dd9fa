import { z } from 'zod';
import { networkConfigSchema } from '../../net/config.js';
import { messageEnvelopeSchema } from '../message.js';

/**
 * What an API key may look like: visible ASCII, no spaces (it goes into an `Authorization`
 * header as it is). OpenAI's `sk-…`, Groq's `gsk_…`, OpenRouter's `sk-or-…` and the placeholder
 * keys of local servers all fit.
 */
export const OPENAI_KEY_PATTERN = /^[\x21-\x7E]{1,1024}$/;

/**
 * A session's credentials: `{ apiKey }`, sent as `Authorization: Bearer <apiKey>` (encrypted at
 * rest, never echoed). Leave the credentials out altogether for a back-end that wants no key
 * (a local Ollama or vLLM).
 */
export const openaiChatCredentials = z
  .strictObject({
    apiKey: z
      .string('must be the API key, a string')
      .refine((k) => !/^bearer\s/i.test(k), 'must be the key alone, without "Bearer "')
      .refine((k) => OPENAI_KEY_PATTERN.test(k), 'must be an API key: 1-1024 visible ASCII characters, no spaces or line breaks'),
  })
  .optional();

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1' });

/**
 * A session's config. Unknown keys are refused (a typo never silently falls back to a default).
 * `proxy` and `rateLimit` are the session's network settings, applied to every request.
 */
export const openaiChatConfig = z.strictObject({
  ...networkConfigSchema.shape,
  /**
   * The API root, `/v1` included: `https://api.openai.com/v1`, `https://api.groq.com/openai/v1`,
   * `https://openrouter.ai/api/v1`, `http://127.0.0.1:11434/v1` (Ollama), `http://127.0.0.1:8000/v1` (vLLM).
   */
  baseUrl: httpUrl.default('https://api.openai.com/v1'),
  /** The model every request of the session names, e.g. `gpt-4o-mini` or `llama3.1:8b`. */
  model: z.string('must be the model name, e.g. gpt-4o-mini').min(1, 'must be the model name, e.g. gpt-4o-mini').max(256),
  /** Sent first, as the `system` message, with every request (not stored in the history). */
  systemPrompt: z.string().max(100_000).optional(),
  /** Sampling temperature (0 to 2); without it, the back-end's default. */
  temperature: z.number().min(0).max(2).optional(),
  /** Most tokens a reply may have (`max_tokens`); without it, the back-end's default. */
  maxTokens: z.number().int().positive().max(1_000_000).optional(),
  /** Most messages of a conversation kept and sent (the new one included); the oldest go first. */
  historyMessages: z.number().int().min(1).max(10_000).default(40),
  /** Most (estimated) tokens of history kept and sent, the new message included; without it, no token bound. */
  historyTokens: z.number().int().positive().max(10_000_000).optional(),
  /** Stream replies (SSE) by default, emitting each delta as a `session.message`; a send may say otherwise. */
  stream: z.boolean().default(false),
  /** Ask for token usage at the end of a stream (`stream_options.include_usage`); turn off for a back-end that refuses it. */
  streamUsage: z.boolean().default(true),
  /** Time limit of each request, a whole streamed reply included. */
  requestTimeoutMs: z.number().int().min(100).max(3_600_000).default(120_000),
});

const conversationId = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1-128 of A-Z a-z 0-9 _ . : -');

/**
 * What `manager.send` takes: a user message. The reply comes back as the result; the exchange is
 * added to the conversation's history (unless `history: false`).
 */
export const openaiChatAction = z.strictObject({
  /** The user's message. */
  text: z.string('must be the message text').min(1, 'must not be empty').max(1_000_000),
  /** Which conversation of the session (each has its own history). Default `default`. */
  conversation: conversationId.default('default'),
  /** `false`: a one-off exchange, sent without the history and not added to it. */
  history: z.boolean().default(true),
  /** Stream this reply (overrides the config's `stream`). */
  stream: z.boolean().optional(),
  /** A system prompt for this request only (overrides the config's `systemPrompt`). */
  system: z.string().max(100_000).optional(),
});

/**
 * Inbound messages: the common envelope plus `kind` — `delta` (a piece of a streamed reply, in
 * order: `index` 0, 1, 2 …) or `reply` (the whole reply, once it is complete) — and `replyId`, the
 * back-end's completion id that ties them together. `chatId` is the conversation, `from` the model.
 */
export const openaiChatMessage = messageEnvelopeSchema.extend({
  kind: z.enum(['delta', 'reply']),
  replyId: z.string().min(1),
  index: z.number().int().nonnegative(),
});

export type OpenAIChatCredentials = z.output<typeof openaiChatCredentials>;
export type OpenAIChatConfig = z.output<typeof openaiChatConfig>;
export type OpenAIChatAction = z.input<typeof openaiChatAction>;
export type OpenAIChatParsedAction = z.output<typeof openaiChatAction>;
export type OpenAIChatMessage = z.output<typeof openaiChatMessage>;

/** What `send()` returns. */
export type OpenAIChatReply = {
  /** The reply's text. */
  text: string;
  /** The back-end's completion id. */
  id: string;
  /** The model that answered (as the back-end names it). */
  model: string;
  /** `stop`, `length`, `content_filter` … or null when the back-end did not say. */
  finishReason: string | null;
  /** Token usage as the back-end reported it, or null (a stream without `streamUsage`). */
  usage: { promptTokens: number; completionTokens: number; totalTokens: number } | null;
};
