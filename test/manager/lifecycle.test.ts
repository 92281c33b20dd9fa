import { afterEach, describe, expect, it } from 'vitest';
import { AuthTimeoutError, InvalidTransitionError, SessionNotReadyError, TRANSITIONS, canTransition, type SessionManager } from 'multisession';
import { setup } from '../helpers/setup.js';
import { settle } from '../helpers/scripted-adapter.js';

let open: SessionManager[] = [];
async function make(overrides = {}) {
  const env = await setup(overrides);
  open.push(env.manager);
  return env;
}
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

const allEdges = Object.entries(TRANSITIONS).flatMap(([from, tos]) => tos.map((to) => `${from}->${to}`));

describe('lifecycle', () => {
  it('reaches every allowed transition through the public API, and only those', async () => {
    const seen = new Set<string>();
    // --- retries: 2
    const a = await make();
    const { manager: m, clock, scripted: s } = a;
    const track = () => a.edges.forEach((e) => seen.add(e));

    // start → ready → stop
    await m.create({ id: 'plain', platform: 'scripted' });
    expect((await m.start('plain')).state).toBe('ready');
    expect((await m.stop('plain')).state).toBe('stopped');

    // code auth: starting → authenticating → ready; then stop while authenticating
    await m.create({ id: 'code', platform: 'scripted', config: { mode: 'code' } });
    expect((await m.start('code')).state).toBe('authenticating');
    await m.submitAuth('code', { kind: 'code', value: '12345' });
    expect((await m.waitFor('code', 'ready')).state).toBe('ready');
    await m.restart('code');
    expect((await m.stop('code')).state).toBe('stopped'); // authenticating → stopping

    // wrong code: authenticating → backoff → starting
    await m.start('code');
    await m.submitAuth('code', { kind: 'code', value: '00000' });
    await m.waitFor('code', 'backoff');
    await m.stop('code'); // backoff → stopping

    // auth timeout: authenticating → failed (no retry loop)
    await m.start('code');
    await clock.advance(5_000);
    const timedOut = await m.waitFor('code', 'failed');
    expect(timedOut.lastError?.code).toBe('AUTH_TIMEOUT');
    await m.stop('code'); // failed → stopping

    // start failures: starting → backoff → starting → … → failed
    s.behave('flaky', { failStarts: 10 });
    await m.create({ id: 'flaky', platform: 'scripted' });
    expect((await m.start('flaky')).state).toBe('backoff');
    await clock.advance(100);
    await clock.advance(200);
    const failed = await m.waitFor('flaky', 'failed');
    expect(failed.lastError?.message).toMatch(/start 3 failed/);
    expect((await m.stats('flaky')).starts).toBe(3);
    expect((await m.start('flaky')).state).toBe('backoff'); // failed → starting

    // gate: starting → stopping, starting → expired, expired → starting, expired → stopping
    await m.create({ id: 'gate', platform: 'scripted', config: { mode: 'gate' } });
    const pending = m.start('gate');
    await settle();
    expect((await m.get('gate')).state).toBe('starting');
    await m.stop('gate');
    await pending;
    const again = m.start('gate');
    await settle();
    s.last('gate').ctx.expired('token revoked');
    expect((await again).state).toBe('expired');
    expect((await m.get('gate')).lastError).toMatchObject({ code: 'EXPIRED', message: 'token revoked' });
    void m.start('gate');
    await settle();
    await m.stop('gate');

    // health: ready → degraded → ready, degraded → backoff, ready → expired, degraded → expired
    await m.create({ id: 'h', platform: 'scripted' });
    await m.start('h');
    s.behave('h', { health: { status: 'unhealthy', detail: 'ping failed' } });
    await clock.advance(1_000);
    await clock.advance(1_000);
    expect((await m.get('h')).state).toBe('degraded');
    s.behave('h', { health: { status: 'healthy' } });
    await clock.advance(1_000);
    expect((await m.get('h')).state).toBe('ready');
    s.behave('h', { health: 'hang' });
    await clock.advance(1_500);
    await clock.advance(1_500);
    expect((await m.get('h')).state).toBe('degraded');
    await clock.advance(1_500); // the next failure while degraded restarts it
    s.behave('h', { health: { status: 'healthy' } });
    await clock.advance(100);
    expect((await m.waitFor('h', 'ready')).state).toBe('ready');
    s.behave('h', { health: { status: 'expired', detail: 'session revoked' } });
    await clock.advance(1_000);
    expect((await m.get('h')).state).toBe('expired');
    expect((await m.get('h')).health).toBe('expired');
    await clock.advance(60_000);
    expect(s.connections('h')).toHaveLength(2); // first start + one health restart; expired: no restart loop
    expect((await m.stop('h')).state).toBe('stopped'); // expired → stopping
    s.behave('h', { health: { status: 'unhealthy' } });
    await m.start('h');
    await clock.advance(1_000);
    await clock.advance(1_000);
    expect((await m.get('h')).state).toBe('degraded');
    s.behave('h', { health: { status: 'unauthorized' } });
    await clock.advance(1_000);
    expect((await m.get('h')).state).toBe('expired');
    expect((await m.get('h')).health).toBe('unauthorized');

    // re-auth while up: ready → authenticating → ready; degraded → authenticating; degraded → stopping
    s.behave('h', { health: { status: 'healthy' } });
    await m.start('h');
    const reauth = s.last('h').ctx.auth.request('password');
    await settle();
    expect((await m.get('h')).state).toBe('authenticating');
    await m.submitAuth('h', { kind: 'password', value: 'pw' });
    await expect(reauth).resolves.toBe('pw');
    expect((await m.get('h')).state).toBe('ready');
    s.behave('h', { health: { status: 'unhealthy' } });
    await clock.advance(1_000);
    await clock.advance(1_000);
    expect((await m.get('h')).state).toBe('degraded');
    void s.last('h').ctx.auth.request('code').catch(() => undefined);
    await settle();
    expect((await m.get('h')).state).toBe('authenticating');
    // authenticating → expired
    s.last('h').ctx.expired('logged out elsewhere');
    await settle();
    expect((await m.get('h')).state).toBe('expired');
    s.behave('h', { health: { status: 'unhealthy' } });
    await m.start('h');
    await clock.advance(1_000);
    await clock.advance(1_000);
    await m.stop('h'); // degraded → stopping

    // connection lost: ready → backoff
    s.behave('h', { health: { status: 'healthy' } });
    await m.start('h');
    s.last('h').ctx.fail(new Error('socket closed'));
    await m.waitFor('h', 'backoff');
    await clock.advance(100);
    expect((await m.waitFor('h', 'ready')).state).toBe('ready');
    track();

    // --- retries: 0 (no restarts): ready → failed, degraded → failed, starting → failed
    const b = await make({ restart: { retries: 0, minDelayMs: 100, maxDelayMs: 100, factor: 1 } });
    await b.manager.create({ id: 'x', platform: 'scripted' });
    await b.manager.start('x');
    b.scripted.last('x').ctx.fail(new Error('socket closed'));
    expect((await b.manager.waitFor('x', 'failed')).lastError?.message).toMatch(/socket closed/);
    await b.manager.start('x');
    b.scripted.behave('x', { health: { status: 'unhealthy' } });
    await b.clock.advance(1_000);
    await b.clock.advance(1_000);
    await b.clock.advance(1_000);
    expect((await b.manager.get('x')).state).toBe('failed');
    // starting → authenticating via QR
    await b.manager.create({ id: 'q', platform: 'scripted', config: { mode: 'qr' } });
    const q = await b.manager.start('q');
    expect(q.state).toBe('authenticating');
    expect(q.auth).toEqual({ kind: 'qr', data: 'qr:q', expiresAt: 123 });
    b.scripted.last('q').gate.resolve();
    expect((await b.manager.waitFor('q', 'ready')).auth).toBeNull();
    b.edges.forEach((e) => seen.add(e));

    expect([...seen].filter((e) => !allEdges.includes(e))).toEqual([]);
    expect(allEdges.filter((e) => !seen.has(e))).toEqual([]);
  });

  it('refuses transitions outside the table', async () => {
    expect(canTransition('stopped', 'ready')).toBe(false);
    expect(canTransition('stopping', 'starting')).toBe(false);
    expect(canTransition('failed', 'ready')).toBe(false);
    expect(canTransition('backoff', 'ready')).toBe(false);
    const { manager: m } = await make();
    await m.create({ id: 'r', platform: 'scripted' });
    await m.start('r');
    await expect(m.delete('r')).rejects.toBeInstanceOf(InvalidTransitionError);
    expect((await m.get('r')).state).toBe('ready');
    await m.stop('r');
    await expect(m.send('r', { text: 'hi' })).rejects.toBeInstanceOf(SessionNotReadyError);
    await expect(m.send('r', { text: 'hi' })).rejects.toThrow(/"stopped"/);
  });

  it('records the newest transitions with reasons on the snapshot', async () => {
    const { manager: m } = await make({ historySize: 3 });
    await m.create({ id: 't', platform: 'scripted' });
    await m.start('t', { reason: 'morning shift' });
    await m.stop('t');
    const snap = await m.get('t');
    expect(snap.transitions.map((t) => `${t.from}->${t.to}`)).toEqual(['starting->ready', 'ready->stopping', 'stopping->stopped']);
    expect(snap.transitions[0]!.reason).toBe('connected');
    expect(snap.desiredState).toBe('stopped');
  });

  it('auth timeout rejects the pending request and does not loop', async () => {
    const { manager: m, clock, scripted: s } = await make();
    await m.create({ id: 'c', platform: 'scripted', config: { mode: 'code' } });
    await m.start('c');
    const errors: unknown[] = [];
    m.on('session.error', (e) => errors.push(e.error));
    await clock.advance(5_000);
    await m.waitFor('c', 'failed');
    expect(errors.some((e) => e instanceof AuthTimeoutError)).toBe(true);
    await clock.advance(60_000);
    expect(s.connections('c')).toHaveLength(1);
    expect((await m.get('c')).state).toBe('failed');
  });
});
