import { afterEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  InvalidTransitionError,
  SessionManager,
  SessionNotFoundError,
  ValidationError,
  canTransition,
  defineAdapter,
  memoryStorage,
  type Logger,
  type SessionManagerEventPayload,
  type SessionState,
} from 'multisession';
import { createManualClock } from 'multisession/testing';
import { z } from 'zod';
import { setup, storageOf } from '../helpers/setup.js';
import { scriptedAdapter, settle } from '../helpers/scripted-adapter.js';

let open: SessionManager[] = [];
async function make(overrides = {}, extra: Parameters<typeof setup>[1] = []) {
  const env = await setup(overrides, extra);
  open.push(env.manager);
  const states: SessionManagerEventPayload<'session.state'>[] = [];
  env.manager.on('session.state', (e) => states.push(e));
  return { ...env, states };
}
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

/** Every state event of `id` continues from the previous one and is allowed by the table. */
function expectValidChain(states: SessionManagerEventPayload<'session.state'>[], id: string, from: SessionState = 'stopped') {
  let at: SessionState = from;
  for (const e of states.filter((s) => s.id === id)) {
    expect(e.from, `${e.from}->${e.to} after ${at}`).toBe(at);
    expect(canTransition(e.from, e.to), `${e.from}->${e.to} is in TRANSITIONS`).toBe(true);
    at = e.to;
  }
  return at;
}

/** A small deterministic PRNG, so a failing sequence can be replayed. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('concurrent control calls are serialised', () => {
  it('start + stop + restart fired together end in the state of the last call, through valid transitions', async () => {
    const { manager: m, scripted: s, states } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    const results = await Promise.all([m.start('a'), m.stop('a'), m.restart('a')]);
    expect(results.map((r) => r.id)).toEqual(['a', 'a', 'a']);
    expect(results[1]!.state).toBe('stopped');
    expect(results[2]!.state).toBe('ready');
    const snap = await m.get('a');
    expect(snap.state).toBe('ready');
    expect(snap.desiredState).toBe('running');
    expect(expectValidChain(states, 'a')).toBe('ready');
    const conns = s.connections('a');
    expect(conns.filter((c) => !c.stopped)).toHaveLength(1);
    expect(conns.at(-1)!.stopped).toBe(false);
  });

  it('random bursts of start/stop/restart always end consistent', async () => {
    const { manager: m, scripted: s, states } = await make();
    const rand = prng(42);
    for (let round = 0; round < 30; round++) {
      const id = `r${round}`;
      await m.create({ id, platform: 'scripted' });
      const ops = Array.from({ length: 2 + Math.floor(rand() * 5) }, () => (['start', 'stop', 'restart'] as const)[Math.floor(rand() * 3)]!);
      const settledAll = await Promise.allSettled(ops.map((op) => m[op](id)));
      expect(settledAll.every((r) => r.status === 'fulfilled'), `${ops.join(',')}`).toBe(true);
      const want = ops.at(-1) === 'stop' ? 'stopped' : 'ready';
      const snap = await m.get(id);
      expect(snap.state, `${ops.join(',')}`).toBe(want);
      expect(snap.desiredState).toBe(want === 'ready' ? 'running' : 'stopped');
      expect(expectValidChain(states, id), `${ops.join(',')}`).toBe(want);
      const live = s.connections(id).filter((c) => !c.stopped);
      expect(live).toHaveLength(want === 'ready' ? 1 : 0);
    }
  });

  it('two restarts at once: both resolve, one live connection, two restarts counted', async () => {
    const { manager: m, scripted: s, states } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    const [r1, r2] = await Promise.all([m.restart('a', { reason: 'first' }), m.restart('a', { reason: 'second' })]);
    expect(r2.state).toBe('ready');
    expect(['ready', 'stopping', 'stopped', 'starting']).toContain(r1.state);
    expect((await m.get('a')).state).toBe('ready');
    expectValidChain(states, 'a');
    expect(states.filter((e) => e.to === 'stopping').map((e) => e.reason)).toEqual(['first', 'second']);
    expect(s.connections('a').filter((c) => !c.stopped)).toHaveLength(1);
    expect((await m.stats('a')).restarts).toBe(2);
    expect((await m.status('a')).restarts).toBe(2);
    expect(await m.audit({ sessionId: 'a', action: 'restart' })).toHaveLength(2);
  });

  it('stop during a start held at the gate returns without the gate opening', async () => {
    const { manager: m, scripted: s, states } = await make();
    await m.create({ id: 'g', platform: 'scripted', config: { mode: 'gate' } });
    const starting = m.start('g');
    await settle();
    expect((await m.get('g')).state).toBe('starting');
    const stopped = await m.stop('g');
    expect(stopped.state).toBe('stopped');
    expect(stopped.desiredState).toBe('stopped');
    const conn = s.last('g');
    expect(conn.stopped).toBe(true);
    expect(conn.ctx.signal.aborted).toBe(true);
    // The aborted start resolves too (its snapshot is taken as the stop tears it down).
    expect(['stopping', 'stopped']).toContain((await starting).state);
    expect(expectValidChain(states, 'g')).toBe('stopped');
    // A late gate opening changes nothing.
    conn.gate.resolve();
    await settle();
    expect((await m.get('g')).state).toBe('stopped');
  });

  it('start on a running session changes nothing', async () => {
    const { manager: m, scripted: s, states } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    const before = states.length;
    expect((await m.start('a')).state).toBe('ready');
    expect(states).toHaveLength(before);
    expect(s.connections('a')).toHaveLength(1);
  });
});

describe('update', () => {
  it('a config change on a running session restarts it with reason "config changed"', async () => {
    const { manager: m, scripted: s, states } = await make();
    const updates: SessionManagerEventPayload<'session.updated'>[] = [];
    m.on('session.updated', (e) => updates.push(e));
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    const v = (await m.get('a')).version;
    const before = states.length;
    const snap = await m.update('a', { config: { mode: 'qr' } });
    expect(snap.config).toEqual({ mode: 'qr' });
    expect(snap.state).toBe('authenticating');
    expect(snap.version).toBe(v + 1);
    expect(states.slice(before).map((e) => [e.from, e.to, e.reason])).toEqual([
      ['ready', 'stopping', 'config changed'],
      ['stopping', 'stopped', 'config changed'],
      ['stopped', 'starting', 'config changed'],
      ['starting', 'authenticating', 'waiting for qr'],
    ]);
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatchObject({ id: 'a', changed: ['config'] });
    expect(updates[0]!.session.config).toEqual({ mode: 'qr' });
    expect(s.connections('a')).toHaveLength(2);
    expect(s.connections('a')[0]!.stopped).toBe(true);
    expect(s.last('a').ctx.config).toEqual({ mode: 'qr' });
    expect((await storageOf(m).sessions.get('a'))!.config).toEqual({ mode: 'qr' });
  });

  it('a credentials change on a running session restarts it with reason "credentials changed"', async () => {
    const { manager: m, scripted: s, states } = await make();
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: 'old-token-1' } });
    await m.start('a');
    const before = states.length;
    const snap = await m.update('a', { credentials: { token: 'new-token-2' } });
    expect(snap.state).toBe('ready');
    expect(states.slice(before).map((e) => e.reason)).toEqual(['credentials changed', 'credentials changed', 'credentials changed', 'connected']);
    expect(s.last('a').ctx.credentials).toEqual({ token: 'new-token-2' });
  });

  it('labels, metadata and priority change without a restart; an unchanged patch writes nothing', async () => {
    const { manager: m, scripted: s, states } = await make();
    const updates: SessionManagerEventPayload<'session.updated'>[] = [];
    m.on('session.updated', (e) => updates.push(e));
    await m.create({ id: 'a', platform: 'scripted', labels: { team: 'x' } });
    await m.start('a');
    const before = states.length;
    const v = (await m.get('a')).version;
    const snap = await m.update('a', { labels: { team: 'y', tier: 'gold' }, metadata: { note: 1 }, priority: 9 });
    expect(snap).toMatchObject({ state: 'ready', labels: { team: 'y', tier: 'gold' }, metadata: { note: 1 }, priority: 9, version: v + 1 });
    expect(states).toHaveLength(before);
    expect(s.connections('a')).toHaveLength(1);
    expect(updates[0]!.changed.sort()).toEqual(['labels', 'metadata', 'priority']);
    // The same values again: no event, no new version.
    const same = await m.update('a', { labels: { team: 'y', tier: 'gold' }, config: { mode: 'auto' } });
    expect(same.version).toBe(v + 1);
    expect(updates).toHaveLength(1);
  });

  it('a config change on a stopped session does not start it', async () => {
    const { manager: m, scripted: s } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    const snap = await m.update('a', { config: { mode: 'code' } });
    expect(snap.state).toBe('stopped');
    expect(s.connections('a')).toHaveLength(0);
  });

  it('another manager on the same store changed it first: ConflictError, nothing written; a retry succeeds', async () => {
    const storage = memoryStorage();
    const clock = createManualClock();
    const a = new SessionManager({ storage, adapters: [scriptedAdapter().adapter], clock });
    await a.open();
    await a.create({ id: 's', platform: 'scripted', labels: { owner: 'none' } });
    const b = new SessionManager({ storage, adapters: [scriptedAdapter().adapter], clock });
    await b.open();
    try {
      expect((await b.get('s')).labels).toEqual({ owner: 'none' });
      await a.update('s', { labels: { owner: 'a' } });
      const err = await b.update('s', { labels: { owner: 'b' } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as ConflictError).code).toBe('CONFLICT');
      const stored = await storage.sessions.get('s');
      expect(stored!.labels).toEqual({ owner: 'a' });
      expect(stored!.version).toBe(2);
      // The manager re-read the record: the retry goes through.
      const retried = await b.update('s', { labels: { owner: 'b' } });
      expect(retried.labels).toEqual({ owner: 'b' });
      expect(retried.version).toBe(3);
      expect((await storage.sessions.get('s'))!.labels).toEqual({ owner: 'b' });
    } finally {
      await b.close(); // closes the shared driver: a's close then has nothing left to write
      await a.close();
    }
  });
});

describe('delete', () => {
  it('a running session needs force; delete removes it with its KV, counters and history', async () => {
    const { manager: m, scripted: s } = await make();
    const deleted: SessionManagerEventPayload<'session.deleted'>[] = [];
    m.on('session.deleted', (e) => deleted.push(e));
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    await s.last('a').ctx.kv.set('k', 1);
    await s.last('a').ctx.authState.set('creds', 'x');
    s.last('a').ctx.stats.increment('bids');
    await m.send('a', { text: 'hi' });

    const refused = await m.delete('a').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidTransitionError);
    expect((refused as Error).message).toMatch(/"ready"/);
    expect((await m.get('a')).state).toBe('ready');
    expect(deleted).toEqual([]);
    expect(await m.kv('a').get('k')).toBe(1);

    await m.delete('a', { force: true, actor: 'admin' });
    expect(deleted).toEqual([{ id: 'a', at: expect.any(Number) }]);
    expect(s.last('a').stopped).toBe(true);
    await expect(m.get('a')).rejects.toBeInstanceOf(SessionNotFoundError);
    await expect(m.stats('a')).rejects.toBeInstanceOf(SessionNotFoundError);
    await expect(m.delete('a', { force: true })).rejects.toBeInstanceOf(SessionNotFoundError);
    expect((await m.list()).items).toEqual([]);
    expect(await storageOf(m).sessions.get('a')).toBeNull();
    expect(await storageOf(m).kv!.list('a')).toEqual([]);
    expect(await storageOf(m).counters!.get('a')).toEqual({});
    expect(await storageOf(m).history!.list('a', 100)).toEqual([]);
    expect((await m.audit({ sessionId: 'a', action: 'delete' }))[0]).toMatchObject({ actor: 'admin', details: { force: true } });

    // The id is free again, with nothing left over.
    const again = await m.create({ id: 'a', platform: 'scripted' });
    expect(again.transitions).toEqual([]);
    expect(await m.stats('a')).toEqual({ id: 'a', starts: 0, restarts: 0, failures: 0, messagesIn: 0, messagesOut: 0, errors: 0, custom: {} });
    expect(await m.kv('a').list()).toEqual([]);
    expect(await storageOf(m).history!.list('a', 100)).toEqual([]);
  });

  it('a stopped, failed or expired session deletes without force', async () => {
    const { manager: m, scripted: s } = await make({ restart: { retries: 0, minDelayMs: 1, maxDelayMs: 1, factor: 1 } });
    await m.create({ id: 'stopped', platform: 'scripted' });
    s.behave('failed', { failStarts: 1 });
    await m.create({ id: 'failed', platform: 'scripted' });
    expect((await m.start('failed')).state).toBe('failed');
    await m.create({ id: 'expired', platform: 'scripted' });
    await m.start('expired');
    s.last('expired').ctx.expired('revoked');
    await m.waitFor('expired', 'expired');
    for (const id of ['stopped', 'failed', 'expired']) await m.delete(id);
    expect((await m.list()).items).toEqual([]);
  });
});

describe('logout and clear', () => {
  it('logout drops the auth state, keeps context data, and restarts a running session', async () => {
    const { manager: m, scripted: s, states } = await make();
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: 'tok-123' }, config: { mode: 'auto' } });
    await m.start('a');
    const ctx = s.last('a').ctx;
    await ctx.authState.set('session-file', 'AAA');
    await ctx.authState.set('keys', { k: 1 });
    await ctx.kv.set('history', ['hi']);
    const before = states.length;
    const snap = await m.logout('a');
    expect(snap.state).toBe('ready');
    expect(states.slice(before).map((e) => `${e.to}:${e.reason}`)).toEqual(['stopping:logout', 'stopped:logout', 'starting:logout', 'ready:connected']);
    expect(s.connections('a')).toHaveLength(2);
    expect(await s.last('a').ctx.authState.list()).toEqual([]);
    expect(await s.last('a').ctx.kv.get('history')).toEqual(['hi']);
    expect(snap.hasCredentials).toBe(true);
    expect(snap.config).toEqual({ mode: 'auto' });
  });

  it('logout of a stopped session drops the auth state and leaves it stopped', async () => {
    const { manager: m, scripted: s } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    await s.last('a').ctx.authState.set('session-file', 'AAA');
    await m.stop('a');
    const snap = await m.logout('a');
    expect(snap.state).toBe('stopped');
    expect(s.connections('a')).toHaveLength(1);
    expect((await storageOf(m).kv!.list('a')).map((e) => e.key)).toEqual([]);
  });

  it('clear drops ctx.kv only: auth state, config and credentials stay, the session keeps running', async () => {
    const { manager: m, scripted: s, states } = await make();
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: 'tok-123' } });
    await m.create({ id: 'b', platform: 'scripted' });
    await m.start('a');
    await m.start('b');
    const ctx = s.last('a').ctx;
    await ctx.kv.set('history', ['hi', 'there']);
    await ctx.kv.set('topics', { t: 1 });
    await ctx.authState.set('session-file', 'AAA');
    await s.last('b').ctx.kv.set('history', ['b']);
    const before = states.length;
    expect(await m.clear('a')).toBe(2);
    expect(await ctx.kv.list()).toEqual([]);
    expect(await ctx.authState.get('session-file')).toBe('AAA');
    expect(await s.last('b').ctx.kv.get('history')).toEqual(['b']);
    expect(states).toHaveLength(before);
    const snap = await m.get('a');
    expect(snap).toMatchObject({ state: 'ready', hasCredentials: true, config: { mode: 'auto' } });
    expect(s.connections('a')).toHaveLength(1);
    // The credentials are still usable: a restart gets them.
    await m.restart('a');
    expect(s.last('a').ctx.credentials).toEqual({ token: 'tok-123' });
  });
});

describe('send, messages and counters', () => {
  it("send returns the adapter's result, counts messagesOut and emits session.message out", async () => {
    const { manager: m, scripted: s, clock } = await make();
    const messages: SessionManagerEventPayload<'session.message'>[] = [];
    m.on('session.message', (e) => messages.push(e));
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    await expect(m.send('a', { text: 'one' })).resolves.toEqual({ delivered: 'one' });
    await expect(m.send('a', { text: 'two' })).resolves.toEqual({ delivered: 'two' });
    expect(s.last('a').sent).toEqual([{ text: 'one' }, { text: 'two' }]);
    expect(messages).toEqual([
      { id: 'a', platform: 'scripted', direction: 'out', message: { text: 'one' }, at: clock.now() },
      { id: 'a', platform: 'scripted', direction: 'out', message: { text: 'two' }, at: clock.now() },
    ]);
    void s.last('a').ctx.emitMessage({ from: 'peer', text: 'hello' });
    expect(messages[2]).toEqual({ id: 'a', platform: 'scripted', direction: 'in', message: { from: 'peer', text: 'hello' }, at: clock.now() });
    const stats = await m.stats('a');
    expect(stats).toMatchObject({ messagesOut: 2, messagesIn: 1, starts: 1, errors: 0 });
    // An action the adapter's schema refuses: ValidationError, nothing sent or counted.
    await expect(m.send('a', { txt: 'typo' } as never)).rejects.toBeInstanceOf(ValidationError);
    expect(s.last('a').sent).toHaveLength(2);
    expect((await m.stats('a')).messagesOut).toBe(2);
  });

  it('session.ready fires each time a connection comes up, with the id and time', async () => {
    const { manager: m, scripted: s, clock } = await make();
    const ready: SessionManagerEventPayload<'session.ready'>[] = [];
    m.on('session.ready', (e) => ready.push(e));
    await m.create({ id: 'a', platform: 'scripted', config: { mode: 'code' } });
    await m.start('a');
    expect(ready).toEqual([]); // authenticating is not ready
    await m.submitAuth('a', { kind: 'code', value: '12345' });
    await m.waitFor('a', 'ready');
    expect(ready).toEqual([{ id: 'a', at: clock.now() }]);
    await clock.advance(500);
    s.last('a').ctx.fail(new Error('socket closed'));
    await clock.advance(100); // back-off, then a new connection asks for the code again
    await m.submitAuth('a', { kind: 'code', value: '12345' });
    await m.waitFor('a', 'ready');
    expect(ready.map((e) => e.id)).toEqual(['a', 'a']);
    expect(ready[1]!.at).toBeGreaterThan(ready[0]!.at);
  });

  it('custom counters raised with ctx.stats.increment show in stats(id).custom', async () => {
    const { manager: m, scripted: s } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    await m.create({ id: 'b', platform: 'scripted' });
    await m.start('a');
    await m.start('b');
    const stats = s.last('a').ctx.stats;
    stats.increment('bids');
    stats.increment('bids', 2);
    stats.increment('won.total');
    s.last('b').ctx.stats.increment('bids', 10);
    expect(() => stats.increment('bad name!')).toThrow(ValidationError);
    expect(() => stats.increment('bids', Number.NaN)).toThrow(ValidationError);
    expect((await m.stats('a')).custom).toEqual({ bids: 3, 'won.total': 1 });
    expect((await m.stats('b')).custom).toEqual({ bids: 10 });
    // Custom counters never collide with the built-in ones.
    s.last('a').ctx.stats.increment('starts', 100);
    const a = await m.stats('a');
    expect(a.starts).toBe(1);
    expect(a.custom.starts).toBe(100);
  });
});

describe('logs', () => {
  it('keeps the newest logBufferSize lines per session, filters by level and limit, and sends each to the logger with the session id', async () => {
    const lines: { level: string; obj: Record<string, unknown>; msg: string | undefined }[] = [];
    const logger: Logger = {
      debug: (obj, msg) => lines.push({ level: 'debug', obj: obj as Record<string, unknown>, msg }),
      info: (obj, msg) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
      warn: (obj, msg) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
      error: (obj, msg) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
    };
    const { manager: m, scripted: s, clock } = await make({ logBufferSize: 5, logger });
    await m.create({ id: 'a', platform: 'scripted' });
    await m.create({ id: 'b', platform: 'scripted' });
    await m.start('a');
    await m.start('b');
    const log = s.last('a').ctx.log;
    for (let i = 1; i <= 8; i++) log[(['debug', 'info', 'warn', 'error'] as const)[i % 4]!](`line ${i}`, { n: i });
    s.last('b').ctx.log.info('from b');

    const all = await m.logs('a');
    expect(all.map((l) => l.msg)).toEqual(['line 4', 'line 5', 'line 6', 'line 7', 'line 8']);
    expect(all[0]).toEqual({ at: clock.now(), level: 'debug', msg: 'line 4', data: { n: 4 } });
    expect((await m.logs('a', { limit: 2 })).map((l) => l.msg)).toEqual(['line 7', 'line 8']);
    expect((await m.logs('a', { level: 'warn' })).map((l) => `${l.level}:${l.msg}`)).toEqual(['warn:line 6', 'error:line 7']);
    expect((await m.logs('a', { level: 'error', limit: 1 })).map((l) => l.msg)).toEqual(['line 7']);
    expect((await m.logs('b')).map((l) => l.msg)).toEqual(['from b']);

    const fromA = lines.filter((l) => l.obj.sessionId === 'a' && /^line /.test(l.msg ?? ''));
    expect(fromA).toHaveLength(8);
    expect(fromA[0]).toEqual({ level: 'info', obj: { sessionId: 'a', platform: 'scripted', n: 1 }, msg: 'line 1' });
    expect(lines.find((l) => l.msg === 'from b')!.obj).toMatchObject({ sessionId: 'b' });
  });

  it('the smallest buffers: logBufferSize 1 keeps the newest line, historySize 1 the newest transition (also in storage)', async () => {
    const { manager: m, scripted: s } = await make({ logBufferSize: 1, historySize: 1 });
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    for (const n of [1, 2, 3]) s.last('a').ctx.log.info(`line ${n}`);
    expect((await m.logs('a')).map((l) => l.msg)).toEqual(['line 3']);
    expect((await m.logs('a', { level: 'error' }))).toEqual([]);
    await m.stop('a');
    const snap = await m.get('a');
    expect(snap.transitions.map((t) => `${t.from}->${t.to}`)).toEqual(['stopping->stopped']);
    await m.stats('a'); // flushes the write-behind queue
    expect((await storageOf(m).history!.list('a', 100)).map((t) => `${t.from}->${t.to}`)).toEqual(['stopping->stopped']);
  });

  it('logBufferSize 0 keeps nothing but still logs', async () => {
    const seen: string[] = [];
    const logger: Logger = { debug() {}, info: (_o, msg) => seen.push(String(msg)), warn() {}, error() {} };
    const { manager: m, scripted: s } = await make({ logBufferSize: 0, logger });
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    s.last('a').ctx.log.info('kept nowhere');
    expect(await m.logs('a')).toEqual([]);
    expect(seen).toContain('kept nowhere');
  });
});

describe('list and statuses', () => {
  it('filters by state, platform, labels, health and desired state', async () => {
    const other = scriptedAdapter('other');
    const { manager: m, scripted: s, clock } = await make({}, [other.adapter]);
    await m.create({ id: 'a', platform: 'scripted', labels: { team: 'red', tier: 'gold' } });
    await m.create({ id: 'b', platform: 'scripted', labels: { team: 'red' } });
    await m.create({ id: 'c', platform: 'other', labels: { team: 'blue' } });
    await m.create({ id: 'd', platform: 'scripted' });
    await m.start('a');
    await m.start('c');
    await m.start('d');
    s.behave('d', { health: { status: 'unhealthy' } });
    await clock.advance(1_000);
    const ids = async (f: Parameters<SessionManager['list']>[0]) => (await m.list(f)).items.map((x) => x.id);
    expect(await ids({})).toEqual(['a', 'b', 'c', 'd']);
    expect(await ids(undefined)).toEqual(['a', 'b', 'c', 'd']);
    expect(await ids({ state: 'ready' })).toEqual(['a', 'c', 'd']);
    expect(await ids({ state: ['stopped', 'failed'] })).toEqual(['b']);
    expect(await ids({ platform: 'other' })).toEqual(['c']);
    expect(await ids({ platform: 'nope' })).toEqual([]);
    expect(await ids({ labels: { team: 'red' } })).toEqual(['a', 'b']);
    expect(await ids({ labels: { team: 'red', tier: 'gold' } })).toEqual(['a']);
    expect(await ids({ health: 'unhealthy' })).toEqual(['d']);
    expect(await ids({ health: ['healthy', 'unknown'] })).toEqual(['a', 'b', 'c']);
    expect(await ids({ desiredState: 'stopped' })).toEqual(['b']);
    expect(await ids({ desiredState: 'running', platform: 'scripted', labels: { team: 'red' } })).toEqual(['a']);
  });

  it('statuses() reports every session, ordered by id', async () => {
    const { manager: m, clock } = await make();
    await m.create({ id: 'z', platform: 'scripted' });
    await m.create({ id: 'm', platform: 'scripted', config: { mode: 'code' } });
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    await m.start('m');
    await clock.advance(250);
    const all = await m.statuses();
    expect(all.map((x) => x.id)).toEqual(['a', 'm', 'z']);
    expect(all[0]).toMatchObject({ id: 'a', platform: 'scripted', state: 'ready', desiredState: 'running', health: 'healthy', auth: null, lastError: null, uptimeMs: 250, restarts: 0 });
    expect(all[1]).toMatchObject({ state: 'authenticating', auth: { kind: 'code' }, uptimeMs: null });
    expect(all[2]).toMatchObject({ state: 'stopped', desiredState: 'stopped', health: 'unknown', uptimeMs: null, lastActivityAt: null });
    expect(await m.status('a')).toEqual(all[0]);
  });
});

describe('robustness of control', () => {
  it('a listener that throws is reported as manager.error and does not stop other listeners or waitFor', async () => {
    const { manager: m, scripted: s, clock } = await make();
    const managerErrors: string[] = [];
    m.on('manager.error', (e) => managerErrors.push(e.error.message));
    m.on('session.state', () => {
      throw new Error('a bug in the app');
    });
    const seen: string[] = [];
    m.on('session.state', (e) => seen.push(e.to));
    await m.create({ id: 'g', platform: 'scripted', config: { mode: 'gate' } });
    void m.start('g');
    await settle();
    const waiting = m.waitFor('g', 'ready', { timeoutMs: 1_000 }).then((x) => x.state, (e: unknown) => e);
    s.last('g').gate.resolve();
    await settle();
    await clock.advance(1_000);
    expect(await waiting).toBe('ready');
    expect(seen).toEqual(['starting', 'ready']);
    expect(managerErrors.length).toBeGreaterThanOrEqual(2);
    expect(managerErrors[0]).toMatch(/a bug in the app/);
  });

  it('listeners may call back into the manager (stop on ready, start on stopped, answer auth, send on ready)', async () => {
    const { manager: m, scripted: s, clock, states } = await make();
    let bounces = 0;
    const sendErrors: unknown[] = [];
    m.on('session.state', (e) => {
      if (e.to === 'ready' && bounces < 5) {
        bounces++;
        void m.stop(e.id);
      }
      if (e.to === 'stopped' && bounces < 5) void m.start(e.id);
      if (e.to === 'authenticating') void m.submitAuth(e.id, { kind: 'code', value: '12345' }).catch((err: unknown) => sendErrors.push(err));
    });
    m.on('session.ready', (e) => void m.send(e.id, { text: 'hello' }).catch((err: unknown) => sendErrors.push(err)));
    await m.create({ id: 'a', platform: 'scripted', config: { mode: 'code' } });
    await m.start('a');
    for (let i = 0; i < 20; i++) await clock.advance(100);
    expect(expectValidChain(states, 'a')).toBe('stopped');
    expect(states.filter((e) => e.to === 'ready')).toHaveLength(5);
    expect(s.connections('a').map((c) => [c.sent.length, c.stopped])).toEqual(Array.from({ length: 5 }, () => [1, true]));
    expect(sendErrors).toEqual([]);
  });

  it('back-off delays grow by factor and stop at maxDelayMs', async () => {
    const { manager: m, scripted: s, clock, states } = await make({ restart: { retries: 4, minDelayMs: 100, maxDelayMs: 500, factor: 2 } });
    s.behave('f', { failStarts: 100 });
    await m.create({ id: 'f', platform: 'scripted' });
    const t0 = clock.now();
    await m.start('f');
    await clock.advance(5_000);
    const startsAt = states.filter((e) => e.to === 'starting').map((e) => e.at - t0);
    expect(startsAt).toEqual([0, 100, 300, 700, 1_200]); // waits of 100, 200, 400, then 500 (capped)
    expect((await m.get('f')).state).toBe('failed');
    expect(s.connections('f')).toHaveLength(5);
  });

  it('a connection that was replaced can no longer touch the session', async () => {
    const { manager: m, scripted: s, states } = await make();
    const seen: string[] = [];
    m.on('session.message', () => seen.push('message'));
    m.on('session.auth', () => seen.push('auth'));
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    const old = s.last('a').ctx;
    await m.restart('a');
    const before = states.length;
    expect(old.signal.aborted).toBe(true);
    old.emitMessage('late');
    old.auth.qr('late-qr');
    old.expired('late');
    old.fail(new Error('late'));
    old.touch();
    await expect(old.auth.request('code')).rejects.toMatchObject({ code: 'ABORTED' });
    await settle();
    expect(seen).toEqual([]);
    expect(states).toHaveLength(before);
    expect((await m.get('a')).state).toBe('ready');
    expect((await m.stats('a')).messagesIn).toBe(0);
  });

  it('start and a forced delete fired together: the session is gone and its connection stopped', async () => {
    const { manager: m, scripted: s, states } = await make();
    await m.create({ id: 'a', platform: 'scripted', config: { mode: 'gate' } });
    const results = await Promise.allSettled([m.start('a'), m.delete('a', { force: true }), m.start('a')]);
    expect(results[1]!.status).toBe('fulfilled');
    expect(results[2]).toMatchObject({ status: 'rejected', reason: expect.any(SessionNotFoundError) });
    await settle();
    expect(s.connections('a').every((c) => c.stopped)).toBe(true);
    expect(expectValidChain(states, 'a')).toBe('stopped');
    await expect(m.get('a')).rejects.toBeInstanceOf(SessionNotFoundError);
  });

  it('waitFor rejects with SessionNotFoundError when the session is deleted while waiting', async () => {
    const { manager: m } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    const waiting = m.waitFor('a', 'ready').catch((e: unknown) => e);
    await m.delete('a');
    expect(await waiting).toBeInstanceOf(SessionNotFoundError);
  });

  it('autoStart starts the session on create', async () => {
    const { manager: m, scripted: s } = await make();
    const snap = await m.create({ id: 'a', platform: 'scripted', autoStart: true });
    expect(snap).toMatchObject({ state: 'ready', desiredState: 'running', autoStart: true });
    expect(s.connections('a')).toHaveLength(1);
  });

  it('snapshots are copies: changing one changes nothing stored', async () => {
    const { manager: m } = await make();
    const snap = await m.create({ id: 'a', platform: 'scripted', labels: { team: 'x' }, metadata: { deep: { n: 1 } } });
    snap.labels.team = 'hacked';
    (snap.config as Record<string, unknown>).mode = 'gate';
    ((snap.metadata as { deep: { n: number } }).deep).n = 2;
    snap.transitions.push({ from: 'stopped', to: 'ready', reason: 'x', at: 0 });
    const again = await m.get('a');
    expect(again.labels).toEqual({ team: 'x' });
    expect(again.config).toEqual({ mode: 'auto' });
    expect(again.metadata).toEqual({ deep: { n: 1 } });
    expect(again.transitions).toEqual([]);

    // The pending auth step's data too (a phone hint object here), on snapshots, statuses and events.
    const authEvents: SessionManagerEventPayload<'session.auth'>[] = [];
    m.on('session.auth', (e) => authEvents.push(e));
    await m.create({ id: 'c', platform: 'scripted', config: { mode: 'code' } });
    const waiting = await m.start('c');
    (waiting.auth!.data as { phone: string }).phone = 'changed by the app';
    ((await m.status('c')).auth!.data as { phone: string }).phone = 'changed again';
    (authEvents[0]!.data as { phone: string }).phone = 'changed by a listener';
    expect((await m.get('c')).auth!.data).toEqual({ phone: '+1 *** 89' });
  });

  it("logout calls the connection's logout() first; a failing logout is logged and the logout goes on", async () => {
    const calls: string[] = [];
    const withLogout = defineAdapter({
      name: 'with-logout',
      credentials: z.unknown(),
      config: z.object({ failLogout: z.boolean().default(false) }),
      connect(ctx) {
        return {
          async start() {
            calls.push(`start:${ctx.id}`);
          },
          async stop() {
            calls.push(`stop:${ctx.id}`);
          },
          async health() {
            return { status: 'healthy' as const };
          },
          async send() {},
          async logout() {
            calls.push(`logout:${ctx.id}`);
            if (ctx.config.failLogout) throw new Error('platform said no');
          },
        };
      },
    });
    const { manager: m } = await make({}, [withLogout]);
    await m.create({ id: 'ok', platform: 'with-logout' });
    await m.create({ id: 'bad', platform: 'with-logout', config: { failLogout: true } });
    await m.start('ok');
    await m.start('bad');
    calls.length = 0;
    expect((await m.logout('ok')).state).toBe('ready');
    expect(calls).toEqual(['logout:ok', 'stop:ok', 'start:ok']);
    expect((await m.logout('bad')).state).toBe('ready');
    expect((await m.logs('bad', { level: 'warn' })).map((l) => l.msg)).toEqual([expect.stringMatching(/logout failed: platform said no/)]);
    expect((await m.audit({ action: 'logout' })).map((a) => a.sessionId).sort()).toEqual(['bad', 'ok']);
  });

  it('waitFor leaves no listener behind, however it ends', async () => {
    const { manager: m, clock } = await make();
    await m.create({ id: 'a', platform: 'scripted', config: { mode: 'gate' } });
    await m.create({ id: 'b', platform: 'scripted' });
    const base = { state: m.listenerCount('session.state'), deleted: m.listenerCount('session.deleted') };
    const ac = new AbortController();
    const outcomes = Promise.allSettled([
      m.waitFor('a', 'ready', { timeoutMs: 500 }), // times out
      m.waitFor('a', ['ready', 'failed'], { signal: ac.signal }), // aborted
      m.waitFor('b', 'ready'), // resolves
      m.waitFor('b', 'failed'), // the session is deleted
    ]);
    expect(m.listenerCount('session.state')).toBe(base.state + 4);
    await clock.advance(500);
    ac.abort(new Error('enough'));
    await m.start('b');
    await m.delete('b', { force: true });
    const results = await outcomes;
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled', 'rejected']);
    expect(m.listenerCount('session.state')).toBe(base.state);
    expect(m.listenerCount('session.deleted')).toBe(base.deleted);
  });
});

describe('audit', () => {
  it('records every control action with its actor, newest first, and filters by session, action, time and limit', async () => {
    const { manager: m, clock } = await make();
    const t0 = clock.now();
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: 'tok-audit-1' } }, { actor: 'alice' });
    await m.update('a', { labels: { x: '1' } }, { actor: 'bob' });
    await m.start('a', { actor: 'carol' });
    await clock.advance(1_000);
    const t1 = clock.now();
    await m.restart('a', { actor: 'dave' });
    await m.logout('a', { actor: 'erin' });
    await m.clear('a', { actor: 'frank' });
    await m.stop('a', { actor: 'grace', reason: 'maintenance' });
    await m.create({ id: 'b', platform: 'scripted' });
    await m.delete('a', { actor: 'heidi' });
    const forA = await m.audit({ sessionId: 'a' });
    expect(forA.map((e) => `${e.action}:${e.actor}`)).toEqual([
      'delete:heidi', 'stop:grace', 'clear:frank', 'logout:erin', 'restart:dave', 'start:carol', 'update:bob', 'create:alice',
    ]);
    expect(forA.find((e) => e.action === 'update')!.details).toEqual({ fields: ['labels'] });
    expect(forA.find((e) => e.action === 'stop')!.details).toEqual({ reason: 'maintenance' });
    expect(forA[0]!.at).toBeGreaterThanOrEqual(t1);
    expect(forA.at(-1)!.at).toBe(t0);
    expect(JSON.stringify(forA)).not.toContain('tok-audit-1');
    expect((await m.audit({ action: 'create' })).map((e) => e.sessionId)).toEqual(['b', 'a']);
    expect((await m.audit({ since: t1 })).every((e) => e.at >= t1)).toBe(true);
    expect((await m.audit({ since: t1 })).map((e) => e.action)).not.toContain('update');
    expect(await m.audit({ limit: 2 })).toHaveLength(2);
    const ids = (await m.audit()).map((e) => e.id);
    expect([...ids].sort((x, y) => y - x)).toEqual(ids);
  });
});

describe('adapterInfo', () => {
  it('lists each adapter with JSON Schemas of its credentials and config, usable before open()', () => {
    const described = defineAdapter({
      name: 'described',
      description: 'An adapter with a description',
      credentials: z.object({ apiKey: z.string().min(8) }),
      config: z.object({ region: z.enum(['eu', 'us']).default('eu'), limit: z.number().int().max(50).optional() }),
      connect: () => ({ async start() {}, async stop() {}, async health() { return { status: 'healthy' as const }; }, async send() {} }),
    });
    const m = new SessionManager({ adapters: [scriptedAdapter().adapter, described] });
    const info = m.adapterInfo();
    expect(info.map((a) => a.name)).toEqual(['scripted', 'described']);
    expect(info[0]!.description).toBeNull();
    expect(info[1]!.description).toBe('An adapter with a description');
    expect(info[1]!.credentialsSchema).toMatchObject({ type: 'object', properties: { apiKey: { type: 'string', minLength: 8 } }, required: ['apiKey'] });
    expect(info[1]!.configSchema).toMatchObject({
      type: 'object',
      properties: { region: { enum: ['eu', 'us'], default: 'eu' }, limit: { type: 'integer', maximum: 50 } },
    });
    expect(info[0]!.configSchema).toMatchObject({ properties: { mode: { default: 'auto' } } });
    // Plain JSON: it survives a round trip unchanged.
    expect(JSON.parse(JSON.stringify(info))).toEqual(info);
  });
});

describe('event delivery', () => {
  it('once() listeners fire once; a listener removed or added during an emit behaves like eventemitter3', async () => {
    const { manager: m } = await make();
    const calls: string[] = [];
    m.once('session.state', (e) => calls.push(`once:${e.to}`));
    const late = (e: { to: string }) => calls.push(`late:${e.to}`);
    const remover = (e: { to: string }) => {
      calls.push(`remover:${e.to}`);
      m.off('session.state', remover);
      m.on('session.state', late);
    };
    m.on('session.state', remover);
    const ctx = { name: 'context' };
    m.on('session.state', function (this: typeof ctx) {
      calls.push(`this:${this.name}`);
    }, ctx);
    await m.create({ id: 'a', platform: 'scripted' });
    await m.start('a');
    expect(calls).toEqual(['once:starting', 'remover:starting', 'this:context', 'this:context', 'late:ready']);
    expect(m.listenerCount('session.state')).toBeGreaterThanOrEqual(3);
  });
});

describe('waitFor with a signal', () => {
  it('an already-aborted signal rejects at once with its reason, unless the state is already reached', async () => {
    const { manager: m } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    const ac = new AbortController();
    ac.abort(new Error('cancelled before the call'));
    let outcome: unknown = 'pending';
    const base = m.listenerCount('session.state');
    m.waitFor('a', 'ready', { signal: ac.signal }).then((x) => (outcome = x.state), (e: unknown) => (outcome = e));
    await settle();
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toBe('cancelled before the call');
    expect(m.listenerCount('session.state')).toBe(base);
    // Already there: resolves even with an aborted signal.
    expect((await m.waitFor('a', 'stopped', { signal: ac.signal })).state).toBe('stopped');
  });
});

