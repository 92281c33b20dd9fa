import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineAdapter, type HealthReport, type SessionManager, type SessionManagerEventPayload } from 'multisession';
import { setup } from '../helpers/setup.js';

// setup(): health every 1,000 ms (no jitter), timeout 500 ms, 2 failures in a row → degraded;
// restart retries 2, back-off 100 ms × 2ⁿ up to 1,000 ms.

let open: SessionManager[] = [];
async function make(overrides = {}, extra: Parameters<typeof setup>[1] = []) {
  const env = await setup(overrides, extra);
  open.push(env.manager);
  const health: SessionManagerEventPayload<'session.health'>[] = [];
  env.manager.on('session.health', (e) => health.push(e));
  return { ...env, health };
}
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

async function readySession(env: Awaited<ReturnType<typeof make>>, id = 'h') {
  await env.manager.create({ id, platform: 'scripted' });
  expect((await env.manager.start(id)).state).toBe('ready');
}

describe('health', () => {
  it('healthy checks emit nothing; failures up to the threshold degrade; healthy again returns to ready', async () => {
    const env = await make();
    const { manager: m, scripted: s, clock, health, reasons } = env;
    await readySession(env);
    expect((await m.get('h')).health).toBe('healthy');
    await clock.advance(3_000);
    expect(health).toEqual([]);

    s.behave('h', { health: { status: 'unhealthy', detail: 'ping failed' } });
    await clock.advance(1_000);
    let snap = await m.get('h');
    expect(snap.state).toBe('ready'); // one failure is below the threshold of 2
    expect(snap.health).toBe('unhealthy');
    expect(health).toEqual([{ id: 'h', health: 'unhealthy', previous: 'healthy', detail: 'ping failed', failures: 1, at: clock.now() }]);

    await clock.advance(1_000);
    snap = await m.get('h');
    expect(snap.state).toBe('degraded');
    expect(snap.lastError).toMatchObject({ code: 'UNHEALTHY', message: 'ping failed' });
    expect(reasons.at(-1)).toEqual({ id: 'h', from: 'ready', to: 'degraded', reason: '2 failed health checks: ping failed' });
    expect(health[1]).toMatchObject({ health: 'unhealthy', previous: 'unhealthy', failures: 2 });
    // degraded still sends
    await expect(m.send('h', { text: 'still up' })).resolves.toEqual({ delivered: 'still up' });

    s.behave('h', { health: { status: 'healthy' } });
    await clock.advance(1_000);
    snap = await m.get('h');
    expect(snap.state).toBe('ready');
    expect(snap.health).toBe('healthy');
    expect(reasons.at(-1)).toMatchObject({ from: 'degraded', to: 'ready', reason: 'health recovered' });
    expect(health[2]).toMatchObject({ health: 'healthy', previous: 'unhealthy', failures: 0 });
    expect(s.connections('h')).toHaveLength(1); // recovered in place, no restart

    // The failure count starts again from zero after a healthy check.
    s.behave('h', { health: { status: 'unhealthy' } });
    await clock.advance(1_000);
    expect((await m.get('h')).state).toBe('ready');
  });

  it('a failure while degraded restarts with back-off and recovers on a new connection', async () => {
    const env = await make();
    const { manager: m, scripted: s, clock, reasons } = env;
    await readySession(env);
    s.behave('h', { health: { status: 'unhealthy', detail: 'ping failed' } });
    await clock.advance(2_000);
    expect((await m.get('h')).state).toBe('degraded');
    await clock.advance(1_000);
    const backoff = await m.get('h');
    expect(backoff.state).toBe('backoff');
    expect(backoff.lastError).toMatchObject({ code: 'ADAPTER' });
    expect(backoff.lastError!.message).toMatch(/health.*ping failed/);
    expect(reasons.at(-1)).toMatchObject({ from: 'degraded', to: 'backoff' });
    expect(reasons.at(-1)!.reason).toMatch(/^restarting: /);
    expect(s.connections('h')[0]!.stopped).toBe(true);
    await expect(m.send('h', { text: 'x' })).rejects.toMatchObject({ code: 'SESSION_NOT_READY' });

    s.behave('h', { health: { status: 'healthy' } });
    await clock.advance(100);
    const ready = await m.waitFor('h', 'ready');
    expect(ready.health).toBe('healthy');
    expect(s.connections('h')).toHaveLength(2);
    expect(s.last('h').stopped).toBe(false);
    expect(reasons.filter((r) => r.id === 'h').map((r) => r.to).slice(-3)).toEqual(['backoff', 'starting', 'ready']);
    expect(reasons.at(-2)!.reason).toBe('restart');
    expect(await m.stats('h')).toMatchObject({ starts: 2, restarts: 1, failures: 1, errors: 1 });
    expect((await m.status('h')).restarts).toBe(1);
    // The new connection works.
    await expect(m.send('h', { text: 'back' })).resolves.toEqual({ delivered: 'back' });
    expect(s.last('h').sent).toEqual([{ text: 'back' }]);
  });

  it('restarts that keep failing end failed with the last error after restart.retries, then stay down', async () => {
    const env = await make();
    const { manager: m, scripted: s, clock } = env;
    await readySession(env);
    s.behave('h', { health: { status: 'unhealthy' }, failStarts: 1_000 });
    await clock.advance(3_000); // degraded, then the restart begins
    await clock.advance(5_000); // the failed life and two failed starts spend the budget (retries 2)
    const failed = await m.waitFor('h', 'failed', { timeoutMs: 1 });
    expect(failed.lastError).toMatchObject({ code: 'ADAPTER' });
    expect(failed.lastError!.message).toMatch(/start 3 failed/);
    expect(failed.transitions.map((t) => t.to).slice(-6)).toEqual(['degraded', 'backoff', 'starting', 'backoff', 'starting', 'failed']);
    expect(s.connections('h')).toHaveLength(3);
    expect(await m.stats('h')).toMatchObject({ starts: 3, failures: 3, restarts: 2 });
    expect((await m.status('h')).restarts).toBe(2);
    expect(failed.desiredState).toBe('running');
    await clock.advance(600_000);
    expect(s.connections('h')).toHaveLength(3);
    expect((await m.get('h')).state).toBe('failed');
  });

  it('a hung health() counts as unhealthy once timeoutMs passes', async () => {
    const env = await make();
    const { manager: m, scripted: s, clock, health } = env;
    await readySession(env);
    s.behave('h', { health: 'hang' });
    await clock.advance(1_499);
    expect((await m.get('h')).health).toBe('healthy');
    expect(health).toEqual([]);
    await clock.advance(1);
    expect((await m.get('h')).health).toBe('unhealthy');
    expect(health).toHaveLength(1);
    expect(health[0]).toMatchObject({ health: 'unhealthy', failures: 1, detail: 'health check timed out after 500 ms' });
    await clock.advance(1_500); // next check at 2,500, times out at 3,000
    expect((await m.get('h')).state).toBe('degraded');
  });

  it.each([
    ['rejects', 'throw', /health check failed: probe exploded/],
    ['throws synchronously', 'throwSync', /health check failed: probe exploded synchronously/],
    ['returns an invalid report', 'invalid', /health\(\) returned .*fine-ish/],
  ] as const)('a health() that %s counts as unhealthy', async (_label, behaviour, detail) => {
    const env = await make();
    const { manager: m, scripted: s, clock, health } = env;
    await readySession(env);
    s.behave('h', { health: behaviour });
    await clock.advance(1_000);
    expect((await m.get('h')).health).toBe('unhealthy');
    expect(health[0]!.detail).toMatch(detail);
    await clock.advance(1_000);
    const snap = await m.get('h');
    expect(snap.state).toBe('degraded');
    expect(snap.lastError!.message).toMatch(detail);
  });

  it.each(['expired', 'unauthorized'] as const)('health %s moves the session to expired with no restart loop', async (status) => {
    const env = await make();
    const { manager: m, scripted: s, clock, health, reasons } = env;
    await readySession(env);
    s.behave('h', { health: { status, detail: 'session revoked' } });
    await clock.advance(1_000);
    const snap = await m.get('h');
    expect(snap.state).toBe('expired');
    expect(snap.health).toBe(status);
    expect(snap.lastError).toMatchObject({ code: 'EXPIRED', message: 'session revoked' });
    expect(snap.desiredState).toBe('running');
    expect(reasons.at(-1)).toMatchObject({ from: 'ready', to: 'expired', reason: 'session revoked' });
    expect(health).toEqual([{ id: 'h', health: status, previous: 'healthy', detail: 'session revoked', failures: 0, at: clock.now() }]);
    expect(s.last('h').stopped).toBe(true);
    for (let i = 0; i < 10; i++) await clock.advance(60_000);
    expect(s.connections('h')).toHaveLength(1);
    expect((await m.get('h')).state).toBe('expired');
    expect((await m.stats('h')).restarts).toBe(0);
    // New credentials (or a re-login) and start() bring it back.
    s.behave('h', { health: { status: 'healthy' } });
    await m.update('h', { credentials: { token: 'fresh-token' } });
    expect((await m.start('h')).state).toBe('ready');
    expect(s.connections('h')).toHaveLength(2);
  });

  it('health checks of one session do not touch another', async () => {
    const env = await make();
    const { manager: m, scripted: s, clock, health } = env;
    await readySession(env, 'sick');
    await readySession(env, 'fine');
    s.behave('sick', { health: 'hang' });
    await clock.advance(6_000);
    expect((await m.get('fine')).state).toBe('ready');
    expect((await m.get('fine')).health).toBe('healthy');
    expect(health.every((e) => e.id === 'sick')).toBe(true);
    expect(s.connections('fine')).toHaveLength(1);
  });

  it('a stopped session has health unknown (no connection, nothing to vouch for)', async () => {
    const env = await make();
    const { manager: m, scripted: s, clock } = env;
    await readySession(env);
    await m.stop('h');
    expect((await m.get('h')).health).toBe('unknown');
    expect((await m.status('h')).health).toBe('unknown');
    expect((await m.list({ health: 'healthy' })).items).toEqual([]);
    // Same after a failure: failed is at rest too.
    s.behave('h', { failStarts: 1_000 });
    await m.start('h');
    await clock.advance(5_000);
    expect((await m.get('h')).state).toBe('failed');
    expect((await m.get('h')).health).toBe('unknown');
  });

  it('a session that recovers by restarting announces that it is healthy again', async () => {
    const env = await make();
    const { manager: m, scripted: s, clock, health } = env;
    await readySession(env);
    s.behave('h', { health: { status: 'unhealthy' } });
    await clock.advance(3_000); // degraded, then restarting
    expect(health.at(-1)!.health).toBe('unhealthy');
    s.behave('h', { health: { status: 'healthy' } });
    await clock.advance(100);
    await m.waitFor('h', 'ready');
    await clock.advance(2_000); // a couple of healthy checks on the new connection
    expect((await m.get('h')).health).toBe('healthy');
    expect(health.at(-1)).toMatchObject({ id: 'h', health: 'healthy' });
  });

  it('never runs two probes of one session at once, even when a probe outlasts the interval', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let probes = 0;
    const release: (() => void)[] = [];
    const slow = defineAdapter({
      name: 'slow',
      credentials: z.unknown(),
      config: z.object({}),
      connect() {
        return {
          async start() {},
          async stop() {},
          health() {
            probes++;
            inFlight++;
            maxInFlight = Math.max(maxInFlight, inFlight);
            return new Promise<HealthReport>((resolve) => {
              release.push(() => {
                inFlight--;
                resolve({ status: 'healthy' });
              });
            });
          },
          async send() {},
        };
      },
    });
    // Probes take up to 2.5 s (the timeout) while the interval is 1 s.
    const env = await make({ health: { intervalMs: 1_000, timeoutMs: 2_500, unhealthyThreshold: 5, jitter: 0 } }, [slow]);
    const { manager: m, clock } = env;
    await m.create({ id: 'slow', platform: 'slow' });
    await m.start('slow');
    await clock.advance(3_400); // the first probe (at 1 s) is still running
    expect(probes).toBe(1);
    expect(maxInFlight).toBe(1);
    await clock.advance(100); // it times out at 3.5 s: unhealthy
    expect((await m.get('slow')).health).toBe('unhealthy');
    await clock.advance(1_000); // the next probe starts; the late answer of the first one changes nothing
    release.shift()!();
    await clock.advance(0);
    expect((await m.get('slow')).health).toBe('unhealthy');
    release.shift()!();
    await clock.advance(0);
    expect((await m.get('slow')).health).toBe('healthy');
    expect(maxInFlight).toBeLessThanOrEqual(2); // the abandoned probe, plus the current one
    expect(probes).toBe(2);
  });
});

describe('crash loops end', () => {
  it('a session that comes up and fails again and again backs off longer each time and ends failed', async () => {
    const env = await make({ restart: { retries: 4, minDelayMs: 100, maxDelayMs: 10_000, factor: 2, resetAfterMs: 60_000 } });
    const { manager: m, scripted: s, clock, reasons } = env;
    await readySession(env);
    s.behave('h', { health: { status: 'unhealthy' } }); // every start succeeds; every life fails its checks
    const backoffs: number[] = [];
    const readyAt: number[] = [];
    m.on('session.state', (e) => {
      if (e.id !== 'h') return;
      if (e.to === 'backoff') backoffs.push(clock.now());
      if (e.to === 'ready') readyAt.push(clock.now());
    });
    for (let i = 0; i < 60 && (await m.get('h')).state !== 'failed'; i++) await clock.advance(1_000);
    expect((await m.get('h')).state).toBe('failed');
    // Four restarts (the budget), each after a longer wait: 100, 200, 400, 800 ms.
    expect(backoffs).toHaveLength(4);
    const waits = backoffs.map((at, i) => (readyAt[i] ?? Infinity) - at);
    for (const [i, expected] of [100, 200, 400, 800].entries()) {
      expect(waits[i]).toBeGreaterThanOrEqual(expected);
      expect(waits[i]).toBeLessThan(expected + 20);
    }
    expect(reasons.filter((r) => r.id === 'h' && r.to === 'failed')).toHaveLength(1);
    expect(await m.stats('h')).toMatchObject({ restarts: 4, failures: 5 });
  });

  it('a session that stays healthy for resetAfterMs between failures gets its budget back and keeps running', async () => {
    const env = await make({ restart: { retries: 2, minDelayMs: 100, maxDelayMs: 10_000, factor: 2, resetAfterMs: 60_000 } });
    const { manager: m, scripted: s, clock } = env;
    await readySession(env);
    const waits: number[] = [];
    let backoffAt = 0;
    m.on('session.state', (e) => {
      if (e.id !== 'h') return;
      if (e.to === 'backoff') backoffAt = clock.now();
      if (e.to === 'ready' && backoffAt) waits.push(clock.now() - backoffAt);
    });
    for (let round = 0; round < 5; round++) {
      s.behave('h', { health: { status: 'healthy' } }); // healthy for a minute and more
      await clock.advance(61_000);
      s.behave('h', { health: { status: 'unhealthy' } });
      for (let i = 0; i < 10 && waits.length <= round; i++) await clock.advance(1_000);
    }
    expect((await m.get('h')).state).not.toBe('failed');
    // Five failures, more than the budget of two, but each after a healthy minute: always the first step.
    expect(waits).toHaveLength(5);
    for (const w of waits) expect(w).toBeLessThan(100 + 20);
  });
});

