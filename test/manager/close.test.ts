import { describe, expect, it } from 'vitest';
import { ManagerClosedError, SessionManager, memoryStorage, systemClock, type Clock } from 'multisession';
import { simulatedAdapter } from 'multisession/testing';
import { scriptedAdapter } from '../helpers/scripted-adapter.js';

// These tests run on real time (no manual clock): short health intervals, real timers.

/** Active handles/requests by type, as Node reports them. */
function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

/** The real clock, counting the timers it holds (Node does not list unref'd timers as active). */
function countingClock() {
  const live = new Set<unknown>();
  let created = 0;
  const clock: Clock = {
    now: () => systemClock.now(),
    setTimeout(fn, ms) {
      created++;
      const handle: unknown = systemClock.setTimeout(() => {
        live.delete(handle);
        fn();
      }, ms);
      live.add(handle);
      return handle;
    },
    clearTimeout(handle) {
      live.delete(handle);
      systemClock.clearTimeout(handle);
    },
  };
  return { clock, live, created: () => created };
}

const until = async (check: () => boolean | Promise<boolean>) => {
  while (!(await check())) await new Promise((r) => setTimeout(r, 5));
};

/** A manager with sessions in every live situation: ready, health hanging, authenticating, backoff, starting. */
async function busyManager(options: { clock?: Clock; storage?: ReturnType<typeof memoryStorage> } = {}) {
  const scripted = scriptedAdapter();
  const manager = new SessionManager({
    ...options,
    adapters: [
      simulatedAdapter({ name: 'sim', startDelayMs: 2 }),
      simulatedAdapter({ name: 'hung', hangOnHealth: true }),
      simulatedAdapter({ name: 'codey', auth: 'code' }),
      scripted.adapter,
    ],
    health: { intervalMs: 10, timeoutMs: 5, unhealthyThreshold: 2, jitter: 0.5 },
    restart: { retries: 3, minDelayMs: 60_000, maxDelayMs: 60_000, factor: 1 },
    idleTimeoutMs: 60_000,
    authTimeoutMs: 60_000,
  });
  await manager.open();
  const health: string[] = [];
  manager.on('session.health', (e) => health.push(`${e.id}:${e.health}`));
  for (let i = 0; i < 5; i++) await manager.create({ id: `sim-${i}`, platform: 'sim', credentials: { token: `t-${i}` } });
  await manager.create({ id: 'hung', platform: 'hung', credentials: { token: 'h' } });
  await manager.create({ id: 'codey', platform: 'codey', credentials: { token: 'c' } });
  await manager.create({ id: 'flaky', platform: 'scripted' });
  await manager.create({ id: 'gated', platform: 'scripted', config: { mode: 'gate' } });
  scripted.behave('flaky', { failStarts: 100 });
  for (let i = 0; i < 5; i++) expect((await manager.start(`sim-${i}`)).state).toBe('ready');
  expect((await manager.start('hung')).state).toBe('ready');
  expect((await manager.start('codey')).state).toBe('authenticating');
  expect((await manager.start('flaky')).state).toBe('backoff');
  void manager.start('gated');
  // Let health checks run (and time out on the hung one) before closing.
  await until(() => health.filter((h) => h === 'hung:unhealthy').length >= 1 && health.length >= 1);
  await until(async () => (await manager.get('hung')).state !== 'ready' || health.filter((h) => h === 'hung:unhealthy').length >= 2);
  return { manager, scripted, health };
}

describe('close()', () => {
  it('leaves no active handle or timer behind (real clock)', async () => {
    const before = resources();
    const { manager } = await busyManager();
    await manager.close();
    await new Promise((r) => setImmediate(r));
    const after = resources();
    // vitest's own handles (its IPC pipe, file reads) come and go: compare what the manager could hold.
    for (const type of ['Timeout', 'Immediate', 'TCPWrap', 'TCPServerWrap', 'UDPWrap']) {
      expect(after[type] ?? 0, type).toBeLessThanOrEqual(before[type] ?? 0);
    }
  });

  it('cancels every timer it armed on the clock, and nothing fires afterwards', async () => {
    const counting = countingClock();
    const { manager, scripted } = await busyManager({ clock: counting.clock });
    expect(counting.created()).toBeGreaterThan(0);
    expect(counting.live.size).toBeGreaterThan(0);
    const after: string[] = [];
    const names = ['session.state', 'session.health', 'session.error', 'session.auth', 'manager.error'] as const;
    await manager.close();
    for (const n of names) manager.on(n, () => after.push(n));
    expect(counting.live.size).toBe(0);
    const timersAtClose = counting.created();
    // Give any stray timer the chance to fire; none may run and none may be armed.
    await new Promise((r) => setTimeout(r, 50));
    expect(after).toEqual([]);
    expect(counting.created()).toBe(timersAtClose);
    expect(scripted.last('gated').stopped).toBe(true);
    expect(scripted.last('gated').ctx.signal.aborted).toBe(true);
  });

  it('stops every session gracefully and keeps the desired states, so the next open() restores them', async () => {
    const storage = memoryStorage();
    const { manager } = await busyManager({ storage });
    const states: string[] = [];
    manager.on('session.state', (e) => states.push(`${e.id}:${e.to}:${e.reason}`));
    const desiredBefore = Object.fromEntries((await manager.list()).items.map((s) => [s.id, s.desiredState]));
    expect(desiredBefore['sim-0']).toBe('running');
    expect((await storage.sessions.get('sim-0'))!.desiredState).toBe('running');
    await manager.close();
    expect(states.filter((s) => s.endsWith(':stopped:manager closing')).length).toBe(Object.keys(desiredBefore).length);
    await expect(manager.get('sim-0')).rejects.toBeInstanceOf(ManagerClosedError);

    // The same (memory) store, opened again: the records still say running.
    await storage.init();
    for (const [id, desired] of Object.entries(desiredBefore)) expect((await storage.sessions.get(id))!.desiredState, id).toBe(desired);
    await storage.close();

    // A new manager on it brings the running ones back.
    // (open() waits for each restored session's first attempt: the gated one gives up at startTimeoutMs.)
    const next = new SessionManager({
      storage,
      adapters: [simulatedAdapter({ name: 'sim' }), simulatedAdapter({ name: 'hung' }), simulatedAdapter({ name: 'codey', auth: 'code' }), scriptedAdapter().adapter],
      startTimeoutMs: 20,
    });
    await next.open();
    try {
      expect((await next.get('sim-3')).state).toBe('ready');
      expect((await next.get('codey')).state).toBe('authenticating');
      expect((await next.get('gated')).state).toBe('backoff');
      expect((await next.list({ desiredState: 'running' })).items.map((s) => s.id).sort()).toEqual(
        Object.entries(desiredBefore).filter(([, d]) => d === 'running').map(([id]) => id).sort(),
      );
    } finally {
      await next.close();
    }
  });

  it('a waitFor still pending when the manager closes settles instead of hanging', async () => {
    const manager = new SessionManager({ adapters: [scriptedAdapter().adapter] });
    await manager.open();
    await manager.create({ id: 'a', platform: 'scripted', config: { mode: 'gate' } });
    let outcome: unknown = 'pending';
    manager.waitFor('a', 'ready', { timeoutMs: 60_000 }).then(
      (s) => (outcome = s.state),
      (e: unknown) => (outcome = e),
    );
    await manager.close();
    for (let i = 0; i < 20 && outcome === 'pending'; i++) await new Promise((r) => setImmediate(r));
    expect(outcome).toBeInstanceOf(ManagerClosedError);
  });

  it('late calls from a connection after close() change nothing and raise no manager.error', async () => {
    const scripted = scriptedAdapter();
    const manager = new SessionManager({ adapters: [scripted.adapter] });
    await manager.open();
    await manager.create({ id: 'a', platform: 'scripted' });
    await manager.start('a');
    const ctx = scripted.last('a').ctx;
    const errors: string[] = [];
    manager.on('manager.error', (e) => errors.push(e.error.message));
    await manager.close();
    ctx.stats.increment('late');
    ctx.emitMessage('late');
    ctx.touch();
    ctx.log.info('late');
    ctx.fail(new Error('late'));
    ctx.expired('late');
    await ctx.kv.set('late', 1).catch(() => undefined);
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(errors).toEqual([]);
  });

  it('a waitFor() with a timeout holds no handle once it has settled (resolved, timed out, aborted, or closed)', async () => {
    const before = resources();
    const manager = new SessionManager({ adapters: [scriptedAdapter().adapter] });
    await manager.open();
    await manager.create({ id: 'a', platform: 'scripted' });
    await manager.create({ id: 'g', platform: 'scripted', config: { mode: 'gate' } });
    const resolved = manager.waitFor('a', 'ready', { timeoutMs: 600_000 });
    await manager.start('a');
    await resolved;
    await expect(manager.waitFor('g', 'ready', { timeoutMs: 20 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    const ac = new AbortController();
    const aborted = manager.waitFor('g', 'ready', { timeoutMs: 600_000, signal: ac.signal }).catch((e: unknown) => e);
    ac.abort(new Error('no longer needed'));
    await aborted;
    const atClose = manager.waitFor('g', 'ready', { timeoutMs: 600_000 }).catch((e: unknown) => e);
    await manager.close();
    expect(await atClose).toBeInstanceOf(ManagerClosedError);
    await new Promise((r) => setImmediate(r));
    expect(resources().Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0);
  });

  it('await using closes the manager (Symbol.asyncDispose)', async () => {
    const scripted = scriptedAdapter();
    const counting = countingClock();
    let kept: SessionManager;
    {
      await using manager = new SessionManager({ adapters: [scripted.adapter], clock: counting.clock, health: { intervalMs: 10, timeoutMs: 5 } });
      kept = manager;
      await manager.open();
      await manager.create({ id: 'a', platform: 'scripted' });
      expect((await manager.start('a')).state).toBe('ready');
      expect(counting.live.size).toBeGreaterThan(0);
    }
    expect(scripted.last('a').stopped).toBe(true);
    expect(counting.live.size).toBe(0);
    await expect(kept.get('a')).rejects.toBeInstanceOf(ManagerClosedError);
    await expect(kept.open()).rejects.toBeInstanceOf(ManagerClosedError);
  });

  it('a manager that was never opened closes cleanly, and cannot be opened afterwards', async () => {
    {
      await using unused = new SessionManager({ adapters: [scriptedAdapter().adapter] });
      void unused;
    }
    const m = new SessionManager({ adapters: [scriptedAdapter().adapter] });
    await m.close();
    await expect(m.open()).rejects.toBeInstanceOf(ManagerClosedError);
  });

  it('close() during open() and close() twice are safe', async () => {
    const manager = new SessionManager({ adapters: [scriptedAdapter().adapter] });
    const opening = manager.open();
    const closing = manager.close();
    await opening.catch(() => undefined);
    await closing;
    await expect(manager.close()).resolves.toBeUndefined();
    await expect(manager.list()).rejects.toBeInstanceOf(ManagerClosedError);
  });
});
