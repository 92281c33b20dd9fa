import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager, defineAdapter, memoryStorage, type StorageDriver } from 'multisession';
import {
  adapterConformanceSuite,
  createManualClock,
  connectForTest,
  createAdapterTestStore,
  simulatedAdapter,
  storageConformanceSuite,
  STORAGE_SUITE_GROUPS,
} from 'multisession/testing';
import { sqliteStorage } from 'multisession/sqlite';
import { z } from 'zod';
import { collect, run } from './helpers/suite-runner.js';

const T0 = Date.UTC(2026, 0, 1);

describe('createManualClock', () => {
  it('starts at 2026-01-01 or the given time, and only moves when told', async () => {
    expect(createManualClock().now()).toBe(T0);
    const clock = createManualClock(1_000);
    expect(clock.now()).toBe(1_000);
    await new Promise((r) => setTimeout(r, 5));
    expect(clock.now()).toBe(1_000);
    await clock.advance(250);
    expect(clock.now()).toBe(1_250);
    clock.set(10);
    expect(clock.now()).toBe(10);
  });

  it('fires due timers in due-time order, each at its own time, ties in creation order', async () => {
    const clock = createManualClock(0);
    const fired: string[] = [];
    const at = (name: string) => () => fired.push(`${name}@${clock.now()}`);
    clock.setTimeout(at('c'), 30);
    clock.setTimeout(at('a'), 10);
    clock.setTimeout(at('b1'), 20);
    clock.setTimeout(at('b2'), 20);
    clock.setTimeout(at('late'), 100);
    expect(clock.pendingTimers()).toBe(5);
    await clock.advance(30);
    expect(fired).toEqual(['a@10', 'b1@20', 'b2@20', 'c@30']);
    expect(clock.now()).toBe(30);
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance(69);
    expect(fired).toHaveLength(4);
    await clock.advance(1);
    expect(fired.at(-1)).toBe('late@100');
    expect(clock.pendingTimers()).toBe(0);
  });

  it('treats negative, zero and non-numeric delays as due now', async () => {
    const clock = createManualClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(1), -5);
    clock.setTimeout(() => fired.push(2), Number.NaN);
    clock.setTimeout(() => fired.push(3), 0);
    await clock.advance(0);
    expect(fired).toEqual([1, 2, 3]);
  });

  it('clears timers; clearing twice, after firing or a foreign handle is harmless', async () => {
    const clock = createManualClock(0);
    const fired: string[] = [];
    const a = clock.setTimeout(() => fired.push('a'), 10);
    const b = clock.setTimeout(() => fired.push('b'), 10);
    clock.clearTimeout(a);
    clock.clearTimeout(a);
    clock.clearTimeout({});
    clock.clearTimeout(undefined);
    clock.clearTimeout(setTimeout(() => {}, 0));
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance(10);
    clock.clearTimeout(b);
    expect(fired).toEqual(['b']);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('hands out opaque handles', () => {
    const clock = createManualClock(0);
    const handle = clock.setTimeout(() => {}, 1) as object;
    expect(Object.keys(handle)).toEqual([]);
    expect(typeof handle).toBe('object');
  });

  it('fires timers created while advancing, within the same advance when due', async () => {
    const clock = createManualClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => {
      fired.push(`first@${clock.now()}`);
      clock.setTimeout(() => fired.push(`nested@${clock.now()}`), 5);
      clock.setTimeout(() => fired.push(`now@${clock.now()}`), 0);
      clock.setTimeout(() => fired.push(`beyond@${clock.now()}`), 50);
    }, 10);
    await clock.advance(20);
    expect(fired).toEqual(['first@10', 'now@10', 'nested@15']);
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance(40);
    expect(fired.at(-1)).toBe('beyond@60');
  });

  it('lets promise chains started by a timer settle before the next timer fires', async () => {
    const clock = createManualClock(0);
    const order: string[] = [];
    clock.setTimeout(async () => {
      await Promise.resolve();
      await new Promise((r) => setImmediate(r));
      await Promise.resolve();
      order.push('chain of the first timer done');
      // work continuing from a timer may arm the next timer: it still fires in this advance
      clock.setTimeout(() => order.push(`re-armed@${clock.now()}`), 0);
    }, 10);
    clock.setTimeout(() => order.push('second timer'), 11);
    await clock.advance(11);
    expect(order).toEqual(['chain of the first timer done', 're-armed@10', 'second timer']);
  });

  it('runs every pending timer with runAll and reports how many fired', async () => {
    const clock = createManualClock(0);
    let count = 0;
    const tick = (): void => {
      count++;
      if (count < 5) clock.setTimeout(tick, 1_000);
    };
    clock.setTimeout(tick, 1_000);
    clock.setTimeout(() => count++, 2_500);
    // ticks at 1, 2, 3 and 4 s (the fifth tick does not re-arm) and the timer at 2.5 s
    expect(await clock.runAll()).toBe(5);
    expect(count).toBe(5);
    expect(clock.now()).toBe(4_000);
    expect(clock.pendingTimers()).toBe(0);
    expect(await clock.runAll()).toBe(0);
  });

  it('stops runAll at maxTimers when a timer re-arms itself forever', async () => {
    const clock = createManualClock(0);
    const forever = (): void => void clock.setTimeout(forever, 10);
    clock.setTimeout(forever, 10);
    await expect(clock.runAll(50)).rejects.toThrow(/50 timers/);
    expect(clock.now()).toBe(500);
  });

  it('moves time with set() without firing, and fires overdue timers on the next advance', async () => {
    const clock = createManualClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 100);
    clock.set(500);
    expect(fired).toEqual([]);
    await clock.advance(0);
    expect(fired).toEqual([500]);
  });

  it('refuses bad arguments', async () => {
    const clock = createManualClock(0);
    await expect(clock.advance(-1)).rejects.toThrow(RangeError);
    await expect(clock.advance(Number.NaN)).rejects.toThrow(TypeError);
    expect(() => clock.set(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(() => createManualClock(Number.NaN)).toThrow(TypeError);
    expect(() => clock.setTimeout('code' as never, 1)).toThrow(TypeError);
    expect(() => createManualClock(0, { yieldRounds: -1 })).toThrow(TypeError);
  });

  it('rejects advance with the error a timer throws and keeps later timers pending', async () => {
    const clock = createManualClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => {
      throw new Error('timer broke');
    }, 10);
    clock.setTimeout(() => fired.push('later'), 20);
    await expect(clock.advance(30)).rejects.toThrow('timer broke');
    expect(clock.now()).toBe(10);
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance(20);
    expect(fired).toEqual(['later']);
  });

  describe('driving a SessionManager', () => {
    let manager: SessionManager | undefined;
    afterEach(async () => {
      await manager?.close();
      manager = undefined;
    });

    it('plays a simulated health script: degraded, restart with back-off, recovery', async () => {
      const clock = createManualClock();
      manager = new SessionManager({
        // threshold 2: two failures make it degraded, a third while degraded restarts it
        adapters: [simulatedAdapter({ health: ['healthy', 'unhealthy', 'unhealthy', 'unhealthy', 'healthy'] })],
        clock,
        health: { intervalMs: 1_000, timeoutMs: 500, unhealthyThreshold: 2, jitter: 0 },
        restart: { retries: 3, minDelayMs: 100, maxDelayMs: 1_000, factor: 2 },
      });
      await manager.open();
      const states: string[] = [];
      manager.on('session.state', (e) => states.push(e.to));
      await manager.create({ id: 'h', platform: 'simulated', credentials: { token: 'tok-1' } });
      await manager.start('h');
      for (let i = 0; i < 10 && states.filter((s) => s === 'ready').length < 2; i++) await clock.advance(1_000);
      expect(states).toEqual(['starting', 'ready', 'degraded', 'backoff', 'starting', 'ready']);
      // the script holds its last step (healthy): the session stays up
      await clock.advance(5_000);
      expect((await manager.get('h')).state).toBe('ready');
      expect((await manager.status('h')).restarts).toBe(1);
    });

    it('moves a session whose health script says expired to expired, without a restart loop', async () => {
      const clock = createManualClock();
      manager = new SessionManager({
        adapters: [simulatedAdapter({ health: ['healthy', 'expired'] })],
        clock,
        health: { intervalMs: 1_000, timeoutMs: 500, unhealthyThreshold: 2, jitter: 0 },
      });
      await manager.open();
      await manager.create({ id: 'e', platform: 'simulated', credentials: { token: 'tok-1' } });
      await manager.start('e');
      await clock.advance(2_000);
      const snap = await manager.waitFor('e', 'expired', { timeoutMs: 5_000 });
      expect(snap.health).toBe('expired');
      await clock.advance(60_000);
      expect((await manager.get('e')).state).toBe('expired');
    });

    it('expires an idle session when the clock passes its idle timeout', async () => {
      const clock = createManualClock();
      manager = new SessionManager({ adapters: [simulatedAdapter()], clock, idleTimeoutMs: 60_000 });
      await manager.open();
      await manager.create({ id: 'a', platform: 'simulated', credentials: { token: 'tok-1' } });
      expect((await manager.start('a')).state).toBe('ready');
      await clock.advance(59_000);
      expect((await manager.get('a')).state).toBe('ready');
      await clock.advance(1_000);
      const stopped = await manager.waitFor('a', 'stopped', { timeoutMs: 5_000 });
      expect(stopped.transitions.at(-1)?.reason).toMatch(/idle/);
    });
  });
});

describe('connectForTest', () => {
  const kvAdapter = defineAdapter({
    name: 'kv-user',
    credentials: z.object({ key: z.string().min(3) }),
    config: z.object({ mode: z.enum(['a', 'b']).default('a') }),
    connect: () => ({
      start: async () => {},
      stop: async () => {},
      health: async () => ({ status: 'healthy' as const }),
      send: async () => null,
    }),
  });

  it('checks credentials and config with the adapter schemas, naming the field', () => {
    expect(() => connectForTest(kvAdapter, { credentials: { key: 'x' } })).toThrow(
      expect.objectContaining({ code: 'VALIDATION', issues: [expect.objectContaining({ path: ['credentials', 'key'] })] }),
    );
    expect(() => connectForTest(kvAdapter, { credentials: { key: 'abc' }, config: { mode: 'c' } })).toThrow(/config\.mode/);
    const t = connectForTest(kvAdapter, { credentials: { key: 'abc' } });
    expect(t.ctx.config).toEqual({ mode: 'a' });
    expect(t.ctx.platform).toBe('kv-user');
    expect(t.ctx.id).toBe('test-session');
  });

  it('gives each session its own KV and auth state, with copies and JSON checks', async () => {
    const store = createAdapterTestStore();
    const a = connectForTest(kvAdapter, { id: 'a', credentials: { key: 'abc' }, store });
    const b = connectForTest(kvAdapter, { id: 'b', credentials: { key: 'abc' }, store });
    const value = { list: [1] };
    await a.ctx.kv.set('h:2', value);
    value.list.push(2);
    await a.ctx.kv.batch([
      { op: 'set', key: 'h:1', value: 'one' },
      { op: 'set', key: 'x', value: null },
    ]);
    await a.ctx.authState.set('session', 'blob');
    expect(await a.ctx.kv.get('h:2')).toEqual({ list: [1] });
    expect(await a.ctx.kv.get('x')).toBeNull();
    expect((await a.ctx.kv.list({ prefix: 'h:' })).map((e) => e.key)).toEqual(['h:1', 'h:2']);
    expect(await b.ctx.kv.list()).toEqual([]);
    expect(await b.ctx.authState.get('session')).toBeUndefined();
    await expect(a.ctx.kv.set('bad', (() => 1) as never)).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(a.ctx.kv.batch([{ op: 'set', key: 'ok', value: 1 }, { op: 'set', key: '', value: 1 }])).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    expect(await a.ctx.kv.get('ok')).toBeUndefined();
    expect(await a.ctx.kv.clear({ prefix: 'h:' })).toBe(2);
    expect([...store.sessions.get('a')!.kv.keys()]).toEqual(['x']);
    expect([...a.authState.keys()]).toEqual(['session']);
  });

  it('records logs, counters, messages, expiry, failures and touches', () => {
    const t = connectForTest(kvAdapter, { credentials: { key: 'abc' } });
    t.ctx.log.info('hello', { n: 1 });
    t.ctx.log.error('bad');
    t.ctx.stats.increment('bids');
    t.ctx.stats.increment('bids', 2);
    t.ctx.emitMessage({ text: 'in' });
    t.ctx.expired('token revoked');
    t.ctx.fail(new Error('socket closed'));
    t.ctx.touch();
    expect(t.logs).toEqual([
      { level: 'info', msg: 'hello', data: { n: 1 } },
      { level: 'error', msg: 'bad' },
    ]);
    expect(t.stats).toEqual({ bids: 3 });
    expect(t.messages).toEqual([{ text: 'in' }]);
    expect(t.expired).toEqual(['token revoked']);
    expect(t.failures).toHaveLength(1);
    expect(t.touches).toBe(1);
  });

  it('keeps an auth request pending until answered, and rejects it when stopped', async () => {
    const t = connectForTest(kvAdapter, { credentials: { key: 'abc' } });
    const code = t.ctx.auth.request('code', { data: { hint: '+1 ***' } });
    expect(t.requests).toEqual([{ kind: 'code', data: { hint: '+1 ***' }, expiresAt: null }]);
    await t.answer('code', '4242');
    expect(await code).toBe('4242');
    const password = t.ctx.auth.request('password');
    await t.stop();
    expect(t.ctx.signal.aborted).toBe(true);
    await expect(password).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(t.ctx.auth.request('code')).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('answers requests and QR codes on its own when given answers', async () => {
    const t = connectForTest(simulatedAdapter({ auth: 'qr' }), {
      credentials: { token: 'tok-1' },
      auth: { qr: () => 'not-a-code' },
    });
    let settled = false;
    const start = t.connection.start().finally(() => (settled = true));
    // The kit answers on a later turn of the event loop: wait for turns, not for time.
    for (let i = 0; i < 50 && t.authErrors.length === 0; i++) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    // the wrong scan is recorded and the login stays pending
    expect(settled).toBe(false);
    expect(t.authErrors).toHaveLength(1);
    expect(t.authErrors[0]).toMatchObject({ code: 'VALIDATION' });
    await t.stop();
    await expect(start).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

// ------------------------------------------------------------------------------------------
// The suites must be able to fail: run them with a tiny in-process runner on implementations
// that each break one invariant, and check that the matching tests fail and the rest pass.
// ------------------------------------------------------------------------------------------

async function storageRun(make: () => StorageDriver): Promise<{ passed: string[]; failed: string[] }> {
  return run(
    collect((runner) =>
      storageConformanceSuite(runner, async () => {
        const store = make();
        await store.init();
        return store;
      }),
    ),
  );
}

type Overrides = { [K in 'sessions' | 'kv' | 'counters' | 'history' | 'audit']?: Partial<NonNullable<StorageDriver[K]>> };

/** The memory driver with methods of its capabilities replaced. */
function brokenMemory(patch: (inner: StorageDriver) => Overrides): () => StorageDriver {
  return () => {
    const inner = memoryStorage();
    const o = patch(inner);
    return {
      ...inner,
      sessions: { ...inner.sessions, ...o.sessions },
      kv: { ...inner.kv!, ...o.kv },
      counters: { ...inner.counters!, ...o.counters },
      history: { ...inner.history!, ...o.history },
      audit: { ...inner.audit!, ...o.audit },
    };
  };
}

describe('storageConformanceSuite can fail', () => {
  it('passes the memory driver completely', async () => {
    const { passed, failed } = await storageRun(() => memoryStorage());
    expect(failed).toEqual([]);
    expect(passed.length).toBeGreaterThan(50);
  });

  it('catches a driver without compare-and-swap', async () => {
    const { failed } = await storageRun(
      brokenMemory((inner) => ({
        sessions: {
          async update(id, patch, _expectedVersion, options) {
            const current = await inner.sessions.get(id);
            return inner.sessions.update(id, patch, current?.version ?? 1, options);
          },
        },
      })),
    );
    expect(failed).toContain('versioning > returns null for a stale version (a lost compare-and-swap is an outcome) and changes nothing');
    expect(failed.every((n) => n.startsWith('versioning') || n.startsWith('sessions'))).toBe(true);
  });

  it('catches a kvWrite that applies operations one by one', async () => {
    const { failed } = await storageRun(
      brokenMemory((inner) => ({
        kv: {
          async write(id, ops) {
            for (const op of ops) await inner.kv!.write(id, [op]);
          },
        },
      })),
    );
    expect(failed.filter((n) => n.startsWith('kv-atomicity'))).toHaveLength(5);
  });

  it('catches a SQL-LIKE style prefix match', async () => {
    const like = (prefix: string) => new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/_/g, '.').replace(/%/g, '.*')}`);
    const { failed } = await storageRun(
      brokenMemory((inner) => ({
        kv: {
          async list(id, options) {
            const all = await inner.kv!.list(id);
            return options?.prefix ? all.filter((e) => like(options.prefix!).test(e.key)) : all;
          },
        },
      })),
    );
    expect(failed).toEqual(['kv-list > treats _ % and \\ in a prefix literally']);
  });

  it('catches an audit log listed oldest first and a history that is not trimmed', async () => {
    const { failed } = await storageRun(
      brokenMemory((inner) => ({
        audit: {
          async list(query) {
            return (await inner.audit!.list({ ...query, limit: 100_000 })).reverse().slice(0, query.limit ?? 100);
          },
        },
        history: {
          append(entries) {
            return inner.history!.append(entries, 1_000);
          },
        },
      })),
    );
    expect(failed.some((n) => n.startsWith('audit'))).toBe(true);
    expect(failed).toContain('transitions > keeps at most keepPerSession entries per session');
  });

  it('catches a driver whose records share state with the caller', async () => {
    const { failed } = await storageRun(
      brokenMemory((inner) => {
        const handedOut = new Map<string, Awaited<ReturnType<StorageDriver['sessions']['get']>>>();
        return {
          sessions: {
            async get(id) {
              if (!handedOut.has(id)) handedOut.set(id, await inner.sessions.get(id));
              return handedOut.get(id) ?? null;
            },
          },
        };
      }),
    );
    expect(failed).toContain('sessions > returns copies: mutating a returned record changes nothing stored');
  });

  it('catches a driver that throws on a lost compare-and-swap instead of returning null', async () => {
    const { failed } = await storageRun(
      brokenMemory((inner) => ({
        sessions: {
          async update(id, patch, expectedVersion) {
            const updated = await inner.sessions.update(id, patch, expectedVersion);
            if (!updated) throw Object.assign(new Error('conflict'), { code: 'CONFLICT' });
            return updated;
          },
        },
      })),
    );
    expect(failed).toContain('versioning > returns null for a stale version (a lost compare-and-swap is an outcome) and changes nothing');
    expect(failed).toContain('versioning > returns null when updating a missing session, and creates nothing');
  });

  it('needs no open/closed bookkeeping in the driver: the suite guards it as the manager does', async () => {
    const { failed } = await storageRun(() => {
      const inner = memoryStorage();
      let open = true;
      return {
        ...inner,
        init: async () => {
          open = true;
          await inner.init();
        },
        close: async () => {
          open = false; // the inner store stays open: calls still reach it
        },
        ping: async () => {
          if (!open) throw new Error('closed');
        },
      };
    });
    expect(failed).toEqual([]);
  });

  it('switches groups off with skip', async () => {
    const tests = collect((runner) =>
      storageConformanceSuite(runner, async () => memoryStorage(), { skip: ['audit', 'kv-list'], name: 'x' }),
    );
    expect(tests.some((t) => t.name.startsWith('audit'))).toBe(false);
    expect(tests.some((t) => t.name.startsWith('kv-list'))).toBe(false);
    expect(tests.some((t) => t.name.startsWith('unreadable-rows'))).toBe(false);
    const withCorrupt = collect((runner) =>
      storageConformanceSuite(runner, async () => memoryStorage(), { corruptRow: async () => {} }),
    );
    expect(withCorrupt.filter((t) => t.name.startsWith('unreadable-rows'))).toHaveLength(2);
  });
});

// These adapters have no platform to revoke a token on, answer 429 or queue messages: the groups
// that need one are checked in adapter-suite-platform.test.ts.
const NEEDS_A_PLATFORM = ['expiry', 'rate-limit', 'delivery'] as const;

describe('adapterConformanceSuite can fail', () => {
  const adapterRun = (options: Parameters<typeof adapterConformanceSuite>[1]) =>
    run(collect((runner) => adapterConformanceSuite(runner, { settleTimeoutMs: 300, skip: NEEDS_A_PLATFORM, ...options })));
  const base = {
    credentials: z.object({ apiKey: z.string().min(1) }),
    config: z.object({ region: z.string().default('eu') }),
  };
  const credentials = { apiKey: 'sk-live-123456' };

  it('passes a well-behaved adapter', async () => {
    const good = defineAdapter({
      name: 'good',
      ...base,
      connect: () => ({ start: async () => {}, stop: async () => {}, health: async () => ({ status: 'healthy' as const }), send: async () => ({ ok: true }) }),
    });
    const { failed } = await adapterRun({ adapter: good, credentials });
    expect(failed).toEqual([]);
  });

  it('catches leaked credentials, invalid health and a ref\'d timer left after stop', async () => {
    const bad = defineAdapter({
      name: 'leaky',
      ...base,
      connect(ctx) {
        return {
          async start() {
            ctx.log.info(`logging in with ${ctx.credentials.apiKey}`);
          },
          async stop() {
            setTimeout(() => {}, 50); // a reconnect timer nobody cancels
          },
          health: async () => ({ status: 'fine' as never }),
          send: async () => undefined,
        };
      },
    });
    const { failed } = await adapterRun({ adapter: bad, credentials });
    expect(failed).toContain('secrets > never writes the credentials into logs, messages, health or results');
    expect(failed).toContain("lifecycle > starts, reports health, sends and stops, leaving no ref'd timer");
    expect(failed).toContain('lifecycle > reports valid health on repeated checks');
  });

  it('catches login state shared between sessions, a second stop that throws, and a start deaf to the signal', async () => {
    let loggedIn = false; // module-level state: shared by every session
    const bad = defineAdapter({
      name: 'shared',
      ...base,
      connect(ctx) {
        let stops = 0;
        return {
          async start() {
            if (!loggedIn) {
              await ctx.auth.request('code');
              loggedIn = true;
            }
          },
          async stop() {
            if (++stops > 1) throw new Error('already stopped');
          },
          health: async () => ({ status: 'healthy' as const }),
          send: async () => null,
        };
      },
    });
    const { failed } = await adapterRun({ adapter: bad, credentials, auth: { code: '1' } });
    expect(failed).toContain("isolation > never reads or writes another session's KV, nor shares its login");
    expect(failed).toContain('stop > stops twice without error');

    const deaf = defineAdapter({
      name: 'deaf',
      ...base,
      connect: () => ({
        start: () => new Promise<void>(() => {}),
        stop: async () => {},
        health: async () => ({ status: 'healthy' as const }),
        send: async () => null,
      }),
    });
    const deafRun = await adapterRun({ adapter: deaf, credentials, skip: ['lifecycle', 'stop', 'unhandled', 'isolation', 'secrets'] });
    expect(deafRun.failed).toContain('abort > ends a start that waits (for login or anything) when ctx.signal aborts');
  });

  it('catches schemas that accept anything', async () => {
    const lax = defineAdapter({
      name: 'lax',
      credentials: z.any(),
      config: z.any(),
      connect: () => ({ start: async () => {}, stop: async () => {}, health: async () => ({ status: 'healthy' as const }), send: async () => null }),
    });
    const { failed } = await adapterRun({ adapter: lax, credentials, skip: ['lifecycle', 'stop', 'abort', 'unhandled', 'isolation', 'secrets', 'failed-start'] });
    expect(failed).toContain('schemas > refuses bad credentials');
    expect(failed).toContain('schemas > refuses bad config');
  });
});

// The opt-in `shared-store` group needs a store that two handles can open: run it on SQLite
// files (two drivers on one file, as two processes would), so the group itself is exercised.
describe('storageConformanceSuite shared-store group', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ms-kit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fileOf = new WeakMap<StorageDriver, string>();
  let n = 0;
  storageConformanceSuite(
    { describe, it, expect, beforeEach, afterEach },
    async () => {
      const filename = join(dir, `s-${++n}.db`);
      const store = sqliteStorage({ filename });
      await store.init();
      fileOf.set(store, filename);
      return store;
    },
    {
      name: 'sqlite, two handles',
      skip: STORAGE_SUITE_GROUPS.filter((g) => g !== 'shared-store' && g !== 'duplicate-credentials' && g !== 'session-exists'),
      reopen: async (store) => sqliteStorage({ filename: fileOf.get(store)! }),
    },
  );
});

describe('connectForTest: ctx.units', () => {
  it('shows the units given, in groups of at most groupSize, and announces setUnits changes until the connection stops', async () => {
    const seen: { added: string[]; removed: string[]; groups: string[][] }[] = [];
    const workers = defineAdapter({
      name: 'workers',
      credentials: z.undefined(),
      config: z.object({}),
      connect(ctx) {
        return {
          async start() {
            ctx.units.onChange((c) => void seen.push({ added: c.added, removed: c.removed, groups: c.groups.map((g) => g.units.map((u) => u.id)) }));
          },
          async stop() {},
          async health() {
            return { status: 'healthy' as const };
          },
          async send() {},
        };
      },
    });
    const t = connectForTest(workers, { units: [{ id: 'a' }, { id: 'b' }, { id: 'c', kind: 'chat', data: { chat: 1 } }], groupSize: 2 });
    await t.connection.start();
    expect(t.ctx.units.groups.map((g) => g.units.map((u) => u.id))).toEqual([['a', 'c'], ['b']]);
    expect(t.ctx.units.list.find((u) => u.id === 'c')).toMatchObject({ kind: 'chat', data: { chat: 1 } });
    t.setUnits([{ id: 'a' }, { id: 'd' }]);
    expect(seen).toEqual([{ added: ['d'], removed: ['b', 'c'], groups: [['a', 'd']] }]);
    await t.stop();
    t.setUnits([]);
    expect(seen).toHaveLength(1);
  });
});
