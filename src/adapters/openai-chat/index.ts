/**
 * `multisession/adapters/openai-chat`: any OpenAI-compatible `/v1/chat/completions` back-end
 * (OpenAI, Groq, OpenRouter, vLLM, Ollama …) by base URL, over the session's own `ctx.fetch`
 * (undici, so each session's proxy and rate limit apply). Nothing is loaded until this module is
 * imported.
 *
 * @example
 * ```ts
 * import { SessionManager } from 'multisession';
 * import { openaiChat } from 'multisession/adapters/openai-chat';
 *
 * const manager = new SessionManager({ adapters: [openaiChat()] });
 * await manager.open();
 * await manager.create({
 *   id: 'support-assistant',
 *   platform: 'openai-chat',
 *   credentials: { apiKey: process.env.OPENAI_API_KEY },
 *   config: { model: 'gpt-4o-mini', systemPrompt: 'You answer in one sentence.' },
 * });
 * await manager.start('support-assistant');
 * const reply = await manager.send('support-assistant', { text: 'What is a session?' });
 * ```
 */
import { z } from 'zod';
import { defineAdapter, type Adapter } from '../contract.js';
import { fromZodError } from '../../validation.js';
import { OpenAIChatConnection } from './connection.js';
import { openaiChatAction, openaiChatConfig, openaiChatCredentials, openaiChatMessage } from './schemas.js';

export { OpenAIApiError } from './api.js';
export { HISTORY_PREFIX as OPENAI_HISTORY_PREFIX, estimateTokens, type HistoryMessage as OpenAIHistoryMessage } from './history.js';
export {
  OPENAI_KEY_PATTERN,
  openaiChatAction,
  openaiChatConfig,
  openaiChatCredentials,
  openaiChatMessage,
  type OpenAIChatAction,
  type OpenAIChatConfig,
  type OpenAIChatCredentials,
  type OpenAIChatMessage,
  type OpenAIChatReply,
} from './schemas.js';

/** The OpenAI-compatible chat adapter. */
export type OpenAIChatAdapter = Adapter<typeof openaiChatCredentials, typeof openaiChatConfig, typeof openaiChatAction, typeof openaiChatMessage>;

const optionsSchema = z.strictObject({
  /** The platform name sessions use. Default `openai-chat`. */
  name: z.string().optional(),
});

/** Options of {@link openaiChat}. */
export type OpenAIChatOptions = z.input<typeof optionsSchema>;

/**
 * Makes the OpenAI-compatible chat adapter. Credentials `{ apiKey }` (or none, for a back-end that
 * wants no key); config, actions and inbound messages as `openaiChatConfig`, `openaiChatAction`
 * and `openaiChatMessage` describe them.
 */
export function openaiChat(options: OpenAIChatOptions = {}): OpenAIChatAdapter {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw fromZodError('openaiChat options', parsed.error);
  return defineAdapter({
    name: parsed.data.name ?? 'openai-chat',
    description: 'OpenAI-compatible chat back-ends (OpenAI, Groq, OpenRouter, vLLM, Ollama): per-session model and prompt, history in the session, streamed replies.',
    credentials: openaiChatCredentials,
    config: openaiChatConfig,
    action: openaiChatAction,
    message: openaiChatMessage,
    connect: (ctx) => new OpenAIChatConnection(ctx),
  });
}
