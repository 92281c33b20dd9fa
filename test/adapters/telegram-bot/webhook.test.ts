import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { SessionManager } from 'multisession';
import { TELEGRAM_SECRET_TOKEN_HEADER } from 'multisession/adapters/telegram-bot';
import { startFakeBotApi } from './fake-bot-api.js';
import { quiet, setup, started, until, type Setup } from './helpers.js';

/**
 * Webhook mode: `setWebhook` with a per-session `secret_token`; the fake Bot API posts updates to
 * the adapter's exported handler, which checks the `X-Telegram-Bot-Api-Secret-Token` header and
 * answers 200 only once the app has handled the update (Telegram keeps and retries the others).
 */
const api = await startFakeBotApi();
const servers: Server[] = [];
afterAll(async () => {
  await api.close();
  for (const server of servers) server.closeAllConnections();
  await Promise.all(servers.map((server) => new Promise((r) => server.close(r))));
});
let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

/** A manager whose session runs in webhook mode, its handler served on 127.0.0.1 at /telegram. */
async function makeWebhook(): Promise<Setup & { hookUrl: string }> {
  let handler: ((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) | null = null;
  const server = createServer((req, res) => (handler ? handler(req, res) : res.writeHead(503).end()));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/telegram`;
  const s = await setup(api, { mode: 'webhook', webhookUrl: hookUrl });
  handler = s.telegram.webhook;
  open.push(s.m);
  return { ...s, hookUrl };
}

const post = (url: string, headers: Record<string, string>, body: string) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body }).then(async (r) => ({ status: r.status, body: await r.json() }));

describe('webhook mode', () => {
  it('sets the webhook with a secret token of its own, kept across restarts, and never polls', async () => {
    const s = await makeWebhook();
    await started(s);
    expect(s.bot.calls.map((c) => c.method)).toEqual(['getMe', 'setWebhook']);
    const { url, secret_token: secret } = s.bot.callsOf('setWebhook')[0]!.params;
    expect(url).toBe(s.hookUrl);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await s.m.restart('bot');
    expect(s.bot.callsOf('setWebhook')[1]!.params.secret_token).toBe(secret);
    expect(s.bot.callsOf('getUpdates')).toEqual([]);
    // A logout drops the auth state: the next start sets a new secret.
    await s.m.logout('bot');
    await s.m.start('bot');
    expect(s.bot.callsOf('setWebhook')[2]!.params.secret_token).not.toBe(secret);
  });

  it('delivers the updates Telegram posts, answering 200 only once the listener has handled each', async () => {
    const s = await makeWebhook();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const texts: string[] = [];
    s.m.on('session.message', async (e) => {
      if (e.direction !== 'in') return;
      await held;
      texts.push((e.message as { text: string }).text);
    });
    await started(s);
    const update = s.bot.pushMessage(42, 'via webhook');
    await until(() => s.bot.updates.length === 1, 'queued');
    await quiet();
    expect(s.bot.webhookDeliveries).toEqual([]); // the POST is still open: not yet handled
    release();
    await until(() => s.bot.webhookDeliveries.length === 1, 'the answer to the POST');
    expect(s.bot.webhookDeliveries).toEqual([{ updateId: update.update_id, status: 200 }]);
    expect(texts).toEqual(['via webhook']);
    expect(s.bot.updates).toEqual([]);
  });

  it('refuses requests without the session’s secret token, and bodies that are no update', async () => {
    const s = await makeWebhook();
    await started(s);
    const secret = String(s.bot.callsOf('setWebhook')[0]!.params.secret_token);
    const update = JSON.stringify({ update_id: 1, message: { message_id: 1, date: 1, chat: { id: 1, type: 'private' }, text: 'forged' } });
    expect((await post(s.hookUrl, {}, update)).status).toBe(401);
    expect((await post(s.hookUrl, { [TELEGRAM_SECRET_TOKEN_HEADER]: 'a-guessed-secret' }, update)).status).toBe(401);
    expect((await post(s.hookUrl, { [TELEGRAM_SECRET_TOKEN_HEADER]: secret }, '{ not json')).status).toBe(400);
    expect((await post(s.hookUrl, { [TELEGRAM_SECRET_TOKEN_HEADER]: secret }, '{"message":{}}')).status).toBe(400);
    expect((await fetch(s.hookUrl)).status).toBe(405);
    expect((await s.m.stats('bot')).messagesIn).toBe(0);
    expect(await post(s.hookUrl, { [TELEGRAM_SECRET_TOKEN_HEADER]: secret }, update)).toEqual({ status: 200, body: { ok: true } });
    expect((await s.m.stats('bot')).messagesIn).toBe(1);
  });

  it('while the session is stopped Telegram keeps the update (the handler refuses it); it arrives once the session is back', async () => {
    const s = await makeWebhook();
    const texts: string[] = [];
    s.m.on('session.message', (e) => void (e.direction === 'in' && texts.push((e.message as { text: string }).text)));
    await started(s);
    await s.m.stop('bot');
    s.bot.pushMessage(42, 'while stopped');
    await until(() => s.bot.webhookDeliveries.length >= 1, 'a refused delivery');
    expect(s.bot.webhookDeliveries[0]!.status).toBe(401);
    expect(s.bot.updates).toHaveLength(1);
    await s.m.start('bot');
    await until(() => texts.length === 1, 'the update after the restart');
    expect(texts).toEqual(['while stopped']);
    await until(() => s.bot.updates.length === 0, 'confirmed');
  });
});
