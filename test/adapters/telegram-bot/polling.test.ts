import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RateLimitError, ValidationError, isMessageFrom, type SessionManager } from 'multisession';
import { TELEGRAM_OFFSET_KEY, telegramBot } from 'multisession/adapters/telegram-bot';
import { startHttpProxy } from '../../net/servers.js';
import { startFakeBotApi } from './fake-bot-api.js';
import { quiet, setup, started, until, watch, within, type Setup } from './helpers.js';

/**
 * The telegram-bot adapter under a real SessionManager (manual clock) against the local fake Bot
 * API: bad input, long polling with the offset committed after the app handled each update,
 * Telegram's refusals (401, 409, 429, 5xx) and the pacing of sends.
 */
const api = await startFakeBotApi();
afterAll(() => api.close());
let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});
async function make(config: Record<string, unknown> = {}): Promise<Setup> {
  const s = await setup(api, config);
  open.push(s.m);
  return s;
}

describe('bad input is refused before any request, saying what to change', () => {
  it('a malformed token, unknown config keys, a non-http(s) apiRoot, webhook mode without a URL', async () => {
    const { m } = await make();
    const before = api.requests;
    const create = (credentials: unknown, config: unknown = {}) => m.create({ id: `x${Math.random().toString(36).slice(2, 8)}`, platform: 'telegram-bot', credentials: credentials as never, config: config as never }).catch((e: unknown) => e);
    const badToken = await create({ token: '12345:too-short' });
    expect(badToken).toBeInstanceOf(ValidationError);
    expect((badToken as ValidationError).issues).toEqual([{ path: ['credentials', 'token'], message: expect.stringContaining('@BotFather') }]);
    expect((badToken as Error).message).not.toContain('too-short'); // the token is never echoed
    const typo = (await create({ token: api.bot().token }, { pollTimout: 5 })) as ValidationError;
    expect(typo.issues).toEqual([{ path: ['config'], message: expect.stringContaining('pollTimout') }]);
    const ftp = (await create({ token: api.bot().token }, { apiRoot: 'ftp://api.telegram.org' })) as ValidationError;
    expect(ftp.issues.map((i) => i.path)).toEqual([['config', 'apiRoot']]);
    const webhook = (await create({ token: api.bot().token }, { mode: 'webhook' })) as ValidationError;
    expect(webhook.issues).toEqual([{ path: ['config', 'webhookUrl'], message: expect.stringContaining('webhook mode') }]);
    expect(api.requests).toBe(before);
    expect(() => telegramBot({ nmae: 'x' } as never)).toThrow(ValidationError);
  });

  it('an action that matches no method, or lacks or adds a parameter', async () => {
    const s = await make();
    await started(s);
    const send = (action: unknown) => s.m.send('bot', action as never).then(() => new ValidationError('nothing', []), (e: unknown) => e as ValidationError);
    expect((await send({ method: 'sendMesage', chat_id: 1, text: 'hi' })).issues[0]!.path).toEqual(['action', 'method']);
    expect((await send({ method: 'sendMessage', chat_id: 1 })).issues[0]!.path).toEqual(['action', 'text']);
    expect((await send({ method: 'sendMessage', chat_id: 'not a chat', text: 'hi' })).issues[0]!.path).toEqual(['action', 'chat_id']);
    expect((await send({ method: 'sendMessage', chat_id: 1, text: 'hi', colour: 'red' })).message).toContain('colour');
    expect(s.bot.callsOf('sendMessage')).toEqual([]);
  });
});

describe('long polling', () => {
  it('logs in with getMe, takes the token back from a webhook, and reports getMe as health', async () => {
    const s = await make();
    await started(s);
    expect(s.bot.calls.slice(0, 3).map((c) => c.method)).toEqual(['getMe', 'deleteWebhook', 'getUpdates']);
    expect(s.bot.callsOf('getUpdates')[0]!.params).toEqual({ timeout: 10, limit: 100 });
    expect((await s.m.stats('bot')).starts).toBe(1);
  });

  it("goes through the session's own proxy (ctx.fetch), polls and sends alike", async () => {
    const proxy = await startHttpProxy();
    try {
      const s = await make({ proxy: `http://127.0.0.1:${proxy.port}` });
      await started(s);
      s.bot.pushMessage(3, 'through the proxy');
      const sending = watch(s.m.send('bot', { method: 'sendMessage', chat_id: 3, text: 'back through it' }));
      await s.clock.advance(1_000);
      await within(sending.promise, 'the send');
      const fake = new URL(api.url).host;
      expect(proxy.events.length).toBeGreaterThan(0);
      expect(proxy.events.every((e) => e.target === fake && e.allowed)).toBe(true);
      await s.m.close();
    } finally {
      await proxy.close();
    }
  });

  it('delivers updates as the common envelope, typed by isMessageFrom', async () => {
    const s = await make();
    const seen: unknown[] = [];
    s.m.on('session.message', (e) => {
      if (isMessageFrom(s.telegram, e)) seen.push({ kind: e.message.kind, id: e.message.id, chatId: e.message.chatId, from: e.message.from, text: e.message.text, at: e.message.at, raw: e.message.raw });
    });
    await started(s);
    const text = s.bot.pushMessage(42, 'hello bot');
    const callback = s.bot.pushUpdate({
      callback_query: { id: 'cb-1', from: { id: 7, is_bot: false, first_name: 'Bo' }, chat_instance: 'ci', data: 'yes', message: { message_id: 9, date: 1_700_000_000, chat: { id: -100, type: 'group', title: 'G' } } },
    });
    await until(() => seen.length === 2, 'two messages');
    const message = text.message as { date: number };
    expect(seen).toEqual([
      { kind: 'message', id: String(text.update_id), chatId: '42', from: { id: '111', name: 'Ann Lee', username: 'ann', bot: false }, text: 'hello bot', at: message.date * 1_000, raw: text },
      { kind: 'callback_query', id: String(callback.update_id), chatId: '-100', from: { id: '7', name: 'Bo', username: null, bot: false }, text: 'yes', at: 1_700_000_000_000, raw: callback },
    ]);
    expect((await s.m.stats('bot')).messagesIn).toBe(2);
  });

  it('commits the offset only once the async listener has handled the update; a restart replays nothing', async () => {
    const s = await make();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const handled: string[] = [];
    s.m.on('session.message', async (e) => {
      if (e.direction !== 'in') return;
      if ((e.message as { text: string }).text === 'first') await held;
      handled.push((e.message as { text: string }).text);
    });
    await started(s);
    const first = s.bot.pushMessage(42, 'first');
    await until(() => s.bot.callsOf('getUpdates').length === 1 && s.bot.poll === null, 'the update taken');
    await quiet();
    expect(await s.m.kv('bot').get(TELEGRAM_OFFSET_KEY)).toBeUndefined(); // not handled yet: nothing committed
    expect(s.bot.callsOf('getUpdates')).toHaveLength(1); // and no next poll, which would confirm it to Telegram
    release();
    await until(async () => (await s.m.kv('bot').get(TELEGRAM_OFFSET_KEY)) === first.update_id + 1, 'the offset committed');
    await until(() => s.bot.callsOf('getUpdates').length === 2, 'the next poll');
    expect(s.bot.callsOf('getUpdates')[1]!.params.offset).toBe(first.update_id + 1);
    expect(s.bot.updates).toEqual([]); // confirmed on the server too

    await s.m.restart('bot');
    await until(() => s.bot.poll !== null, 'a poll after the restart');
    expect(s.bot.callsOf('getUpdates').at(-1)!.params.offset).toBe(first.update_id + 1);
    s.bot.pushMessage(42, 'second');
    await until(() => handled.length === 2, 'the second message');
    expect(handled).toEqual(['first', 'second']);
  });

  it('401 (a revoked token) while polling: expired, and no restart however long it waits', async () => {
    const s = await make();
    await started(s);
    s.bot.revoke();
    await within(s.m.waitFor('bot', 'expired'), 'expired');
    const snap = await s.m.get('bot');
    expect(snap.lastError).toMatchObject({ code: 'EXPIRED', message: expect.stringContaining('401') });
    const calls = api.requests;
    for (let i = 0; i < 10; i++) await s.clock.advance(10_000);
    await quiet();
    expect(api.requests).toBe(calls);
    expect((await s.m.stats('bot')).starts).toBe(1);
    expect((await s.m.get('bot')).state).toBe('expired');
  });

  it('401 at login ends expired at once, without retries', async () => {
    const s = await make();
    s.bot.revoked = true;
    expect((await within(s.m.start('bot'), 'start')).state).toBe('expired');
    await s.clock.advance(60_000);
    expect((await s.m.stats('bot')).starts).toBe(1);
  });

  it('409 (another poller on the token): a typed conflict error, and restarts only after the back-off, never in a hot loop', async () => {
    const s = await make();
    const errors: Error[] = [];
    s.m.on('session.error', (e) => errors.push(e.error));
    await started(s);
    // Another process polls the same token: Telegram ends our held poll with 409.
    await fetch(`${api.url}/bot${s.bot.token}/getUpdates?timeout=0`).then((r) => r.arrayBuffer());
    await within(s.m.waitFor('bot', 'backoff'), 'backoff');
    expect(errors[0]!.cause).toMatchObject({ code: 'PLATFORM_CONFLICT', name: 'PlatformConflictError', message: expect.stringContaining('terminated by other getUpdates request') });
    const polls = s.bot.callsOf('getUpdates').length;
    await quiet();
    expect(s.bot.callsOf('getUpdates')).toHaveLength(polls); // waiting, not polling
    await s.clock.advance(1_000); // the first back-off step
    await within(s.m.waitFor('bot', 'ready'), 'ready again');
    await until(() => s.bot.poll !== null, 'polling again');
  });

  it('429 on getUpdates: the next poll waits out retry_after on the session clock', async () => {
    const s = await make();
    await started(s);
    s.bot.failNext('getUpdates', { status: 429, description: 'Too Many Requests: retry after 3', retryAfter: 3 });
    s.bot.pushMessage(1, 'wake the poll');
    await until(() => s.bot.callsOf('getUpdates').length === 2, 'the refused poll');
    await s.clock.advance(2_999);
    await quiet();
    expect(s.bot.callsOf('getUpdates')).toHaveLength(2);
    await s.clock.advance(1);
    await until(() => s.bot.callsOf('getUpdates').length === 3, 'the poll after retry_after');
  });

  it('5xx on getUpdates pauses all outbound traffic with back-off (1 s, then 2 s), sends included', async () => {
    const s = await make();
    await started(s);
    s.bot.failNext('getUpdates', { status: 502, description: 'Bad Gateway' }, 2);
    s.bot.pushMessage(1, 'wake the poll');
    await until(() => s.bot.callsOf('getUpdates').length === 2, 'the first 502');
    await quiet(); // its answer lands: the session is paused
    const send = watch(s.m.send('bot', { method: 'sendMessage', chat_id: 5, text: 'during the outage' }));
    await s.clock.advance(999);
    await quiet();
    expect([s.bot.callsOf('getUpdates').length, s.bot.callsOf('sendMessage').length]).toEqual([2, 0]);
    await s.clock.advance(1);
    await until(() => s.bot.callsOf('getUpdates').length === 3, 'the second 502, after 1 s');
    await quiet();
    await s.clock.advance(1_999);
    await quiet();
    expect(s.bot.callsOf('getUpdates')).toHaveLength(3); // the second pause is 2 s
    await s.clock.advance(1);
    await until(() => s.bot.callsOf('getUpdates').length === 4, 'polling again');
    await within(send.promise, 'the send once the outage is over');
    expect(s.bot.callsOf('sendMessage')).toHaveLength(1);
    expect((await s.m.get('bot')).state).toBe('ready');
  });
});

describe('send', () => {
  it('calls each common method with its parameters and returns Telegram’s result', async () => {
    const s = await make();
    await started(s);
    // Each send waits its turn (1 a second per chat, 30 a second per bot) on the manual clock.
    const send = async (action: Parameters<SessionManager['send']>[1]) => {
      const sending = watch(s.m.send('bot', action));
      await s.clock.advance(1_000);
      return within(sending.promise, 'a send');
    };
    const sent = await send( { method: 'sendMessage', chat_id: 42, text: 'hi', parse_mode: 'HTML', reply_markup: { inline_keyboard: [[{ text: 'ok', callback_data: 'ok' }]] } });
    expect(sent).toMatchObject({ message_id: expect.any(Number), chat: { id: 42 }, text: 'hi' });
    const actions = [
      { method: 'sendPhoto', chat_id: 42, photo: 'AgACAgIAAxkBAAI', caption: 'a photo' },
      { method: 'sendDocument', chat_id: '@channelname', document: 'https://example.org/a.pdf' },
      { method: 'editMessageText', chat_id: 42, message_id: 1, text: 'edited' },
      { method: 'deleteMessage', chat_id: 42, message_id: 1 },
      { method: 'answerCallbackQuery', callback_query_id: 'cb-1', text: 'done' },
      { method: 'sendChatAction', chat_id: 42, action: 'typing' },
      { method: 'forwardMessage', chat_id: 43, from_chat_id: 42, message_id: 1 },
      { method: 'copyMessage', chat_id: 43, from_chat_id: 42, message_id: 1 },
    ] as const;
    for (const action of actions) {
      await send(action);
      const { method, ...params } = action;
      expect(s.bot.callsOf(method).at(-1)!.params).toEqual(params);
    }
    expect(await send({ method: 'deleteMessage', chat_id: 42, message_id: 2 })).toBe(true);
    expect((await s.m.stats('bot')).messagesOut).toBe(10);
  });

  it('429: send() rejects with RateLimitError (retryAfterMs), and the next send waits it out', async () => {
    const s = await make();
    await started(s);
    s.bot.failNext('sendMessage', { status: 429, description: 'Too Many Requests: retry after 5', retryAfter: 5 });
    const error = await s.m.send('bot', { method: 'sendMessage', chat_id: 1, text: 'too fast' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 5_000, context: { reason: 'Telegram sendMessage: Too Many Requests: retry after 5' } });
    const next = watch(s.m.send('bot', { method: 'sendMessage', chat_id: 2, text: 'later' }));
    await s.clock.advance(4_999);
    await quiet();
    expect(next.done).toBe(false);
    await s.clock.advance(1);
    await within(next.promise, 'the send after retry_after');
    expect(s.bot.callsOf('sendMessage')).toHaveLength(2);
  });

  it('paces sends: 1 a second per chat and perBotPerSecond over all chats, on the session clock', async () => {
    const s = await make({ perBotPerSecond: 2 });
    await started(s);
    const texts = () => s.bot.callsOf('sendMessage').map((c) => c.params.text);
    const oneChat = [0, 1, 2].map((n) => watch(s.m.send('bot', { method: 'sendMessage', chat_id: 7, text: `chat 7 #${n}` })));
    await until(() => texts().length === 1, 'the first');
    await s.clock.advance(500);
    await quiet();
    expect(texts()).toEqual(['chat 7 #0']); // the bot's pace would allow one, the chat's does not
    await s.clock.advance(500);
    await until(() => texts().length === 2, 'the second, a second later');
    await s.clock.advance(1_000);
    await until(() => texts().length === 3, 'the third, a second after');
    await within(Promise.all(oneChat.map((w) => w.promise)), 'the sends');

    await s.clock.advance(10_000);
    const manyChats = [1, 2, 3].map((chat) => watch(s.m.send('bot', { method: 'sendMessage', chat_id: chat, text: `chat ${chat}` })));
    await until(() => texts().length === 4, 'the first of three chats');
    await s.clock.advance(499);
    await quiet();
    expect(texts()).toHaveLength(4);
    await s.clock.advance(1);
    await until(() => texts().length === 5, 'the second, 500 ms later (2 a second per bot)');
    await s.clock.advance(500);
    await within(Promise.all(manyChats.map((w) => w.promise)), 'all three');
  });

  it('a send whose turn is further than maxPacingWaitMs fails at once with RateLimitError and takes no turn', async () => {
    const s = await make({ maxPacingWaitMs: 1_500 });
    await started(s);
    const sends = [0, 1].map((n) => watch(s.m.send('bot', { method: 'sendMessage', chat_id: 9, text: `#${n}` })));
    const error = await s.m.send('bot', { method: 'sendMessage', chat_id: 9, text: '#2' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 2_000, context: { maxWaitMs: 1_500, reason: expect.stringContaining('perChatPerSecond') } });
    await s.clock.advance(1_000);
    await within(Promise.all(sends.map((w) => w.promise)), 'the two paced sends');
    expect(s.bot.callsOf('sendMessage').map((c) => c.params.text)).toEqual(['#0', '#1']);
  });
});
