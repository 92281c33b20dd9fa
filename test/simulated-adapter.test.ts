import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager, type SessionManagerEventPayload } from 'multisession';
import {
  adapterConformanceSuite,
  connectForTest,
  createAdapterTestStore,
  createManualClock,
  parseSimulatedQr,
  simulatedAdapter,
  SIMULATED_AUTH_KEY,
} from 'multisession/testing';

const runner = { describe, it, expect, beforeEach, afterEach };
// The simulated adapter has no platform to revoke a token on, answer 429 or queue messages for.
const skip = ['expiry', 'rate-limit', 'delivery'] as const;
const credentials = { token: 'tok-secret-123' };
const scanQr = (data: string) => parseSimulatedQr(data)!.code;

// The conformance suite, on every login flow of the simulated adapter.
adapterConformanceSuite(runner, { adapter: simulatedAdapter(), credentials, config: { greeting: 'hi' }, name: 'simulated (no login)', skip });
adapterConformanceSuite(runner, {
  adapter: simulatedAdapter({ auth: 'qr', remember: true }),
  credentials,
  auth: { qr: scanQr },
  name: 'simulated (QR, remembered)',
  skip,
});
adapterConformanceSuite(runner, { adapter: simulatedAdapter({ auth: 'code' }), credentials, auth: { code: '12345' }, name: 'simulated (code)', skip });
adapterConformanceSuite(runner, {
  adapter: simulatedAdapter({ auth: 'password', expectedPassword: 'hunter22' }),
  credentials,
  auth: { password: 'hunter22' },
  name: 'simulated (password)',
  skip,
});
adapterConformanceSuite(runner, {
  adapter: simulatedAdapter({ startDelayMs: 20, stopDelayMs: 5, echo: true, rejectTokens: ['revoked-token'] }),
  credentials,
  action: { bid: 3 },
  failingStart: { credentials: { token: 'revoked-token' } },
  name: 'simulated (delays, echo, revoked token)',
  skip,
});

adapterConformanceSuite(runner, {
  adapter: simulatedAdapter({ inboundEveryMs: 5, disconnectAfterMs: 60_000 }),
  credentials,
  name: 'simulated (inbound traffic, scheduled disconnect)',
  skip,
});

/** Waits (on real time, bounded) until `check` holds; fails with `what` otherwise. */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!check()) throw new Error(`never happened: ${what}`);
}

describe('simulatedAdapter options', () => {
  it('validates its options', () => {
    expect(() => simulatedAdapter({ auth: 'sms' as never })).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
    expect(() => simulatedAdapter({ failStarts: -1 })).toThrow(/failStarts/);
    expect(() => simulatedAdapter({ health: [] })).toThrow(/health/);
    expect(() => simulatedAdapter({ name: 'Bad Name' })).toThrow(/name/);
    expect(() => simulatedAdapter({ bogus: true } as never)).toThrow(/bogus/);
  });

  it('has the documented name, config defaults and credentials schema', () => {
    const a = simulatedAdapter();
    expect(a.name).toBe('simulated');
    expect(simulatedAdapter({ name: 'telegram-sim' }).name).toBe('telegram-sim');
    expect(a.config.parse({})).toEqual({ greeting: 'hello', bidLimit: 10 });
    expect(a.config.safeParse({ bidLimit: 0 }).success).toBe(false);
    expect(a.credentials.safeParse({ token: '' }).success).toBe(false);
    expect(a.credentials.safeParse(undefined).success).toBe(false);
    expect(simulatedAdapter({ requireCredentials: false }).credentials.safeParse(undefined).success).toBe(true);
  });

  it('plays a health script, holding the last step', async () => {
    const t = connectForTest(simulatedAdapter({ health: ['healthy', { status: 'unhealthy', detail: 'lag' }, 'expired'] }), { credentials });
    await t.connection.start();
    const seen = [];
    for (let i = 0; i < 5; i++) seen.push(await t.connection.health());
    expect(seen).toEqual([
      { status: 'healthy' },
      { status: 'unhealthy', detail: 'lag' },
      { status: 'expired' },
      { status: 'expired' },
      { status: 'expired' },
    ]);
    await t.stop();
  });

  it('cycles a health script, counting checks per session across restarts', async () => {
    const adapter = simulatedAdapter({ health: ['healthy', 'unhealthy'], healthMode: 'cycle' });
    const store = createAdapterTestStore();
    const first = connectForTest(adapter, { credentials, store, id: 's1' });
    await first.connection.start();
    expect((await first.connection.health()).status).toBe('healthy');
    await first.stop();
    const second = connectForTest(adapter, { credentials, store, id: 's1' });
    await second.connection.start();
    expect((await second.connection.health()).status).toBe('unhealthy');
    expect((await second.connection.health()).status).toBe('healthy');
    const other = connectForTest(adapter, { credentials, store, id: 's2' });
    await other.connection.start();
    expect((await other.connection.health()).status).toBe('healthy');
    await second.stop();
    await other.stop();
  });

  it('takes a health function of the check number', async () => {
    const t = connectForTest(simulatedAdapter({ health: (n) => (n >= 2 ? { status: 'unauthorized', detail: `check ${n}` } : 'healthy') }), {
      credentials,
    });
    await t.connection.start();
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push(await t.connection.health());
    expect(statuses).toEqual([{ status: 'healthy' }, { status: 'healthy' }, { status: 'unauthorized', detail: 'check 2' }]);
    await t.stop();
  });

  it('reports unknown health before start and after stop', async () => {
    const t = connectForTest(simulatedAdapter(), { credentials });
    expect((await t.connection.health()).status).toBe('unknown');
    await t.connection.start();
    await t.stop();
    expect((await t.connection.health()).status).toBe('unknown');
  });

  it('fails the first N starts of each session', async () => {
    const adapter = simulatedAdapter({ failStarts: 2 });
    const attempt = async (id: string) => {
      const t = connectForTest(adapter, { credentials, id });
      const outcome = await t.connection.start().then(
        () => 'ok',
        (e: Error) => e.message,
      );
      await t.stop();
      return outcome;
    };
    expect(await attempt('a')).toMatch(/attempt 1 of 2/);
    expect(await attempt('a')).toMatch(/attempt 2 of 2/);
    expect(await attempt('a')).toBe('ok');
    expect(await attempt('b')).toMatch(/attempt 1 of 2/);
  });

  it('hangs on start until ctx.signal aborts', async () => {
    const clock = createManualClock();
    const t = connectForTest(simulatedAdapter({ hangOnStart: true, clock }), { credentials });
    let settled = false;
    const start = t.connection.start().finally(() => (settled = true));
    await clock.advance(3_600_000); // an hour of its own time: nothing ends the hang but the signal
    expect(settled).toBe(false);
    t.controller.abort();
    await expect(start).rejects.toMatchObject({ code: 'ABORTED' });
    await t.connection.stop();
  });

  it('hangs on health until ctx.signal aborts', async () => {
    const clock = createManualClock();
    const t = connectForTest(simulatedAdapter({ hangOnHealth: true, clock }), { credentials });
    await t.connection.start();
    let settled = false;
    const checks = [t.connection.health(), t.connection.health()];
    void Promise.allSettled(checks).then(() => (settled = true));
    await clock.advance(3_600_000);
    expect(settled).toBe(false);
    await t.stop();
    for (const check of checks) await expect(check).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('aborts a start delay on stop', async () => {
    const t = connectForTest(simulatedAdapter({ startDelayMs: 60_000 }), { credentials });
    const start = t.connection.start();
    await t.stop();
    await expect(start).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('throws on send when told to, with the given message', async () => {
    const t = connectForTest(simulatedAdapter({ throwOnSend: 'flood wait 30 s' }), { credentials });
    await t.connection.start();
    await expect(t.connection.send({ text: 'x' })).rejects.toThrow('flood wait 30 s');
    await t.stop();
    const plain = connectForTest(simulatedAdapter({ throwOnSend: true }), { credentials });
    await plain.connection.start();
    await expect(plain.connection.send('x')).rejects.toThrow(/simulated send failure/);
    await plain.stop();
  });

  it('refuses to send before start', async () => {
    const t = connectForTest(simulatedAdapter(), { credentials });
    await expect(t.connection.send('x')).rejects.toThrow(/not connected/);
  });

  it('answers sends, counts bids and refuses bids over the session bidLimit', async () => {
    const t = connectForTest(simulatedAdapter(), { credentials, config: { greeting: 'hey', bidLimit: 5 } });
    await t.connection.start();
    expect(await t.connection.send({ text: 'hello' })).toEqual({ ok: true, n: 1, greeting: 'hey', echo: { text: 'hello' } });
    await t.connection.send({ bid: 5 });
    await expect(t.connection.send({ bid: 6 })).rejects.toMatchObject({ code: 'VALIDATION' });
    expect(t.stats).toEqual({ bids: 1 });
    expect(t.messages).toEqual([]);
    await t.stop();
  });

  it('echoes sent actions back as inbound messages', async () => {
    const t = connectForTest(simulatedAdapter({ echo: true }), { credentials });
    await t.connection.start();
    await t.connection.send({ text: 'ping' });
    await until(() => t.messages.length === 1, 'the echo');
    expect(t.messages).toEqual([{ text: 'ping' }]);
    await t.stop();
  });

  it('logs in with a QR code, refusing a wrong code and keeping the QR pending', async () => {
    const t = connectForTest(simulatedAdapter({ auth: 'qr', qrTtlMs: 30_000 }), { credentials, id: 'wa-7' });
    const start = t.connection.start();
    await until(() => t.qrs.length === 1, 'a QR code');
    const scan = parseSimulatedQr(t.qrs[0]!.data);
    expect(scan).toEqual({ sessionId: 'wa-7', code: expect.stringMatching(/^\d{6}$/) });
    expect(t.qrs[0]!.expiresAt).toBeGreaterThan(Date.now());
    const wrong = scan!.code === '000000' ? '000001' : '000000';
    await expect(t.connection.submitAuth!({ kind: 'code', value: wrong })).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(t.connection.submitAuth!({ kind: 'password', value: scan!.code })).rejects.toMatchObject({ code: 'AUTH_NOT_PENDING' });
    await t.connection.submitAuth!({ kind: 'code', value: scan!.code });
    await start;
    expect(t.authState.size).toBe(0);
    await t.stop();
  });

  it('accepts any code when acceptAnyCode is set', async () => {
    const t = connectForTest(simulatedAdapter({ auth: 'qr', acceptAnyCode: true }), { credentials, auth: { qr: () => 'anything' } });
    await t.connection.start();
    expect(t.qrs).toHaveLength(1);
    await t.stop();
  });

  it('rotates the QR code when it expires', async () => {
    const clock = createManualClock(0);
    const t = connectForTest(simulatedAdapter({ auth: 'qr', rotateQr: true, qrTtlMs: 10, clock }), { credentials });
    const start = t.connection.start();
    await until(() => t.qrs.length === 1, 'the first QR code');
    await clock.advance(20);
    expect(t.qrs.map((q) => q.expiresAt)).toEqual([10, 20, 30]);
    expect(new Set(t.qrs.map((q) => parseSimulatedQr(q.data)!.code)).size).toBe(3);
    const last = parseSimulatedQr(t.qrs.at(-1)!.data)!.code;
    await t.connection.submitAuth!({ kind: 'code', value: last });
    await start;
    await clock.advance(40);
    expect(t.qrs).toHaveLength(3);
    await t.stop();
  });

  it('remembers a login in the session auth state, per session', async () => {
    const adapter = simulatedAdapter({ auth: 'qr', remember: true });
    const store = createAdapterTestStore();
    const first = connectForTest(adapter, { credentials, store, id: 'a', auth: { qr: scanQr } });
    await first.connection.start();
    await first.stop();
    expect(first.qrs).toHaveLength(1);
    expect(first.authState.get(SIMULATED_AUTH_KEY)).toEqual({ method: 'qr' });
    const again = connectForTest(adapter, { credentials, store, id: 'a' });
    await again.connection.start();
    expect(again.qrs).toHaveLength(0);
    await again.stop();
    const other = connectForTest(adapter, { credentials, store, id: 'b' });
    const pending = other.connection.start();
    await until(() => other.qrs.length === 1, "b's own QR code");
    await other.stop();
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('asks for a code again after a wrong one, and gives up after authAttempts', async () => {
    const t = connectForTest(simulatedAdapter({ auth: 'code', expectedCode: '777', authAttempts: 2 }), { credentials });
    const start = t.connection.start();
    start.catch(() => {});
    await until(() => t.requests.length === 1, 'a code request');
    expect(t.requests[0]).toMatchObject({ kind: 'code', data: { hint: expect.stringContaining('test-session') } });
    await t.answer('code', '000');
    await until(() => t.requests.length === 2, 'a second code request');
    await t.answer('code', '001');
    await expect(start).rejects.toThrow(/wrong code 2 times/);
    expect(t.logs.filter((l) => l.level === 'warn')).toHaveLength(2);
    await t.stop();
  });

  it('logs in with a password', async () => {
    const t = connectForTest(simulatedAdapter({ auth: 'password' }), { credentials, auth: { password: 'secret' } });
    await t.connection.start();
    expect(t.requests.map((r) => r.kind)).toEqual(['password']);
    await t.stop();
  });

  it('drops a live connection after disconnectAfterMs through ctx.fail', async () => {
    const clock = createManualClock();
    const t = connectForTest(simulatedAdapter({ disconnectAfterMs: 10, clock }), { credentials });
    await t.connection.start();
    await clock.advance(9);
    expect(t.failures).toEqual([]);
    await clock.advance(1);
    expect(t.failures).toHaveLength(1);
    expect(String(t.failures[0])).toMatch(/connection lost/);
    expect((await t.connection.health()).status).toBe('unknown');
    await expect(t.connection.send('x')).rejects.toThrow(/not connected/);
    await t.stop();
  });

  it('delivers inbound traffic while ready, and none after stop', async () => {
    const clock = createManualClock();
    const t = connectForTest(simulatedAdapter({ inboundEveryMs: 2, clock }), { credentials });
    await t.connection.start();
    await clock.advance(6);
    expect(t.messages).toEqual([1, 2, 3].map((n) => ({ from: 'peer', text: `simulated inbound #${n}`, n })));
    await t.stop();
    await clock.advance(20);
    expect(t.messages).toHaveLength(3);
    expect(t.failures).toEqual([]);
  });

  it('reports a rejected token as expired and fails the start', async () => {
    const t = connectForTest(simulatedAdapter({ rejectTokens: ['old'] }), { credentials: { token: 'old' } });
    await expect(t.connection.start()).rejects.toThrow(/rejected the token/);
    expect(t.expired).toEqual(['token rejected by the simulated platform']);
    await t.stop();
  });
});

describe('simulatedAdapter under a SessionManager', () => {
  let manager: SessionManager;
  afterEach(async () => {
    await manager?.close();
  });

  it('completes a QR login by scanning, then restarts straight to ready when remembered', async () => {
    manager = new SessionManager({ adapters: [simulatedAdapter({ auth: 'qr', remember: true, echo: true })] });
    await manager.open();
    const auths: SessionManagerEventPayload<'session.auth'>[] = [];
    manager.on('session.auth', (e) => auths.push(e));
    await manager.create({ id: 'wa-1', platform: 'simulated', credentials });
    const snap = await manager.start('wa-1');
    expect(snap.state).toBe('authenticating');
    expect(snap.auth?.kind).toBe('qr');
    const scan = parseSimulatedQr(String(snap.auth!.data));
    expect(scan?.sessionId).toBe('wa-1');
    expect(auths.map((a) => a.data)).toEqual([snap.auth!.data]);
    await manager.submitAuth('wa-1', { kind: 'code', value: scan!.code });
    expect((await manager.waitFor('wa-1', 'ready', { timeoutMs: 5_000 })).state).toBe('ready');
    expect(await manager.send('wa-1', { text: 'hi' })).toMatchObject({ ok: true, echo: { text: 'hi' } });
    await until(() => auths.length === 1, 'nothing');
    await manager.stop('wa-1');
    const again = await manager.start('wa-1');
    expect(again.state).toBe('ready');
    expect(auths).toHaveLength(1);
    const stats = await manager.stats('wa-1');
    expect(stats.messagesOut).toBe(1);
  });

  it('logs in with a code through manager.submitAuth', async () => {
    manager = new SessionManager({ adapters: [simulatedAdapter({ name: 'tg', auth: 'code' })] });
    await manager.open();
    await manager.create({ id: 'tg-1', platform: 'tg', credentials });
    const snap = await manager.start('tg-1');
    expect(snap.state).toBe('authenticating');
    expect(snap.auth?.kind).toBe('code');
    await manager.submitAuth('tg-1', { kind: 'code', value: '12345' });
    expect((await manager.waitFor('tg-1', 'ready', { timeoutMs: 5_000 })).state).toBe('ready');
  });

  it('counts custom bids and applies config defaults', async () => {
    manager = new SessionManager({ adapters: [simulatedAdapter()] });
    await manager.open();
    const created = await manager.create({ id: 'fl-1', platform: 'simulated', credentials, config: { bidLimit: 4 } });
    expect(created.config).toEqual({ greeting: 'hello', bidLimit: 4 });
    await manager.start('fl-1');
    await manager.send('fl-1', { bid: 4 });
    await expect(manager.send('fl-1', { bid: 5 })).rejects.toThrow(/bidLimit 4/);
    expect((await manager.stats('fl-1')).custom).toEqual({ bids: 1 });
  });

  it('recovers from a simulated disconnect with a restart', async () => {
    const clock = createManualClock();
    manager = new SessionManager({
      adapters: [simulatedAdapter({ disconnectAfterMs: 20, clock })],
      restart: { retries: 3, minDelayMs: 1, maxDelayMs: 5, factor: 1 },
      clock,
    });
    await manager.open();
    const seen: string[] = [];
    manager.on('session.state', (e) => {
      if (e.id === 'd-1') seen.push(e.to);
    });
    await manager.create({ id: 'd-1', platform: 'simulated', credentials });
    await manager.start('d-1');
    await clock.advance(20); // the drop
    await clock.advance(10); // the back-off (1 ms, on the scheduler's 10 ms grid) and the start
    expect(seen.filter((s) => s === 'ready')).toHaveLength(2);
    expect(seen.slice(0, 4)).toEqual(['starting', 'ready', 'backoff', 'starting']);
    expect((await manager.stats('d-1')).failures).toBeGreaterThan(0);
  });

  it('refuses sessions without credentials unless requireCredentials is false', async () => {
    manager = new SessionManager({ adapters: [simulatedAdapter(), simulatedAdapter({ name: 'open', requireCredentials: false })] });
    await manager.open();
    await expect(manager.create({ id: 'x', platform: 'simulated' })).rejects.toMatchObject({ code: 'VALIDATION' });
    expect((await manager.create({ id: 'y', platform: 'open' })).hasCredentials).toBe(false);
  });
});
