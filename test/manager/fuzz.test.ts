import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MultisessionError, SessionManager, SessionNotFoundError, canTransition, defineAdapter, type HealthReport, type JsonValue, type SessionManagerEventPayload, type SessionManagerOptions, type SessionState } from 'multisession';
import { sqliteStorage } from 'multisession/sqlite';
import { postgresStorage } from 'multisession/postgres';
import { PG_URL, postgresForTests } from '../helpers/postgres.js';
import { setup, storageOf } from '../helpers/setup.js';
import { createManualClock } from 'multisession/testing';
import { z } from 'zod';
import { settle } from '../helpers/scripted-adapter.js';

/** A small deterministic PRNG, so a failing seed can be replayed. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const IDS = ['s0', 's1', 's2', 's3'];
const MODES = ['auto', 'auto', 'gate', 'code', 'qr', 'password'] as const;

/**
 * Random control calls, adapter callbacks, health changes and time, fired without waiting for
 * each other. After every step the invariants must hold: every session's state events form a
 * chain allowed by TRANSITIONS and end where the snapshot is; a session has at most one live
 * connection, none when it is at rest; no manager.error; every call settles with a typed error
 * or a result.
 */
async function run(seed: number, steps: number, options: Partial<SessionManagerOptions> = {}) {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const { manager: m, scripted: s, clock } = await setup({ restart: { retries: 2, minDelayMs: 100, maxDelayMs: 400, factor: 2 }, ...options });
  const states: SessionManagerEventPayload<'session.state'>[] = [];
  const managerErrors: unknown[] = [];
  m.on('session.state', (e) => states.push(e));
  m.on('manager.error', (e) => managerErrors.push(e.error));
  for (const id of IDS) await m.create({ id, platform: 'scripted', credentials: { token: `token-${id}` } });
  const calls: Promise<unknown>[] = [];
  const log: string[] = [];
  const fire = (what: string, p: Promise<unknown>) => {
    log.push(what);
    calls.push(p.then(() => undefined, (e: unknown) => {
      if (!(e instanceof MultisessionError)) throw new Error(`${what} rejected with an untyped error: ${String(e)}`, { cause: e });
    }));
  };
  const lastConn = (id: string) => s.connections(id).at(-1);
  // A deleted and re-created session is another session: its generation, and the connections it started from.
  const gen = new Map(IDS.map((id) => [id, 0]));
  const connOffset = new Map(IDS.map((id) => [id, 0]));
  const recreate = async (id: string) => {
    await m.delete(id, { force: true });
    connOffset.set(id, s.connections(id).length);
    await m.create({ id, platform: 'scripted', credentials: { token: `token-${id}-${step}` } });
    gen.set(id, gen.get(id)! + 1);
  };
  let step = 0;
  const recreating: Promise<unknown>[] = [];

  for (step = 0; step < steps; step++) {
    const id = pick(IDS);
    const r = rand();
    if (r < 0.1) fire(`start ${id}`, m.start(id));
    else if (r < 0.16) fire(`stop ${id}`, m.stop(id));
    else if (r < 0.21) fire(`restart ${id}`, m.restart(id));
    else if (r < 0.25) fire(`update ${id}`, m.update(id, { config: { mode: pick(MODES) } }));
    else if (r < 0.27) fire(`labels ${id}`, m.update(id, { labels: { n: String(step) } }));
    else if (r < 0.33) fire(`code ${id}`, m.submitAuth(id, { kind: pick(['code', 'password'] as const), value: pick(['12345', 'secret', 'nope']) }));
    else if (r < 0.38) fire(`send ${id}`, m.send(id, { text: `m${step}` }));
    else if (r < 0.46) {
      log.push(`health ${id}`);
      s.behave(id, { health: pick([{ status: 'healthy' }, { status: 'healthy' }, { status: 'unhealthy' }, { status: 'unhealthy' }, 'hang', 'throw', { status: 'expired' }] as const) });
    } else if (r < 0.49) {
      log.push(`failStarts ${id}`);
      s.behave(id, { failStarts: s.connections(id).length + Math.floor(rand() * 3) });
    } else if (r < 0.55) {
      log.push(`gate ${id}`);
      lastConn(id)?.gate.resolve();
    } else if (r < 0.6) {
      log.push(`fail ${id}`);
      lastConn(id)?.ctx.fail(new Error('socket closed'));
    } else if (r < 0.62) {
      log.push(`expired ${id}`);
      lastConn(id)?.ctx.expired('revoked');
    } else if (r < 0.64) {
      log.push(`message ${id}`);
      lastConn(id)?.ctx.emitMessage({ n: step });
    } else if (r < 0.67) {
      log.push(`reauth ${id}`);
      lastConn(id)?.ctx.auth.request(pick(['code', 'password'] as const)).catch(() => undefined);
    } else if (r < 0.69) fire(`logout ${id}`, m.logout(id));
    else if (r < 0.7) fire(`clear ${id}`, m.clear(id));
    else if (r < 0.72) {
      const p = recreate(id);
      recreating.push(p.catch(() => undefined));
      fire(`recreate ${id}`, p);
    }
    else if (r < 0.76) {
      log.push(`kv ${id}`);
      const g = gen.get(id)!;
      void lastConn(id)?.ctx.kv.set(`g${g}-${step}`, step).catch(() => undefined);
    }
    else {
      const ms = Math.floor(rand() * 2_500);
      log.push(`advance ${ms}`);
      await clock.advance(ms);
    }
    await settle(3);

    for (const sid of IDS) {
      const where = `seed ${seed} step ${step} (${log.slice(-6).join(' | ')}) session ${sid}`;
      let at: SessionState = 'stopped';
      for (const e of states.filter((x) => x.id === sid)) {
        expect(e.from, `${where}: ${e.from}->${e.to} follows ${at}`).toBe(at);
        expect(canTransition(e.from, e.to), `${where}: ${e.from}->${e.to}`).toBe(true);
        at = e.to;
      }
      // Between delete and re-create (a slow store) the id is free: nothing to check this step.
      const snap = await m.get(sid).catch((e: unknown) => {
        if (e instanceof SessionNotFoundError) return null;
        throw e;
      });
      if (!snap) continue;
      expect(snap.state, where).toBe(at);
      const live = s.connections(sid).filter((c) => !c.stopped).length;
      expect(live, `${where}: live connections in ${snap.state}`).toBeLessThanOrEqual(1);
      if (snap.state === 'stopped' || snap.state === 'failed' || snap.state === 'expired') expect(live, `${where}: at rest in ${snap.state}`).toBe(0);
      if (snap.state === 'stopped') expect(snap.health, `${where}: health when stopped`).toBe('unknown');
      if (snap.state === 'expired') expect(['expired', 'unauthorized'], `${where}: health when expired`).toContain(snap.health);
      if (snap.state === 'ready' || snap.state === 'degraded') expect(snap.auth, `${where}: auth when up`).toBeNull();
      if (snap.state === 'authenticating') expect(snap.auth, `${where}: auth info while authenticating`).not.toBeNull();
    }
    expect(managerErrors, `seed ${seed} step ${step}`).toEqual([]);
    // No session sees context data written by an earlier session of the same id.
    for (const sid of IDS) {
      const keys = await (async () => m.kv(sid).list())().then((l) => l.map((e) => e.key), () => [] as string[]);
      const g = gen.get(sid)!;
      expect(keys.filter((k) => !k.startsWith(`g${g}-`)), `seed ${seed} step ${step} ${sid} kv`).toEqual([]);
    }
  }
  await Promise.all(recreating);
  // Every attempt made exactly one connection (connect() never throws here), and was counted.
  for (const id of IDS) expect((await m.stats(id)).starts, `seed ${seed}: ${id} starts`).toBe(s.connections(id).length - connOffset.get(id)!);
  // The write-behind store agrees with the live view once flushed.
  await m.audit({ limit: 1 });
  for (const id of IDS) {
    const snap = await m.get(id);
    const stored = (await storageOf(m).sessions.get(id))!;
    expect({ state: stored.state, health: stored.health, lastError: stored.lastError, desired: stored.desiredState }, `seed ${seed}: ${id} stored`).toEqual({
      state: snap.state,
      health: snap.health,
      lastError: snap.lastError,
      desired: snap.desiredState,
    });
    const history = await storageOf(m).history!.list(id, 1_000);
    expect(history.map(({ from, to, reason, at }) => ({ from, to, reason, at })).slice(-snap.transitions.length), `seed ${seed}: ${id} history`).toEqual(snap.transitions);
  }
  if (process.env.FUZZ_DEBUG) console.log('generations', [...gen.values()], 'kv', await Promise.all(IDS.map(async (id) => (await m.kv(id).list()).length)));
  if (process.env.FUZZ_DEBUG) console.log('edges', [...new Set(states.map((e) => `${e.from}->${e.to}`))].sort().join(' '));
  await m.close();
  await Promise.all(calls);
  for (const id of IDS) expect(s.connections(id).every((c) => c.stopped), `seed ${seed}: ${id} left a connection open`).toBe(true);
  return log.length;
}

/** FUZZ_SEEDS=200 runs 200 seeds (from FUZZ_FROM, default 1) for a deeper search; the default run keeps eight. */
const SEEDS = Array.from({ length: Number(process.env.FUZZ_SEEDS ?? 8) }, (_, i) => Number(process.env.FUZZ_FROM ?? 1) + i);

describe('randomised control, adapter and time events keep every invariant', () => {
  it.each(SEEDS)('seed %i', async (seed) => {
    expect(await run(seed, 250)).toBe(250);
  });
});

describe('the same on a real SQLite file (write-behind against a persistent store)', () => {
  it.each([11, 12])('seed %i', async (seed) => {
    const dir = mkdtempSync(join(tmpdir(), 'multisession-fuzz-'));
    try {
      const storage = sqliteStorage({ filename: join(dir, 'sessions.db') });
      expect(await run(seed, 150, { storage, secretKey: randomBytes(32).toString('base64') })).toBe(150);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** PostgreSQL at MULTISESSION_PG_URL, in a throw-away schema; skipped when unreachable, except under CI. */
const { reachable: pgReachable, freshSchema } = await postgresForTests('ms_fuzz');

(pgReachable ? describe : describe.skip)('the same on PostgreSQL (a store whose calls really interleave)', () => {
  it.each([21, 22])('seed %i', async (seed) => {
    const storage = postgresStorage({ connectionString: PG_URL }, { schema: freshSchema(), poolSize: 4 });
    expect(await run(seed, 150, { storage, secretKey: randomBytes(32).toString('base64') })).toBe(150);
  });
});

(pgReachable ? describe : describe.skip)('delete and re-create on PostgreSQL while writes are behind', () => {
  it('the new session never inherits the deleted one\'s counters, history or context data', async () => {
    const storage = postgresStorage({ connectionString: PG_URL }, { schema: freshSchema(), poolSize: 4 });
    const { manager: m, scripted: s } = await setup({ storage, secretKey: randomBytes(32).toString('base64') });
    const dirty: string[] = [];
    try {
      for (let round = 0; round < 40; round++) {
        await m.create({ id: 'x', platform: 'scripted' });
        await m.start('x');
        s.last('x').ctx.stats.increment('bids', 3);
        s.last('x').ctx.emitMessage({ n: round });
        await m.send('x', { text: 'hi' });
        await new Promise((r) => setImmediate(r)); // let the write-behind batch start
        await m.delete('x', { force: true });
        await m.create({ id: 'x', platform: 'scripted' });
        const stats = await m.stats('x');
        const history = await storageOf(m).history!.list('x', 100);
        const kv = await storageOf(m).kv!.list('x');
        if (stats.starts || stats.messagesIn || stats.messagesOut || Object.keys(stats.custom).length || history.length || kv.length) {
          dirty.push(`round ${round}: ${JSON.stringify({ stats, history: history.length, kv: kv.length })}`);
        }
        await m.delete('x');
      }
      expect(dirty).toEqual([]);
    } finally {
      await m.close();
    }
  });
});

/** An adapter whose every call may throw, reject, hang or misbehave, decided by a seeded PRNG. */
function evilAdapter(rand: () => number) {
  const live = new Set<string>();
  const never = <T>() => new Promise<T>(() => {});
  const roll = <T>(ok: () => T | Promise<T>): T | Promise<T> => {
    const r = rand();
    if (r < 0.1) throw new Error('thrown synchronously');
    if (r < 0.2) return Promise.reject(new Error('rejected'));
    if (r < 0.27) return never<T>();
    return ok();
  };
  let n = 0;
  const adapter = defineAdapter({
    name: 'evil',
    credentials: z.unknown(),
    config: z.object({}),
    connect(ctx) {
      if (rand() < 0.08) throw new Error('connect refused');
      const me = `${ctx.id}#${++n}`;
      return {
        start: () =>
          roll(async () => {
            if (rand() < 0.2) ctx.auth.qr('evil-qr');
            if (rand() < 0.1) void ctx.auth.request('code').catch(() => undefined);
            if (rand() < 0.05) ctx.expired('evil says no');
            live.add(me);
          }) as Promise<void>,
        stop: () => {
          live.delete(me);
          return roll(async () => undefined) as Promise<void>;
        },
        health: () => roll(async () => ({ status: (['healthy', 'healthy', 'unhealthy', 'unknown', 'expired'] as const)[Math.floor(rand() * 5)]! })) as Promise<HealthReport>,
        send: () => roll(async () => ({ ok: true })) as Promise<JsonValue>,
        submitAuth: () => roll(async () => undefined) as Promise<void>,
        logout: () => roll(async () => undefined) as Promise<void>,
      };
    },
  });
  return { adapter, live };
}

describe('an adapter that throws, rejects or hangs anywhere', () => {
  it.each([31, 32, 33, 34])('seed %i: every call settles with a typed error or a result, and close() finishes', async (seed) => {
    const rand = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const evil = evilAdapter(prng(seed * 7919));
    const clock = createManualClock();
    const m = new SessionManager({
      adapters: [evil.adapter],
      clock,
      health: { intervalMs: 500, timeoutMs: 200, unhealthyThreshold: 2, jitter: 0 },
      restart: { retries: 2, minDelayMs: 50, maxDelayMs: 200, factor: 2 },
      authTimeoutMs: 1_000,
      startTimeoutMs: 1_000,
      stopTimeoutMs: 300,
    });
    await m.open();
    const managerErrors: unknown[] = [];
    m.on('manager.error', (e) => managerErrors.push(e.error));
    for (const id of IDS) await m.create({ id, platform: 'evil' });
    const pending: { what: string; done: boolean; error?: unknown }[] = [];
    const fire = (what: string, p: Promise<unknown>) => {
      const entry: { what: string; done: boolean; error?: unknown } = { what, done: false };
      pending.push(entry);
      p.then(
        () => (entry.done = true),
        (e: unknown) => {
          entry.done = true;
          entry.error = e;
        },
      );
    };
    for (let step = 0; step < 200; step++) {
      const id = pick(IDS);
      const r = rand();
      if (r < 0.2) fire(`start ${id}`, m.start(id));
      else if (r < 0.3) fire(`stop ${id}`, m.stop(id));
      else if (r < 0.38) fire(`restart ${id}`, m.restart(id));
      else if (r < 0.5) fire(`send ${id}`, m.send(id, { n: step }));
      else if (r < 0.56) fire(`auth ${id}`, m.submitAuth(id, { kind: 'code', value: '1' }));
      else if (r < 0.6) fire(`logout ${id}`, m.logout(id));
      else if (r < 0.63) fire(`delete ${id}`, m.delete(id, { force: true }).then(() => m.create({ id, platform: 'evil' })));
      else await clock.advance(Math.floor(rand() * 800));
    }
    let closed = false;
    const closing = m.close().then(() => (closed = true));
    for (let i = 0; i < 50 && !closed; i++) await clock.advance(500);
    expect(closed, `seed ${seed}: close() finished`).toBe(true);
    await closing;
    for (let i = 0; i < 10; i++) await clock.advance(500);
    const stuck = pending.filter((p) => !p.done).map((p) => p.what);
    expect(stuck, `seed ${seed}: calls still pending after close()`).toEqual([]);
    const untyped = pending.filter((p) => p.error !== undefined && !(p.error instanceof MultisessionError)).map((p) => `${p.what}: ${String(p.error)}`);
    expect(untyped, `seed ${seed}: untyped errors`).toEqual([]);
    expect(managerErrors, `seed ${seed}`).toEqual([]);
  });
});

