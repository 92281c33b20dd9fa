import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SessionManager, ValidationError, isMessageFrom } from 'multisession';
import { DISCORD_GATEWAY_STATE_KEY, discordBot } from 'multisession/adapters/discord-bot';
import { sqliteStorage } from 'multisession/sqlite';
import { createManualClock } from 'multisession/testing';
import { startFakeDiscord } from './fake-discord.js';
import { CHANNEL, quiet, setup, started, until, within, type Setup } from './helpers.js';

/**
 * The discord-bot gateway under a real SessionManager (manual clock) against the local fake
 * Discord: bad input, login (HELLO, IDENTIFY with intents, READY), heartbeats and zombies,
 * RECONNECT and INVALID_SESSION, resuming across a restart from the session's KV, and the close
 * codes that end a session (4004, 4014).
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
  return s;
}
const HB = api.heartbeatInterval;

describe('bad input is refused before any request, saying what to change', () => {
  it('a malformed token, unknown config keys and intents, a non-http(s) apiRoot', async () => {
    const { m, bot } = await make();
    const before = api.requests;
    const create = (credentials: unknown, config: unknown = {}) =>
      m.create({ id: `x${Math.random().toString(36).slice(2, 8)}`, platform: 'discord-bot', credentials: credentials as never, config: config as never }).then(
        () => new ValidationError('accepted', []),
        (e: unknown) => e as ValidationError,
      );
    const badToken = await create({ token: 'abc.def' });
    expect(badToken).toBeInstanceOf(ValidationError);
    expect(badToken.issues).toEqual([{ path: ['credentials', 'token'], message: expect.stringContaining('Developer Portal') }]);
    expect(badToken.message).not.toContain('abc.def'); // the token is never echoed
    const prefixed = await create({ token: `Bot ${bot.token}` });
    expect(prefixed.issues[0]!.message).toContain("without a 'Bot ' prefix");
    expect(prefixed.message).not.toContain(bot.token);
    const typo = await create({ token: bot.token }, { intent: ['Guilds'] });
    expect(typo.issues).toEqual([{ path: ['config'], message: expect.stringContaining('intent') }]);
    const intent = await create({ token: bot.token }, { intents: ['Guilds', 'GuildMesages'] });
    expect(intent.issues).toEqual([{ path: ['config', 'intents', 1], message: expect.stringContaining('GuildMessages') }]);
    const ftp = await create({ token: bot.token }, { apiRoot: 'ftp://discord.com/api' });
    expect(ftp.issues.map((i) => i.path)).toEqual([['config', 'apiRoot']]);
    expect(api.requests).toBe(before);
    expect(() => discordBot({ nmae: 'x' } as never)).toThrow(ValidationError);
  });

  it('an action that matches no method, or lacks or adds a parameter', async () => {
    const s = await make();
    await started(s);
    const send = (action: unknown) => s.m.send('bot', action as never).then(() => new ValidationError('nothing', []), (e: unknown) => e as ValidationError);
    expect((await send({ method: 'createMesage', channel_id: CHANNEL, content: 'hi' })).issues[0]!.path).toEqual(['action', 'method']);
    expect((await send({ method: 'createMessage', channel_id: CHANNEL })).issues[0]!.path).toEqual(['action', 'content']);
    expect((await send({ method: 'createMessage', channel_id: 'general', content: 'hi' })).issues[0]!.path).toEqual(['action', 'channel_id']);
    expect((await send({ method: 'createMessage', channel_id: CHANNEL, content: 'hi', colour: 'red' })).message).toContain('colour');
    expect(s.bot.callsOf('POST', /messages$/)).toEqual([]);
  });
});

describe('login', () => {
  it('GET /gateway/bot, HELLO, IDENTIFY with the configured intents, READY; the session is stored in the KV', async () => {
    const bot = api.bot({ granted: ['MessageContent'] });
    const s = await make({ intents: ['Guilds', 'GuildMessages', 'MessageContent'] }, { bot });
    await started(s);
    expect(bot.calls.map((c) => `${c.verb} ${c.path}`)).toEqual(['GET /gateway/bot']);
    expect(bot.framesOf(2)).toEqual([{ op: 2, socket: 1, d: { token: bot.token, intents: 1 | (1 << 9) | (1 << 15), properties: { os: process.platform, browser: 'multisession', device: 'multisession' } } }]);
    expect(await s.m.kv('bot').get(DISCORD_GATEWAY_STATE_KEY)).toEqual({ sessionId: bot.live!.id, seq: 1, resumeUrl: expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+\/resume$/) });
    expect((await s.m.stats('bot')).starts).toBe(1);
  });

  it('no logins left (session_start_limit.remaining 0): start fails saying when, without connecting', async () => {
    const s = await make({}, { restart: { retries: 0, minDelayMs: 1_000, maxDelayMs: 1_000, factor: 1 } });
    s.bot.identifiesLeft = 0;
    await s.m.start('bot');
    const snap = await within(s.m.waitFor('bot', 'failed'), 'failed');
    expect(snap.lastError!.message).toContain('no more gateway logins (IDENTIFY) for 14400000 ms');
    expect(s.bot.sockets).toBe(0);
  });

  it('reports GET /users/@me as health', async () => {
    const s = await make({}, { health: { intervalMs: 1_000, timeoutMs: 5_000, unhealthyThreshold: 1, jitter: 0 } });
    await started(s);
    await s.clock.advance(1_000);
    await until(() => s.bot.callsOf('GET', /^\/users\/@me$/).length === 1, 'the health probe');
    await quiet();
    expect((await s.m.get('bot')).health).toBe('healthy');
  });

  it('delivers MESSAGE_CREATE as the common envelope, typed by isMessageFrom; the bot’s own messages are skipped', async () => {
    const s = await make();
    const seen: unknown[] = [];
    s.m.on('session.message', (e) => {
      if (isMessageFrom(s.discord, e)) seen.push(e.message);
    });
    await started(s);
    s.bot.pushMessage(CHANNEL, 'from myself', { author: s.bot.user });
    const message = s.bot.pushMessage(CHANNEL, 'hello bot', { guild_id: '41771983423143936' });
    await until(() => seen.length === 1, 'the message');
    expect(seen).toEqual([
      {
        id: message.id,
        chatId: CHANNEL,
        guildId: '41771983423143936',
        from: { id: '80351110224678912', name: 'Nelly', username: 'nelly', bot: false },
        text: 'hello bot',
        at: Date.parse(message.timestamp as string),
        raw: message,
      },
    ]);
    expect((await s.m.stats('bot')).messagesIn).toBe(1);
    await until(async () => ((await s.m.kv('bot').get(DISCORD_GATEWAY_STATE_KEY)) as { seq: number }).seq === 3, 'the cursor past both');
  });
});

describe('heartbeats', () => {
  it('beats every heartbeat_interval with the last sequence number; a zombie (no ACK before the next beat) is closed with a non-1000 code and resumed', async () => {
    const s = await make();
    const seen: string[] = [];
    s.m.on('session.message', (e) => void (e.direction === 'in' && seen.push((e.message as { text: string }).text)));
    await started(s);
    const first = s.bot.live!.id;
    await s.clock.advance(HB); // the first beat comes after a random part of the interval
    await until(() => s.bot.framesOf(1).length === 1, 'the first heartbeat');
    expect(s.bot.framesOf(1)[0]!.d).toBe(1);
    await until(() => s.bot.acks === 1, 'its ACK');
    await quiet(); // the ACK lands
    await s.clock.advance(HB);
    await until(() => s.bot.framesOf(1).length === 2 && s.bot.acks === 2, 'the second heartbeat, ACKed');
    await quiet();
    s.bot.ackHeartbeats = false;
    await s.clock.advance(HB);
    await until(() => s.bot.framesOf(1).length === 3, 'a heartbeat that gets no ACK');
    await quiet();
    expect(s.bot.clientCloses).toEqual([]);
    s.bot.ackHeartbeats = true;
    await s.clock.advance(HB); // the next beat finds no ACK: zombie
    await until(() => s.bot.framesOf(6).length === 1, 'a RESUME on a new socket');
    expect(s.bot.clientCloses).toHaveLength(1);
    expect([1000, 1001]).not.toContain(s.bot.clientCloses[0]);
    expect(s.bot.framesOf(6)[0]).toEqual({ op: 6, socket: 2, d: { token: s.bot.token, session_id: first, seq: 1 } });
    expect(s.bot.framesOf(2)).toHaveLength(1); // no second IDENTIFY
    await until(() => s.bot.live !== null, 'the resumed session');
    s.bot.pushMessage(CHANNEL, 'after the resume');
    await until(() => seen.length === 1, 'a message on the resumed socket');
    expect((await s.m.get('bot')).state).toBe('ready');
    expect((await s.m.stats('bot')).starts).toBe(1);
  });
});

describe('RECONNECT and INVALID_SESSION', () => {
  it('op 7 and op 9 (resumable) resume; op 9 (not resumable) identifies afresh after 1-5 s', async () => {
    const s = await make();
    await started(s);
    const first = s.bot.live!.id;
    s.bot.reconnect();
    await until(() => s.bot.framesOf(6).length === 1 && s.bot.live !== null, 'a RESUME after op 7');
    s.bot.invalidate(true);
    await until(() => s.bot.framesOf(6).length === 2 && s.bot.live !== null, 'a RESUME after op 9 true');
    expect(s.bot.framesOf(6).map((f) => (f.d as { session_id: string }).session_id)).toEqual([first, first]);
    s.bot.invalidate(false);
    await until(() => s.bot.clientCloses.length === 3, 'the invalid socket closed');
    await quiet();
    expect(s.bot.framesOf(2)).toHaveLength(1); // waiting 1-5 s first
    await s.clock.advance(5_000);
    await until(() => s.bot.framesOf(2).length === 2 && s.bot.live !== null, 'a new IDENTIFY');
    const second = s.bot.live!.id;
    expect(second).not.toBe(first);
    await until(async () => ((await s.m.kv('bot').get(DISCORD_GATEWAY_STATE_KEY)) as { sessionId: string } | undefined)?.sessionId === second, 'the new session stored');
    expect((await s.m.get('bot')).state).toBe('ready');
  });
});

describe('close codes that reconnect', () => {
  it('4000 (unknown error) and a dropped connection resume at once; 4009 (session timed out) identifies afresh', async () => {
    const s = await make();
    await started(s);
    const first = s.bot.live!.id;
    s.bot.closeWith(4000, 'Unknown error.');
    await until(() => s.bot.framesOf(6).length === 1 && s.bot.live !== null, 'a RESUME after 4000');
    s.bot.live!.socket!.terminate(); // no close frame: 1006
    await until(() => s.bot.framesOf(6).length === 2 && s.bot.live !== null, 'a RESUME after the drop');
    expect(s.bot.framesOf(6).map((f) => (f.d as { session_id: string }).session_id)).toEqual([first, first]);
    // Each came after a socket that worked: none waits.
    s.bot.closeWith(4009, 'Session timed out.');
    await until(() => s.bot.framesOf(2).length === 2 && s.bot.live !== null, 'a new IDENTIFY after 4009');
    expect(s.bot.live!.id).not.toBe(first);
    expect((await s.m.get('bot')).state).toBe('ready');
    expect((await s.m.stats('bot')).custom).toMatchObject({ gatewayReconnects: 3 });
  });
});

describe('reconnects in a row', () => {
  it('back off (at once, then 1 s, doubling) and past maxReconnects fail the connection: the manager restarts it', async () => {
    const s = await make({ maxReconnects: 2 });
    const errors: Error[] = [];
    s.m.on('session.error', (e) => errors.push(e.error));
    await started(s);
    s.bot.dropLogins = 2;
    s.bot.closeWith(4000, 'Unknown error.');
    await until(() => s.bot.framesOf(6).length === 1 && s.bot.live === null, 'the first RESUME, refused');
    await quiet();
    expect(s.bot.framesOf(6)).toHaveLength(1); // the second waits 1 s
    await s.clock.advance(999);
    await quiet();
    expect(s.bot.framesOf(6)).toHaveLength(1);
    await s.clock.advance(1);
    await until(() => s.bot.framesOf(6).length === 2, 'the second RESUME');
    await within(s.m.waitFor('bot', 'backoff'), 'the connection failed: backoff');
    expect(errors.at(-1)!.cause).toMatchObject({ name: 'DiscordGatewayError', message: expect.stringContaining('maxReconnects') });
    await s.clock.advance(1_000); // the manager's back-off
    await within(s.m.waitFor('bot', 'ready'), 'ready again');
    expect(s.bot.framesOf(6)).toHaveLength(3); // the new connection resumed the stored session
  });
});

describe('resume across restarts', () => {
  it("a new process resumes the stored session: Discord replays what the app had not handled, and nothing it had", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-discord-'));
    const filename = join(dir, 'sessions.db');
    const bot = api.bot();
    const secretKey = randomBytes(32).toString('base64');
    try {
      const clock = createManualClock();
      const one = new SessionManager({ adapters: [discordBot()], clock, storage: sqliteStorage({ filename }), secretKey });
      await one.open();
      await one.create({ id: 'bot', platform: 'discord-bot', credentials: { token: bot.token }, config: { apiRoot: api.url } });
      const handled: string[] = [];
      let arrived = 0;
      one.on('session.message', async (e) => {
        if (e.direction !== 'in') return;
        arrived++;
        const text = (e.message as { text: string }).text;
        if (text === 'second') await new Promise(() => undefined); // the process dies before it is handled
        handled.push(text);
      });
      expect((await within(one.start('bot'), 'start')).state).toBe('ready');
      bot.pushMessage(CHANNEL, 'first');
      bot.pushMessage(CHANNEL, 'second');
      await until(() => arrived === 2, 'both messages');
      const stored = (await one.kv('bot').get(DISCORD_GATEWAY_STATE_KEY)) as { sessionId: string; seq: number };
      expect(stored.seq).toBe(2); // READY and 'first'
      await within(one.close(), 'close');

      const two = new SessionManager({ adapters: [discordBot()], clock: createManualClock(), storage: sqliteStorage({ filename }), secretKey });
      const again: string[] = [];
      two.on('session.message', (e) => void (e.direction === 'in' && again.push((e.message as { text: string }).text)));
      await two.open(); // restores the running session
      await within(two.waitFor('bot', 'ready'), 'ready after the restart');
      await until(() => again.length === 1, 'the replayed message');
      expect(again).toEqual(['second']);
      expect(bot.framesOf(2)).toHaveLength(1); // resumed, not identified again
      expect(bot.framesOf(6).at(-1)!.d).toEqual({ token: bot.token, session_id: stored.sessionId, seq: 2 });
      await until(async () => ((await two.kv('bot').get(DISCORD_GATEWAY_STATE_KEY)) as { seq: number }).seq >= 3, 'the cursor past it');
      await within(two.close(), 'close');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stored session Discord no longer knows (op 9 false) is forgotten: IDENTIFY after 1-5 s', async () => {
    const s = await make();
    await s.m.kv('bot').set(DISCORD_GATEWAY_STATE_KEY, { sessionId: 'gone', seq: 7, resumeUrl: api.gatewayUrl });
    const start = s.m.start('bot');
    await until(() => s.bot.framesOf(6).length === 1, 'the RESUME');
    await quiet();
    await s.clock.advance(5_000);
    expect((await within(start, 'start')).state).toBe('ready');
    expect(s.bot.framesOf(2)).toHaveLength(1);
    expect(((await s.m.kv('bot').get(DISCORD_GATEWAY_STATE_KEY)) as { sessionId: string }).sessionId).toBe(s.bot.live!.id);
  });

  it('a stored value that is no gateway session is ignored: IDENTIFY', async () => {
    const s = await make();
    await s.m.kv('bot').set(DISCORD_GATEWAY_STATE_KEY, { sessionId: 'x', seq: 3, resumeUrl: 'not a url' });
    await started(s);
    expect([s.bot.framesOf(2).length, s.bot.framesOf(6).length]).toEqual([1, 0]);
  });
});

describe('close codes that end the session', () => {
  it('4004 (the token is refused) while connected: expired, and no reconnect however long it waits', async () => {
    const s = await make();
    await started(s);
    s.bot.revoke();
    await within(s.m.waitFor('bot', 'expired'), 'expired');
    expect((await s.m.get('bot')).lastError).toMatchObject({ code: 'EXPIRED', message: expect.stringContaining('4004') });
    const sockets = s.bot.sockets;
    const calls = api.requests;
    for (let i = 0; i < 10; i++) await s.clock.advance(10_000);
    await quiet();
    expect([s.bot.sockets, api.requests]).toEqual([sockets, calls]);
    expect((await s.m.stats('bot')).starts).toBe(1);
  });

  it('4014 (a privileged intent not granted): failed at once, no restarts, with a message naming the intents to switch on', async () => {
    const s = await make({ intents: ['Guilds', 'GuildMembers', 'MessageContent'] });
    let backoffs = 0;
    let failed = false;
    s.m.on('session.state', (e) => {
      if (e.to === 'backoff') backoffs++;
      if (e.to === 'failed') failed = true;
    });
    await s.m.start('bot');
    await until(() => failed, 'failed');
    expect(backoffs).toBe(0); // waiting mends nothing: no back-off restarts
    expect((await s.m.stats('bot')).starts).toBe(1);
    const snap = await s.m.get('bot');
    expect(snap.lastError!.message).toContain('4014');
    expect(snap.lastError!.message).toContain('GuildMembers, MessageContent');
    expect(snap.lastError!.message).toContain('Developer Portal');
    expect(s.bot.framesOf(2).every((f) => (f.d as { intents: number }).intents === (1 | 2 | (1 << 15)))).toBe(true);
  });
});
