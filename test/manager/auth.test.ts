import { afterEach, describe, expect, it } from 'vitest';
import { AdapterError, AuthNotPendingError, SessionManager, ValidationError, defineAdapter, type AuthInput, type SessionManagerEventPayload } from 'multisession';
import { z } from 'zod';
import { createManualClock, parseSimulatedQr, simulatedAdapter } from 'multisession/testing';
import { setup } from '../helpers/setup.js';
import { settle } from '../helpers/scripted-adapter.js';

let open: SessionManager[] = [];
async function make(overrides = {}, extra: Parameters<typeof setup>[1] = []) {
  const env = await setup(overrides, extra);
  open.push(env.manager);
  const auths: SessionManagerEventPayload<'session.auth'>[] = [];
  env.manager.on('session.auth', (e) => auths.push(e));
  return { ...env, auths };
}
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

describe('QR login', () => {
  it('shows the QR on the snapshot and in a session.auth event; a refresh is another event, not a transition', async () => {
    const { manager: m, scripted: s, auths, reasons, clock } = await make();
    await m.create({ id: 'wa', platform: 'scripted', config: { mode: 'qr' } });
    const started = await m.start('wa');
    expect(started.state).toBe('authenticating');
    expect(started.auth).toEqual({ kind: 'qr', data: 'qr:wa', expiresAt: 123 });
    expect((await m.status('wa')).auth).toEqual({ kind: 'qr', data: 'qr:wa', expiresAt: 123 });
    expect(auths).toEqual([{ id: 'wa', kind: 'qr', data: 'qr:wa', expiresAt: 123, at: clock.now() }]);
    expect(reasons.filter((r) => r.id === 'wa').map((r) => `${r.from}->${r.to}`)).toEqual(['stopped->starting', 'starting->authenticating']);
    expect(reasons.at(-1)!.reason).toBe('waiting for qr');

    // The platform rotates the code: a new auth event with the new data, same state.
    const stateEventsBefore = reasons.length;
    await clock.advance(1_000);
    s.last('wa').ctx.auth.qr('qr:wa:2', { expiresAt: 456 });
    await settle();
    expect(auths).toHaveLength(2);
    expect(auths[1]).toMatchObject({ id: 'wa', kind: 'qr', data: 'qr:wa:2', expiresAt: 456 });
    expect(auths[1]!.at).toBeGreaterThan(auths[0]!.at);
    expect(reasons).toHaveLength(stateEventsBefore);
    const refreshed = await m.get('wa');
    expect(refreshed.state).toBe('authenticating');
    expect(refreshed.auth).toEqual({ kind: 'qr', data: 'qr:wa:2', expiresAt: 456 });

    // A QR without expiry: expiresAt is null.
    s.last('wa').ctx.auth.qr('qr:wa:3');
    await settle();
    expect(auths[2]).toMatchObject({ data: 'qr:wa:3', expiresAt: null });

    // Scanned: ready, the auth info is gone.
    s.last('wa').gate.resolve();
    const ready = await m.waitFor('wa', 'ready');
    expect(ready.auth).toBeNull();
    expect((await m.status('wa')).auth).toBeNull();
    expect(s.connections('wa')).toHaveLength(1);
  });

  it('a QR that nobody scans times out: failed with AUTH_TIMEOUT, no retry loop', async () => {
    const { manager: m, scripted: s, clock } = await make();
    await m.create({ id: 'wa', platform: 'scripted', config: { mode: 'qr' } });
    await m.start('wa');
    await clock.advance(4_999);
    expect((await m.get('wa')).state).toBe('authenticating');
    await clock.advance(1);
    const failed = await m.waitFor('wa', 'failed');
    expect(failed.lastError?.code).toBe('AUTH_TIMEOUT');
    expect(failed.auth).toBeNull();
    expect(s.last('wa').stopped).toBe(true);
    await clock.advance(60_000);
    expect(s.connections('wa')).toHaveLength(1);
  });

  it('refuses typed input while a QR is pending (the adapter takes none)', async () => {
    const { manager: m } = await make();
    await m.create({ id: 'wa', platform: 'scripted', config: { mode: 'qr' } });
    await m.start('wa');
    const err = await m.submitAuth('wa', { kind: 'code', value: '12345' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthNotPendingError);
    expect((err as AuthNotPendingError).code).toBe('AUTH_NOT_PENDING');
    expect((err as AuthNotPendingError).context.sessionId).toBe('wa');
    // "qr" is never a submittable kind: that is an input error.
    await expect(m.submitAuth('wa', { kind: 'qr' as never, value: 'x' })).rejects.toBeInstanceOf(ValidationError);
    expect((await m.get('wa')).state).toBe('authenticating');
  });
});

describe('code and password login', () => {
  it('code: authenticating with the phone hint, submitAuth makes it ready', async () => {
    const { manager: m, auths, clock } = await make();
    await m.create({ id: 'tg', platform: 'scripted', config: { mode: 'code' } });
    const snap = await m.start('tg');
    expect(snap.state).toBe('authenticating');
    expect(snap.auth).toEqual({ kind: 'code', data: { phone: '+1 *** 89' }, expiresAt: null });
    expect(auths).toEqual([{ id: 'tg', kind: 'code', data: { phone: '+1 *** 89' }, expiresAt: null, at: clock.now() }]);
    await m.submitAuth('tg', { kind: 'code', value: '12345' });
    const ready = await m.waitFor('tg', 'ready');
    expect(ready.auth).toBeNull();
    expect(ready.lastError).toBeNull();
    expect(ready.transitions.map((t) => t.to)).toEqual(['starting', 'authenticating', 'ready']);
  });

  it('wrong code: backoff, retry asks again, the right code makes it ready', async () => {
    const { manager: m, scripted: s, clock, auths } = await make();
    await m.create({ id: 'tg', platform: 'scripted', config: { mode: 'code' } });
    await m.start('tg');
    await m.submitAuth('tg', { kind: 'code', value: '99999' });
    const backoff = await m.waitFor('tg', 'backoff');
    expect(backoff.lastError).toMatchObject({ code: 'ADAPTER' });
    expect(backoff.lastError!.message).toMatch(/wrong code/);
    expect(backoff.auth).toBeNull();
    expect(s.last('tg').stopped).toBe(true);
    // The back-off (minDelayMs 100) passes: a new connection asks for the code again.
    await clock.advance(100);
    const again = await m.waitFor('tg', 'authenticating');
    expect(again.auth?.kind).toBe('code');
    expect(s.connections('tg')).toHaveLength(2);
    expect(auths).toHaveLength(2);
    await m.submitAuth('tg', { kind: 'code', value: '12345' });
    const ready = await m.waitFor('tg', 'ready');
    expect(ready.transitions.map((t) => t.to)).toEqual(['starting', 'authenticating', 'backoff', 'starting', 'authenticating', 'ready']);
    const stats = await m.stats('tg');
    expect(stats).toMatchObject({ starts: 2, failures: 1, restarts: 1 });
    expect((await m.status('tg')).restarts).toBe(1);
  });

  it('password: authenticating with kind password; a wrong kind is refused and changes nothing', async () => {
    const { manager: m } = await make();
    await m.create({ id: 'pw', platform: 'scripted', config: { mode: 'password' } });
    const snap = await m.start('pw');
    expect(snap.auth).toEqual({ kind: 'password', data: null, expiresAt: null });
    const wrongKind = await m.submitAuth('pw', { kind: 'code', value: 'secret' }).catch((e: unknown) => e);
    expect(wrongKind).toBeInstanceOf(AuthNotPendingError);
    expect((wrongKind as Error).message).toMatch(/password/);
    expect((await m.get('pw')).state).toBe('authenticating');
    await m.submitAuth('pw', { kind: 'pairing-code', value: 'secret' }).catch(() => undefined);
    expect((await m.get('pw')).state).toBe('authenticating');
    await m.submitAuth('pw', { kind: 'password', value: 'secret' });
    expect((await m.waitFor('pw', 'ready')).state).toBe('ready');
  });

  it('submitAuth when nothing is pending: AuthNotPendingError naming the state', async () => {
    const { manager: m } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    const stopped = await m.submitAuth('a', { kind: 'code', value: '1' }).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(AuthNotPendingError);
    expect((stopped as Error).message).toMatch(/"stopped"/);
    await m.start('a');
    const ready = await m.submitAuth('a', { kind: 'code', value: '1' }).catch((e: unknown) => e);
    expect(ready).toBeInstanceOf(AuthNotPendingError);
    expect((ready as Error).message).toMatch(/"ready"/);
    expect((await m.get('a')).state).toBe('ready');
  });

  it('a code that never comes: failed with AUTH_TIMEOUT after authTimeoutMs, no restart', async () => {
    const { manager: m, scripted: s, clock, reasons } = await make();
    await m.create({ id: 'tg', platform: 'scripted', config: { mode: 'code' } });
    await m.start('tg');
    await clock.advance(4_000);
    expect((await m.get('tg')).state).toBe('authenticating');
    await clock.advance(1_000);
    const failed = await m.waitFor('tg', 'failed');
    expect(failed.lastError).toMatchObject({ code: 'AUTH_TIMEOUT' });
    expect(failed.lastError!.message).toMatch(/5000 ms/);
    expect(failed.auth).toBeNull();
    expect(reasons.at(-1)).toMatchObject({ from: 'authenticating', to: 'failed' });
    await clock.advance(60_000);
    expect(s.connections('tg')).toHaveLength(1);
    expect((await m.get('tg')).state).toBe('failed');
    // A late answer is refused.
    await expect(m.submitAuth('tg', { kind: 'code', value: '12345' })).rejects.toBeInstanceOf(AuthNotPendingError);
    // start() tries again from failed.
    expect((await m.start('tg')).state).toBe('authenticating');
  });

  it('a submitted code resets nothing else: the auth timer no longer fires once ready', async () => {
    const { manager: m, clock } = await make();
    await m.create({ id: 'tg', platform: 'scripted', config: { mode: 'code' } });
    await m.start('tg');
    await clock.advance(4_000);
    await m.submitAuth('tg', { kind: 'code', value: '12345' });
    await m.waitFor('tg', 'ready');
    await clock.advance(10_000);
    const snap = await m.get('tg');
    expect(snap.state).toBe('ready');
    expect(snap.lastError).toBeNull();
  });
});

describe('re-authentication of a live session', () => {
  it('a pairing-code request while ready: authenticating with the data, the answer resolves the request, back to ready on the same connection', async () => {
    const { manager: m, scripted: s, auths, reasons } = await make();
    await m.create({ id: 'wa', platform: 'scripted' });
    await m.start('wa');
    const asked = s.last('wa').ctx.auth.request('pairing-code', { data: { hint: 'enter it on the phone' }, expiresAt: 999 });
    await settle();
    const snap = await m.get('wa');
    expect(snap.state).toBe('authenticating');
    expect(snap.auth).toEqual({ kind: 'pairing-code', data: { hint: 'enter it on the phone' }, expiresAt: 999 });
    expect(auths.at(-1)).toMatchObject({ kind: 'pairing-code', expiresAt: 999 });
    await expect(m.send('wa', { text: 'x' })).rejects.toMatchObject({ code: 'SESSION_NOT_READY' });
    await expect(m.submitAuth('wa', { kind: 'code', value: 'X' })).rejects.toBeInstanceOf(AuthNotPendingError);
    await m.submitAuth('wa', { kind: 'pairing-code', value: 'ABCD-1234' });
    await expect(asked).resolves.toBe('ABCD-1234');
    const back = await m.get('wa');
    expect(back.state).toBe('ready');
    expect(back.auth).toBeNull();
    expect(reasons.at(-1)).toMatchObject({ from: 'authenticating', to: 'ready', reason: 'authenticated' });
    expect(s.connections('wa')).toHaveLength(1);
    await expect(m.send('wa', { text: 'again' })).resolves.toEqual({ delivered: 'again' });
  });

  it('an unanswered re-authentication times out and the session restarts', async () => {
    const { manager: m, scripted: s, clock } = await make();
    await m.create({ id: 'wa', platform: 'scripted' });
    await m.start('wa');
    const asked = s.last('wa').ctx.auth.request('password').catch((e: unknown) => e);
    await settle();
    await clock.advance(5_000);
    expect(await asked).toMatchObject({ code: 'AUTH_TIMEOUT' });
    const snap = await m.get('wa');
    expect(['backoff', 'starting', 'ready']).toContain(snap.state);
    expect(snap.lastError).toMatchObject({ code: 'AUTH_TIMEOUT' });
    await clock.advance(100);
    expect((await m.waitFor('wa', 'ready')).state).toBe('ready');
    expect(s.connections('wa')).toHaveLength(2);
  });
});

describe('an adapter that takes auth input itself (simulated QR and code logins)', () => {
  async function simulated(auth: 'qr' | 'code') {
    const clock = createManualClock();
    const manager = new SessionManager({ adapters: [simulatedAdapter({ auth, authAttempts: 2 })], clock, authTimeoutMs: 5_000 });
    await manager.open();
    open.push(manager);
    const auths: SessionManagerEventPayload<'session.auth'>[] = [];
    manager.on('session.auth', (e) => auths.push(e));
    await manager.create({ id: 'wa', platform: 'simulated', credentials: { token: 'sim-token-1' } });
    return { manager, clock, auths };
  }

  it('QR: the scanned code goes to the adapter; a wrong one is refused with the cause and the session keeps waiting', async () => {
    const { manager: m, auths } = await simulated('qr');
    const snap = await m.start('wa');
    expect(snap.state).toBe('authenticating');
    expect(snap.auth?.kind).toBe('qr');
    const scan = parseSimulatedQr(String(snap.auth!.data));
    expect(scan?.sessionId).toBe('wa');
    expect(auths).toHaveLength(1);

    // The adapter's own refusals reach the caller as they are (they used to be AdapterErrors: an
    // HTTP 502 and a stack trace for what is the caller's mistake).
    const wrong = await m.submitAuth('wa', { kind: 'code', value: scan!.code === '000000' ? '111111' : '000000' }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(ValidationError);
    expect((wrong as ValidationError).issues.map((i) => i.path)).toEqual([['value']]);
    const wrongKind = await m.submitAuth('wa', { kind: 'password', value: 'hunter2-password' }, { actor: 'tester' }).catch((e: unknown) => e);
    expect(wrongKind).toBeInstanceOf(AuthNotPendingError);
    expect(wrongKind).not.toBeInstanceOf(AdapterError);
    expect((wrongKind as AuthNotPendingError).message).toMatch(/kind "code"/);
    expect((wrongKind as AuthNotPendingError).context).toMatchObject({ expected: 'code', shown: 'qr' });
    expect((await m.get('wa')).state).toBe('authenticating');

    await m.submitAuth('wa', { kind: 'code', value: scan!.code }, { actor: 'tester' });
    const ready = await m.waitFor('wa', 'ready');
    expect(ready.auth).toBeNull();

    // Every submission is audited with its kind, actor and outcome, never the value.
    const audit = await m.audit({ sessionId: 'wa', action: 'auth' });
    expect(audit.map((e) => [e.actor, e.details])).toEqual([
      ['tester', { kind: 'code', outcome: 'accepted' }],
      ['tester', { kind: 'password', outcome: 'AUTH_NOT_PENDING' }],
      [null, { kind: 'code', outcome: 'VALIDATION' }],
    ]);
    const text = JSON.stringify(audit);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain(`"${scan!.code}"`);
  });

  it('code: a wrong code is asked for again (same connection, new auth event); the right one logs in', async () => {
    const { manager: m, auths, clock } = await simulated('code');
    expect((await m.start('wa')).auth?.kind).toBe('code');
    await m.submitAuth('wa', { kind: 'code', value: '00000' });
    await clock.advance(0);
    expect((await m.get('wa')).state).toBe('authenticating');
    expect(auths).toHaveLength(2);
    // The auth timer runs from the new request: 4 s later it is still waiting.
    await clock.advance(4_000);
    expect((await m.get('wa')).state).toBe('authenticating');
    await m.submitAuth('wa', { kind: 'code', value: '12345' });
    expect((await m.waitFor('wa', 'ready')).state).toBe('ready');
    expect((await m.stats('wa')).starts).toBe(1);
    expect((await m.logs('wa', { level: 'warn' })).map((l) => l.msg)).toEqual([expect.stringMatching(/wrong code/)]);
  });
});

describe('a login that is answered and then never finishes', () => {
  /** Asks for a code (or shows a QR taken by its own submitAuth), then hangs in start(). */
  function stuckAdapter() {
    return defineAdapter({
      name: 'stuck',
      credentials: z.unknown(),
      config: z.object({ via: z.enum(['code', 'qr']) }),
      connect(ctx) {
        let scanned: (() => void) | null = null;
        return {
          async start() {
            if (ctx.config.via === 'code') await ctx.auth.request('code');
            else {
              const scan = new Promise<void>((r) => (scanned = r));
              ctx.auth.qr('stuck-qr');
              await scan;
            }
            await new Promise<void>(() => {}); // the platform never confirms the login
          },
          async submitAuth(input: AuthInput) {
            if (ctx.config.via === 'qr' && input.kind === 'code') scanned?.();
          },
          async stop() {},
          async health() {
            return { status: 'healthy' as const };
          },
          async send() {},
        };
      },
    });
  }

  it.each(['code', 'qr'] as const)('via %s: fails the attempt at startTimeoutMs instead of staying authenticating forever', async (via) => {
    const { manager: m, clock } = await make({}, [stuckAdapter()]);
    await m.create({ id: 'a', platform: 'stuck', config: { via } });
    expect((await m.start('a')).state).toBe('authenticating');
    await m.submitAuth('a', { kind: 'code', value: '123456' });
    await clock.advance(3_000); // startTimeoutMs in setup()
    const snap = await m.get('a');
    expect(snap.state).toBe('backoff');
    expect(snap.lastError?.message).toMatch(/did not finish within 3000 ms/);
    expect(snap.auth).toBeNull();
  });
});

