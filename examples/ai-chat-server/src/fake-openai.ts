/**
 * The example's back-end when no real one is configured: the local fake OpenAI-compatible server
 * the adapter's own tests run against (test/adapters/openai-chat/fake-openai.ts; it speaks the
 * real request and response shapes, SSE included). Re-exported here so the example, its tests
 * and other examples import it from one place.
 */
export { echoReply, startFakeOpenAI, type ChatMessage, type FakeOpenAI, type FakeOpenAIOptions } from '../../../test/adapters/openai-chat/fake-openai.js';
import type { ChatMessage } from '../../../test/adapters/openai-chat/fake-openai.js';

/**
 * The demo assistant's reply: an echo that also names the uploaded files it was shown (in the
 * system prompt), so you can see that each session's assistant sees that session's files only.
 */
export function demoReply(messages: ChatMessage[]): string {
  const users = messages.filter((m) => m.role === 'user');
  const system = messages.find((m) => m.role === 'system')?.content ?? '';
  const files = [...system.matchAll(/^--- (.+?)(?: \(.*\))? ---$/gm)].map((m) => m[1]);
  const seen = files.length ? ` [files I can see: ${files.join(', ')}]` : '';
  return `Echo #${users.length}: ${users.at(-1)?.content ?? ''}${seen}`;
}
