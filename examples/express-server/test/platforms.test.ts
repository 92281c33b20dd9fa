import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeDiscord, type FakeDiscord } from '../../../test/adapters/discord-bot/fake-discord.js';
import { startFakeOpenAI, type FakeOpenAI } from '../../../test/adapters/openai-chat/fake-openai.js';
import { openEvents, startTestServer, waitForState, type Reply, type TestServer } from './helpers.js';

/**
 * The example server's other built-in platforms over HTTP, each against its local fake (the
 * session's `config.apiRoot` / `config.baseUrl` points at it): `discord-bot` from a bot token,
 * `openai-chat` from a base URL, a model and an API key.
 */
let t: TestServer;
let discord: FakeDiscord;
let openai: FakeOpenAI;
const seen: string[] = [];

async function call(...args: Parameters<TestServer['call']>): Promise<Reply> {
  const r = await t.call(...args);
  seen.push(r.text);
  return r;
}

beforeAll(async () => {
  discord = await startFakeDiscord();
  openai = await startFakeOpenAI();
  t = await startTestServer({ manager: { health: { intervalMs: 60_000 } } });
});

afterAll(async () => {
  await t?.close();
  await discord?.close();
  await openai?.close();
});

describe('discord-bot', () => {
  it('runs a bot from its token: gateway messages live over SSE, replies over REST', async () => {
    const bot = discord.bot();
    const bad = await call('POST', '/api/v1/sessions', { body: { id: 'dc-bad', platform: 'discord-bot', credentials: { token: `Bot ${bot.token}` } } });
    expect(bad.status).toBe(400);
    expect(bad.json.errors.map((e: { path: string }) => e.path)).toEqual(['body.credentials.token']);

    const created = await call('POST', '/api/v1/sessions', { body: { id: 'dc-1', platform: 'discord-bot', credentials: { token: bot.token }, config: { apiRoot: discord.url } } });
    expect(created.status).toBe(201);
    const events = await openEvents(`${t.url}/api/v1/events?key=${t.adminKey}`);
    try {
      await call('POST', '/api/v1/sessions/dc-1/start');
      await waitForState(t, 'dc-1', ['ready']);
      bot.pushMessage('41771983423143937', 'hello from Discord');
      const all = await events.until((evs) => evs.some((e) => e.event === 'session.message' && e.data.id === 'dc-1'));
      expect(all.find((e) => e.event === 'session.message' && e.data.id === 'dc-1')!.data.message).toMatchObject({ chatId: '41771983423143937', text: 'hello from Discord' });
      const reply = await call('POST', '/api/v1/sessions/dc-1/messages', { body: { method: 'createMessage', channel_id: '41771983423143937', content: 'hi back' } });
      expect(reply.status).toBe(200);
      expect(bot.calls.some((c) => c.verb === 'POST' && c.path === '/channels/41771983423143937/messages')).toBe(true);
    } finally {
      events.close();
    }
    await call('POST', '/api/v1/sessions/dc-1/stop');
    expect(seen.join('\n')).not.toContain(bot.token);
  });
});

describe('openai-chat', () => {
  it('answers a message through an OpenAI-compatible back-end by base URL', async () => {
    const key = openai.key();
    const bad = await call('POST', '/api/v1/sessions', { body: { id: 'ai-bad', platform: 'openai-chat', credentials: { apiKey: key }, config: { baseUrl: 'file:///etc', model: 'fake-gpt' } } });
    expect(bad.status).toBe(400);
    expect(bad.json.errors.map((e: { path: string }) => e.path)).toEqual(['body.config.baseUrl']);

    const created = await call('POST', '/api/v1/sessions', {
      body: { id: 'ai-1', platform: 'openai-chat', credentials: { apiKey: key }, config: { baseUrl: openai.url, model: 'fake-gpt', systemPrompt: 'Be brief.' } },
    });
    expect(created.status).toBe(201);
    await call('POST', '/api/v1/sessions/ai-1/start');
    await waitForState(t, 'ai-1', ['ready']);
    const reply = await call('POST', '/api/v1/sessions/ai-1/messages', { body: { text: 'What is a session?' } });
    expect(reply.status).toBe(200);
    expect(reply.json.result).toMatchObject({ text: 'Echo #1: What is a session?', model: 'fake-gpt' });
    expect(openai.completions().at(-1)!.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What is a session?' },
    ]);
    await call('POST', '/api/v1/sessions/ai-1/stop');
    expect(seen.join('\n')).not.toContain(key);
  });
});
