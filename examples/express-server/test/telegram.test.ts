import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBotApi, type FakeBotApi } from '../../../test/adapters/telegram-bot/fake-bot-api.js';
import { TELEGRAM_WEBHOOK_PATH } from '../src/server.js';
import { openEvents, startTestServer, waitForState, type Reply, type TestServer } from './helpers.js';

/**
 * The example server's built-in `telegram-bot` adapter, over HTTP, against the local fake Bot API
 * (each session's `config.apiRoot` points at it): what a user with a bot token does from the web
 * page — create with the token, start, receive messages live, reply — and the webhook route.
 */
let t: TestServer;
let api: FakeBotApi;
/** Every body the server answered, to check no bot token ever leaks. */
const seen: string[] = [];

async function call(...args: Parameters<TestServer['call']>): Promise<Reply> {
  const r = await t.call(...args);
  seen.push(r.text);
  return r;
}

beforeAll(async () => {
  api = await startFakeBotApi();
  t = await startTestServer({ manager: { health: { intervalMs: 60_000 } } });
});

afterAll(async () => {
  await t?.close();
  await api?.close();
});

function expectValidation(r: Reply, path: string): void {
  expect(r.status).toBe(400);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.json.code).toBe('VALIDATION');
  expect(r.json.errors.map((e: { path: string }) => e.path)).toContain(path);
}

describe('the telegram-bot adapter in the example server', () => {
  it('is listed beside demo with a token credential the create form renders', async () => {
    const adapters = (await call('GET', '/api/v1/adapters')).json as { name: string; credentialsSchema: any; configSchema: any }[];
    expect(adapters.map((a) => a.name)).toEqual(['demo', 'telegram-bot', 'discord-bot', 'openai-chat']);
    const telegram = adapters[1]!;
    expect(telegram.credentialsSchema.required).toEqual(['token']);
    expect(telegram.configSchema.properties.apiRoot.default).toBe('https://api.telegram.org');
  });

  it('refuses a malformed token, an unknown config key and a non-http(s) apiRoot before any request', async () => {
    const before = api.requests;
    const badToken = await call('POST', '/api/v1/sessions', { body: { id: 'tg-bad', platform: 'telegram-bot', credentials: { token: 'not-a-token' } } });
    expectValidation(badToken, 'body.credentials.token');
    expect(badToken.text).not.toContain('not-a-token');
    const typo = await call('POST', '/api/v1/sessions', { body: { id: 'tg-bad', platform: 'telegram-bot', credentials: { token: api.bot().token }, config: { pollTimout: 3 } } });
    expectValidation(typo, 'body.config');
    const ftp = await call('POST', '/api/v1/sessions', { body: { id: 'tg-bad', platform: 'telegram-bot', credentials: { token: api.bot().token }, config: { apiRoot: 'ftp://127.0.0.1' } } });
    expectValidation(ftp, 'body.config.apiRoot');
    expect((await call('GET', '/api/v1/sessions/tg-bad')).status).toBe(404);
    expect(api.requests).toBe(before);
  });

  it('runs a bot from its token: long polling, messages live over SSE, replies, statistics', async () => {
    const bot = api.bot();
    const created = await call('POST', '/api/v1/sessions', {
      body: { id: 'tg-1', platform: 'telegram-bot', credentials: { token: bot.token }, config: { apiRoot: api.url, pollTimeoutSec: 1 } },
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ id: 'tg-1', platform: 'telegram-bot', hasCredentials: true });
    const events = await openEvents(`${t.url}/api/v1/events?key=${t.adminKey}`);
    try {
      expect((await call('POST', '/api/v1/sessions/tg-1/start')).status).toBe(200);
      await waitForState(t, 'tg-1', ['ready']);
      expect(bot.callsOf('getMe').length).toBeGreaterThan(0);

      bot.pushMessage(42, 'hello from Telegram');
      const all = await events.until((evs) => evs.some((e) => e.event === 'session.message'));
      const inbound = all.find((e) => e.event === 'session.message')!.data;
      expect(inbound).toMatchObject({ id: 'tg-1', message: { chatId: '42', text: 'hello from Telegram', kind: 'message' } });

      const reply = await call('POST', '/api/v1/sessions/tg-1/messages', { body: { method: 'sendMessage', chat_id: 42, text: 'hi back' } });
      expect(reply.status).toBe(200);
      expect(reply.json.result).toMatchObject({ chat: { id: 42 }, text: 'hi back' });
      expect(bot.callsOf('sendMessage').map((c) => c.params)).toEqual([{ chat_id: 42, text: 'hi back' }]);
      expectValidation(await call('POST', '/api/v1/sessions/tg-1/messages', { body: { method: 'sendMesage', chat_id: 42, text: 'x' } }), 'body.action.method');

      const stats = (await call('GET', '/api/v1/sessions/tg-1/statistics')).json;
      expect(stats).toMatchObject({ messagesIn: 1, messagesOut: 1 });

      // Telegram revokes the token: the session ends expired (no restart loop).
      bot.revoke();
      await waitForState(t, 'tg-1', ['expired']);
    } finally {
      events.close();
    }
    expect(seen.join('\n')).not.toContain(bot.token);
  });

  it(`serves webhook-mode sessions at ${TELEGRAM_WEBHOOK_PATH}, checking Telegram's secret token`, async () => {
    const bot = api.bot();
    const created = await call('POST', '/api/v1/sessions', {
      body: { id: 'tg-hook', platform: 'telegram-bot', credentials: { token: bot.token }, config: { apiRoot: api.url, mode: 'webhook', webhookUrl: `${t.url}${TELEGRAM_WEBHOOK_PATH}` } },
    });
    expect(created.status).toBe(201);
    const events = await openEvents(`${t.url}/api/v1/events?key=${t.adminKey}`);
    try {
      await call('POST', '/api/v1/sessions/tg-hook/start');
      await waitForState(t, 'tg-hook', ['ready']);
      expect(bot.webhook).toMatchObject({ url: `${t.url}${TELEGRAM_WEBHOOK_PATH}`, secret: expect.any(String) });

      const forged = await fetch(`${t.url}${TELEGRAM_WEBHOOK_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': 'guessed' },
        body: JSON.stringify({ update_id: 1, message: { message_id: 1, date: 0, chat: { id: 5, type: 'private' }, text: 'forged' } }),
      });
      expect(forged.status).toBeGreaterThanOrEqual(400);

      const update = bot.pushMessage(7, 'through the webhook');
      const all = await events.until((evs) => evs.some((e) => e.event === 'session.message' && e.data.id === 'tg-hook'));
      const messages = all.filter((e) => e.event === 'session.message' && e.data.id === 'tg-hook').map((e) => e.data.message.text);
      expect(messages).toEqual(['through the webhook']);
      expect(bot.webhookDeliveries).toContainEqual({ updateId: update.update_id, status: 200 });
    } finally {
      events.close();
    }
    await call('POST', '/api/v1/sessions/tg-hook/stop');
  });
});
