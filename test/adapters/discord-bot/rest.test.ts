import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AdapterError, RateLimitError, type SessionManager } from 'multisession';
import { DiscordApiError } from 'multisession/adapters/discord-bot';
import { startHttpProxy, startSocksProxy } from '../../net/servers.js';
import { startFakeDiscord } from './fake-discord.js';
import { CHANNEL, OTHER_CHANNEL, quiet, setup, started, until, watch, within, type Setup } from './helpers.js';

/**
 * The discord-bot REST side under a real SessionManager (manual clock) against the local fake
 * Discord: the typed sends, per-route rate-limit buckets, 429s per route and global, 401 and 5xx.
 */
const api = await startFakeDiscord();
afterAll(() => api.close());
let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});
async function make(config: Record<string, unknown> = {}, options: Parameters<typeof setup>[2] = {}): Promise<Setup> {
  const s = await setup(api, config, options);
  open.push(s.m);
  await started(s);
  return s;
}
const messages = (s: Setup, channel = CHANNEL) => s.bot.callsOf('POST', new RegExp(`^/channels/${channel}/messages$`));

describe('sends', () => {
  it('each method is its REST call, with Discord’s answer returned (null for 204)', async () => {
    const s = await make();
    const created = (await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'hi', message_reference: { message_id: '41771983423143999' } })) as { id: string; content: string };
    expect(created).toMatchObject({ channel_id: CHANNEL, content: 'hi', author: { id: s.bot.userId, bot: true } });
    await s.m.send('bot', { method: 'editMessage', channel_id: CHANNEL, message_id: created.id, content: 'edited' });
    expect(await s.m.send('bot', { method: 'createReaction', channel_id: CHANNEL, message_id: created.id, emoji: '👍' })).toBeNull();
    expect(await s.m.send('bot', { method: 'triggerTyping', channel_id: CHANNEL })).toBeNull();
    expect(await s.m.send('bot', { method: 'deleteMessage', channel_id: CHANNEL, message_id: created.id })).toBeNull();
    expect(await s.m.send('bot', { method: 'createDM', recipient_id: '80351110224678912' })).toMatchObject({ type: 1 });
    expect(s.bot.calls.slice(1).map((c) => [c.verb, c.path, c.body])).toEqual([
      ['POST', `/channels/${CHANNEL}/messages`, { content: 'hi', message_reference: { message_id: '41771983423143999' } }],
      ['PATCH', `/channels/${CHANNEL}/messages/${created.id}`, { content: 'edited' }],
      ['PUT', `/channels/${CHANNEL}/messages/${created.id}/reactions/${encodeURIComponent('👍')}/@me`, null],
      ['POST', `/channels/${CHANNEL}/typing`, null],
      ['DELETE', `/channels/${CHANNEL}/messages/${created.id}`, null],
      ['POST', '/users/@me/channels', { recipient_id: '80351110224678912' }],
    ]);
  });

  it("goes through the session's own proxy: REST by ctx.fetch, the gateway's WebSocket through a CONNECT tunnel", async () => {
    const proxy = await startHttpProxy();
    try {
      const s = await make({ proxy: `http://127.0.0.1:${proxy.port}` });
      await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'through the proxy' });
      const fake = new URL(api.url).host;
      expect(proxy.events).toEqual([
        { kind: 'absolute', target: fake, allowed: true }, // GET /gateway/bot
        { kind: 'connect', target: fake, allowed: true }, // the gateway
        { kind: 'absolute', target: fake, allowed: true }, // the send
      ]);
      expect(messages(s)).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });

  it('a socks5h proxy carries REST and the gateway alike', async () => {
    const proxy = await startSocksProxy();
    try {
      const s = await make({ proxy: `socks5h://127.0.0.1:${proxy.port}` });
      expect(proxy.events).toHaveLength(2); // by now: GET /gateway/bot's connection, and the gateway's
      await s.m.send('bot', { method: 'triggerTyping', channel_id: CHANNEL });
      const port = Number(new URL(api.url).port);
      expect(proxy.events.every((e) => e.version === 5 && e.host === '127.0.0.1' && e.port === port && e.allowed)).toBe(true);
      expect(s.bot.callsOf('POST', /typing$/)).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });
});

describe('rate limits', () => {
  it('per-route buckets: a channel out of requests waits for its reset on the session clock; another channel does not', async () => {
    const s = await make();
    s.bot.limits = { limit: 2, resetAfter: 3 };
    await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'one' });
    await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'two' }); // answered with Remaining: 0, Reset-After: 3
    const third = watch(s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'three' }));
    await s.m.send('bot', { method: 'editMessage', channel_id: OTHER_CHANNEL, message_id: '41771983423143999', content: 'elsewhere' }); // same bucket hash, other channel
    await quiet();
    expect(third.done).toBe(false);
    expect(messages(s)).toHaveLength(2);
    await s.clock.advance(2_999);
    await quiet();
    expect(messages(s)).toHaveLength(2);
    s.bot.resetBuckets(); // Discord's window has passed
    await s.clock.advance(1);
    await within(third.promise, 'the third send');
    expect(messages(s)).toHaveLength(3);
    expect(s.bot.violations).toBe(0);
  });

  it('a bucket reset further away than maxRateLimitWaitMs: RateLimitError at once, nothing sent', async () => {
    const s = await make({ maxRateLimitWaitMs: 5_000 });
    s.bot.limits = { limit: 1, resetAfter: 30 };
    await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'one' });
    const error = await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'two' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).retryAfterMs).toBe(30_000);
    expect(messages(s)).toHaveLength(1);
    expect(s.bot.violations).toBe(0);
  });

  it('a 429 on one route holds that route for retry_after and sends again; the session is not paused', async () => {
    const s = await make();
    s.bot.failNext(/^POST \/channels\/\d+\/messages$/, { status: 429, body: { message: 'You are being rate limited.', retry_after: 1.5, global: false }, headers: { 'retry-after': '2', 'x-ratelimit-scope': 'user' } });
    const sending = watch(s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'held' }));
    await until(() => messages(s).length === 1, 'the refused request');
    await quiet();
    await s.m.send('bot', { method: 'triggerTyping', channel_id: CHANNEL }); // another route goes at once
    await s.clock.advance(1_499);
    await quiet();
    expect([sending.done, messages(s).length]).toEqual([false, 1]);
    await s.clock.advance(1);
    expect(await within(sending.promise, 'the retried send')).toMatchObject({ content: 'held' });
    expect(messages(s)).toHaveLength(2);
  });

  it('a global 429: send() rejects with RateLimitError and the whole session waits retry_after', async () => {
    const s = await make({}, { health: { intervalMs: 1_000, timeoutMs: 5_000, unhealthyThreshold: 1, jitter: 0 } });
    s.bot.failNext(/^POST /, { status: 429, body: { message: 'You are being rate limited.', retry_after: 2.5, global: true }, headers: { 'retry-after': '3', 'x-ratelimit-global': 'true', 'x-ratelimit-scope': 'global' } });
    const error = await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'one' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).retryAfterMs).toBe(2_500);
    const other = watch(s.m.send('bot', { method: 'triggerTyping', channel_id: OTHER_CHANNEL }));
    await s.clock.advance(1_000); // a health check while paused answers from the 429, without a request
    await quiet();
    expect([other.done, s.bot.callsOf('POST', /typing$/).length, s.bot.callsOf('GET', /^\/users\/@me$/).length]).toEqual([false, 0, 0]);
    expect((await s.m.get('bot')).health).toBe('healthy');
    await s.clock.advance(1_500);
    await within(other.promise, 'the send after the pause');
    expect(s.bot.callsOf('POST', /typing$/)).toHaveLength(1);
  });
});

describe("Discord's refusals", () => {
  it('401 on a send: the session is expired', async () => {
    const s = await make();
    s.bot.revoked = true;
    const error = await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'hi' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdapterError);
    expect((error as AdapterError).cause).toBeInstanceOf(DiscordApiError);
    await within(s.m.waitFor('bot', 'expired'), 'expired');
    expect((await s.m.get('bot')).lastError).toMatchObject({ code: 'EXPIRED', message: expect.stringContaining('401') });
  });

  it('4xx: the send fails with Discord’s message and code; 5xx also pauses the session with back-off', async () => {
    const s = await make();
    s.bot.failNext(/^POST /, { status: 403, body: { message: 'Missing Access', code: 50001 } });
    const denied = (await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'hi' }).catch((e: unknown) => e)) as AdapterError;
    expect(denied.cause).toMatchObject({ name: 'DiscordApiError', status: 403, code: 50001, message: expect.stringContaining('Missing Access') });
    s.bot.failNext(/^POST /, { status: 502, body: { message: 'Bad Gateway', code: 0 } });
    const outage = (await s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'hi' }).catch((e: unknown) => e)) as AdapterError;
    expect(outage.cause).toMatchObject({ status: 502, retryAfterMs: 1_000 });
    const next = watch(s.m.send('bot', { method: 'createMessage', channel_id: CHANNEL, content: 'after' }));
    await quiet();
    expect(next.done).toBe(false);
    await s.clock.advance(1_000);
    await within(next.promise, 'the send after the pause');
  });
});
