/**
 * The AI chat server's command line: `npm run example:ai-chat` runs this file.
 *
 *   node --import tsx examples/ai-chat-server/src/main.ts [--port 8090] [--host 127.0.0.1]
 *
 * The back-end comes from the environment: OPENAI_BASE_URL (e.g. https://api.openai.com/v1 or
 * http://127.0.0.1:11434/v1), OPENAI_API_KEY (optional), OPENAI_MODEL (default gpt-4o-mini),
 * SYSTEM_PROMPT, SESSION_TIMEOUT (idle minutes, default 60). Without OPENAI_BASE_URL it starts a
 * local fake OpenAI-compatible back-end, so it runs anywhere with no key.
 * It prints `listening on http://host:port` once it serves (tests read the port from that line).
 */
import { parseArgs } from 'node:util';
import { startChatServer } from './app.js';
import { demoReply, startFakeOpenAI } from './fake-openai.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string' }, help: { type: 'boolean' } } });
if (values.help) {
  process.stdout.write('Usage: npm run example:ai-chat -- [--port 8090] [--host 127.0.0.1]\nEnvironment: OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL, SYSTEM_PROMPT, SESSION_TIMEOUT (minutes)\n');
  process.exit(0);
}
const port = Number(values.port ?? process.env.PORT ?? 8090);
const minutes = Number(process.env.SESSION_TIMEOUT ?? 60);
if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`--port must be 0-65535; got ${values.port}`);
if (!Number.isFinite(minutes) || minutes <= 0) throw new Error(`SESSION_TIMEOUT must be a positive number of minutes; got ${process.env.SESSION_TIMEOUT}`);

const realBase = process.env.OPENAI_BASE_URL;
const fake = realBase ? null : await startFakeOpenAI({ requireKey: false });
if (fake) {
  fake.respond = demoReply;
  fake.chunkDelayMs = 30; // so streaming is visible
  process.stdout.write(`no OPENAI_BASE_URL: using a local fake OpenAI-compatible back-end at ${fake.url}\n`);
}
const server = await startChatServer({
  backend: {
    baseUrl: realBase ?? fake!.url,
    model: realBase ? (process.env.OPENAI_MODEL ?? 'gpt-4o-mini') : 'fake-gpt',
    apiKey: realBase ? process.env.OPENAI_API_KEY || undefined : undefined,
    systemPrompt: process.env.SYSTEM_PROMPT ?? 'You are a helpful assistant.',
  },
  idleTimeoutMs: Math.round(minutes * 60_000),
  port,
  host: values.host ?? process.env.HOST ?? '127.0.0.1',
});
process.stdout.write(`listening on ${server.url}\n`);

let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    void server
      .close()
      .then(() => fake?.close())
      .finally(() => process.exit(0));
  });
}
