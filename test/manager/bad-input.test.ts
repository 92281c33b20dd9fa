import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidTransitionError,
  ManagerClosedError,
  MultisessionError,
  SessionExistsError,
  SessionManager,
  SessionNotFoundError,
  SessionNotReadyError,
  TimeoutError,
  ValidationError,
  type SessionManagerEventName,
} from 'multisession';
import { createManualClock } from 'multisession/testing';
import { setup, storageOf } from '../helpers/setup.js';
import { scriptedAdapter } from '../helpers/scripted-adapter.js';

type Env = Awaited<ReturnType<typeof setup>>;
let env: Env;
let events: string[];

const EVENTS: SessionManagerEventName[] = [
  'session.created', 'session.updated', 'session.deleted', 'session.state', 'session.auth',
  'session.ready', 'session.health', 'session.message', 'session.error', 'manager.error',
];

beforeEach(async () => {
  env = await setup();
  const m = env.manager;
  await m.create({ id: 'a', platform: 'scripted', credentials: { token: 'token-a-1234' }, labels: { team: 'x' }, metadata: { n: 1 } });
  await m.create({ id: 'r', platform: 'scripted' });
  await m.start('r');
  await m.kv('a').set('history', ['hi']);
  await env.scripted.last('r').ctx.authState.set('keys', 'k');
  await m.send('r', { text: 'first' });
  events = [];
  for (const name of EVENTS) m.on(name, () => events.push(name));
});
afterEach(async () => {
  await env.manager.close();
});

/** Everything stored or observable, to compare before and after a refused call. */
async function everything(m: SessionManager) {
  const audit = await m.audit({ limit: 10_000 }); // also flushes the write-behind queue
  const ids = (await storageOf(m).sessions.list()).map((s) => s.id);
  return JSON.stringify({
    list: (await m.list()).items,
    statuses: (await m.statuses()).map((x) => ({ ...x, uptimeMs: null })), // uptime moves with the clock
    stored: await storageOf(m).sessions.list(),
    stats: await Promise.all(ids.map((id) => m.stats(id))),
    kv: await Promise.all(ids.map((id) => storageOf(m).kv!.list(id))),
    transitions: await Promise.all(ids.map((id) => storageOf(m).history!.list(id, 100))),
    logs: await Promise.all(ids.map((id) => m.logs(id))),
    audit,
    connections: ids.map((id) => env.scripted.connections(id).length),
    sent: env.scripted.last('r').sent.length,
  });
}

interface Case {
  what: string;
  call: (m: SessionManager) => unknown;
  error: abstract new (...args: never[]) => Error;
  /** A path one of the ValidationError issues must have. */
  path?: (string | number)[];
}

const notFound = (what: string, call: (m: SessionManager) => unknown): Case => ({ what, call, error: SessionNotFoundError });
const invalid = (what: string, call: (m: SessionManager) => unknown, path: (string | number)[]): Case => ({ what, call, error: ValidationError, path });
const long = 'x'.repeat(300);
/** What `JSON.parse` (an HTTP body) makes of `__proto__` keys: ordinary own properties. */
const parsed = (json: string) => JSON.parse(json) as never;
const deep = (n: number): unknown => JSON.parse(`${'['.repeat(n)}1${']'.repeat(n)}`);

const cases: Case[] = [
  // create
  invalid('create: id with a space', (m) => m.create({ id: 'bad id', platform: 'scripted' }), ['id']),
  invalid('create: id too long', (m) => m.create({ id: 'a'.repeat(65), platform: 'scripted' }), ['id']),
  invalid('create: id missing', (m) => m.create({ platform: 'scripted' } as never), ['id']),
  invalid('create: unknown platform', (m) => m.create({ id: 'n', platform: 'telegraph' }), ['platform']),
  invalid('create: config refused by the adapter', (m) => m.create({ id: 'n', platform: 'scripted', config: { mode: 'bogus' } }), ['config', 'mode']),
  invalid('create: credentials refused by the adapter', (m) => m.create({ id: 'n', platform: 'scripted', credentials: { token: '' } }), ['credentials', 'token']),
  invalid('create: bad label key', (m) => m.create({ id: 'n', platform: 'scripted', labels: { 'no spaces': 'v' } }), ['labels', 'no spaces']),
  invalid('create: label value too long', (m) => m.create({ id: 'n', platform: 'scripted', labels: { k: long } }), ['labels', 'k']),
  invalid('create: unknown config field (dropped before)', (m) => m.create({ id: 'n', platform: 'scripted', config: { mode: 'qr', multiDevice: true } as never }), ['config', 'multiDevice']),
  invalid('create: unknown credentials field', (m) => m.create({ id: 'n', platform: 'scripted', credentials: { token: 'tok-n-1234', tokne: 'x' } as never }), ['credentials', 'tokne']),
  invalid('create: __proto__ label', (m) => m.create(parsed('{"id":"n","platform":"scripted","labels":{"__proto__":"x"}}')), ['labels', '__proto__']),
  invalid('create: __proto__ in metadata', (m) => m.create(parsed('{"id":"n","platform":"scripted","metadata":{"a":[{"__proto__":{"x":1}}]}}')), ['metadata', 'a', 0, '__proto__']),
  invalid('create: __proto__ in config', (m) => m.create(parsed('{"id":"n","platform":"scripted","config":{"__proto__":{"mode":"qr"}}}')), ['config', '__proto__']),
  invalid('create: __proto__ in credentials', (m) => m.create(parsed('{"id":"n","platform":"scripted","credentials":{"token":"tok-n-1234","__proto__":{}}}')), ['credentials', '__proto__']),
  invalid('create: metadata nested 2,000 deep (was a RangeError)', (m) => m.create({ id: 'n', platform: 'scripted', priority: 0, metadata: deep(2_000) as never }), ['priority']),
  invalid('create: metadata not JSON', (m) => m.create({ id: 'n', platform: 'scripted', metadata: { f: (() => 1) as never } }), ['metadata', 'f']),
  invalid('create: priority 11', (m) => m.create({ id: 'n', platform: 'scripted', priority: 11 }), ['priority']),
  invalid('create: priority 2.5', (m) => m.create({ id: 'n', platform: 'scripted', priority: 2.5 }), ['priority']),
  invalid('create: negative capacity', (m) => m.create({ id: 'n', platform: 'scripted', capacity: -1 }), ['capacity']),
  invalid('create: idleTimeoutMs 0', (m) => m.create({ id: 'n', platform: 'scripted', idleTimeoutMs: 0 }), ['idleTimeoutMs']),
  invalid('create: autoStart as a string', (m) => m.create({ id: 'n', platform: 'scripted', autoStart: 'yes' as never }), ['autoStart']),
  invalid('create: unknown field', (m) => m.create({ id: 'n', platform: 'scripted', colour: 'red' } as never), []),
  invalid('create: not an object', (m) => m.create(null as never), []),
  invalid('create: bad actor', (m) => m.create({ id: 'n', platform: 'scripted' }, { actor: 5 as never }), ['actor']),
  { what: 'create: taken id', call: (m) => m.create({ id: 'a', platform: 'scripted' }), error: SessionExistsError },
  // get / status / stats / logs / touch / kv
  invalid('get: bad id', (m) => m.get('../etc'), ['id']),
  invalid('get: not a string', (m) => m.get(42 as never), ['id']),
  notFound('get: unknown', (m) => m.get('ghost')),
  invalid('status: bad id', (m) => m.status(''), ['id']),
  notFound('status: unknown', (m) => m.status('ghost')),
  invalid('stats: bad id', (m) => m.stats('a b'), ['id']),
  notFound('stats: unknown', (m) => m.stats('ghost')),
  notFound('logs: unknown', (m) => m.logs('ghost')),
  invalid('logs: limit 0', (m) => m.logs('r', { limit: 0 }), ['limit']),
  invalid('logs: limit 1.5', (m) => m.logs('r', { limit: 1.5 }), ['limit']),
  invalid('logs: unknown level', (m) => m.logs('r', { level: 'trace' as never }), ['level']),
  invalid('logs: unknown option', (m) => m.logs('r', { tail: true } as never), []),
  invalid('touch: bad id', (m) => m.touch('a/b'), ['id']),
  notFound('touch: unknown', (m) => m.touch('ghost')),
  invalid('kv: bad id', (m) => m.kv('a b'), ['id']),
  notFound('kv: unknown', (m) => m.kv('ghost')),
  invalid('kv.set: empty key', (m) => m.kv('a').set('', 1), [0, 'key']),
  invalid('kv.set: value not JSON', (m) => m.kv('a').set('k', undefined as never), [0, 'value']),
  invalid('kv.get: key too long', (m) => m.kv('a').get('k'.repeat(513)), []),
  invalid('kv.batch: unknown op', (m) => m.kv('a').batch([{ op: 'merge', key: 'k' } as never]), [0, 'op']),
  invalid('kv.list: prefix not a string', (m) => m.kv('a').list({ prefix: 5 as never }), ['prefix']),
  invalid('kv.list: options null', (m) => m.kv('a').list(null as never), []),
  invalid('kv.clear: prefix not a string', (m) => m.kv('a').clear({ prefix: {} as never }), ['prefix']),
  // list
  invalid('list: unknown state', (m) => m.list({ state: 'sleeping' as never }), ['state']),
  invalid('list: unknown health', (m) => m.list({ health: ['healthy', 'sick' as never] }), ['health']),
  invalid('list: unknown desired state', (m) => m.list({ desiredState: 'paused' as never }), ['desiredState']),
  invalid('list: platform not a string', (m) => m.list({ platform: 5 as never }), ['platform']),
  invalid('list: label value not a string', (m) => m.list({ labels: { team: 1 as never } }), ['labels', 'team']),
  invalid('list: __proto__ label (was ignored: every session listed)', (m) => m.list(parsed('{"labels":{"__proto__":"x"}}')), ['labels', '__proto__']),
  invalid('list: unknown filter', (m) => m.list({ owner: 'me' } as never), []),
  // update
  notFound('update: unknown', (m) => m.update('ghost', { priority: 2 })),
  invalid('update: bad id', (m) => m.update('bad id', { priority: 2 }), ['id']),
  invalid('update: priority 0', (m) => m.update('a', { priority: 0 }), ['priority']),
  invalid('update: platform cannot change', (m) => m.update('a', { platform: 'other' } as never), []),
  invalid('update: id cannot change', (m) => m.update('a', { id: 'b' } as never), []),
  invalid('update: config refused by the adapter', (m) => m.update('r', { config: { mode: 'warp' } }), ['config', 'mode']),
  invalid('update: unknown config field', (m) => m.update('r', { config: { multiDevice: true } }), ['config', 'multiDevice']),
  invalid('update: config not an object', (m) => m.update('r', { config: 'qr' }), ['config']),
  invalid('update: __proto__ label', (m) => m.update('a', parsed('{"labels":{"__proto__":"x"}}')), ['labels', '__proto__']),
  invalid('update: credentials refused by the adapter', (m) => m.update('a', { credentials: { token: 7 } }), ['credentials', 'token']),
  invalid('update: bad labels', (m) => m.update('a', { labels: { '': 'v' } }), ['labels', '']),
  invalid('update: bad reason', (m) => m.update('a', { priority: 3 }, { reason: long }), ['reason']),
  // delete
  notFound('delete: unknown', (m) => m.delete('ghost')),
  invalid('delete: force not a boolean', (m) => m.delete('a', { force: 'yes' as never }), ['force']),
  invalid('delete: unknown option', (m) => m.delete('a', { cascade: true } as never), []),
  { what: 'delete: running without force', call: (m) => m.delete('r'), error: InvalidTransitionError },
  // start / stop / restart / logout / clear
  notFound('start: unknown', (m) => m.start('ghost')),
  invalid('start: bad id', (m) => m.start('ghost!'), ['id']),
  invalid('start: actor not a string', (m) => m.start('a', { actor: {} as never }), ['actor']),
  invalid('start: unknown option', (m) => m.start('a', { now: true } as never), []),
  notFound('stop: unknown', (m) => m.stop('ghost')),
  invalid('stop: reason too long', (m) => m.stop('r', { reason: long }), ['reason']),
  notFound('restart: unknown', (m) => m.restart('ghost')),
  invalid('restart: reason not a string', (m) => m.restart('r', { reason: 1 as never }), ['reason']),
  notFound('logout: unknown', (m) => m.logout('ghost')),
  invalid('logout: bad options', (m) => m.logout('r', { actor: 1 as never }), ['actor']),
  notFound('clear: unknown', (m) => m.clear('ghost')),
  invalid('clear: bad options', (m) => m.clear('a', { everything: true } as never), []),
  // submitAuth
  notFound('submitAuth: unknown', (m) => m.submitAuth('ghost', { kind: 'code', value: '1' })),
  invalid('submitAuth: kind qr', (m) => m.submitAuth('r', { kind: 'qr' as never, value: '1' }), ['kind']),
  invalid('submitAuth: empty value', (m) => m.submitAuth('r', { kind: 'code', value: '' }), ['value']),
  invalid('submitAuth: value missing', (m) => m.submitAuth('r', { kind: 'password' } as never), ['value']),
  invalid('submitAuth: not an object', (m) => m.submitAuth('r', '12345' as never), []),
  // send
  notFound('send: unknown', (m) => m.send('ghost', { text: 'x' })),
  invalid('send: bad id', (m) => m.send('', { text: 'x' }), ['id']),
  invalid('send: action refused by the adapter', (m) => m.send('r', { text: 5 } as never), ['action', 'text']),
  { what: 'send: session not ready', call: (m) => m.send('a', { text: 'x' }), error: SessionNotReadyError },
  // waitFor
  notFound('waitFor: unknown', (m) => m.waitFor('ghost', 'ready')),
  invalid('waitFor: unknown state', (m) => m.waitFor('a', 'done' as never), []),
  invalid('waitFor: no states', (m) => m.waitFor('a', []), []),
  invalid('waitFor: timeout 0', (m) => m.waitFor('a', 'ready', { timeoutMs: 0 }), ['timeoutMs']),
  invalid('waitFor: signal not an AbortSignal', (m) => m.waitFor('a', 'ready', { signal: {} as never }), ['signal']),
  // audit
  invalid('audit: limit 0', (m) => m.audit({ limit: 0 }), ['limit']),
  invalid('audit: bad session id', (m) => m.audit({ sessionId: 'bad id' }), ['sessionId']),
  invalid('audit: negative since', (m) => m.audit({ since: -1 }), ['since']),
  invalid('audit: unknown field', (m) => m.audit({ who: 'me' } as never), []),
  // checkpoint
  invalid('checkpoint: empty stream name', (m) => m.checkpoint(''), ['stream']),
  invalid('checkpoint: stream not a string', (m) => m.checkpoint(5 as never), ['stream']),
  // rotateSecretKey
  invalid('rotateSecretKey: not a string', (m) => m.rotateSecretKey(42 as never), ['secretKey']),
  invalid('rotateSecretKey: too short', (m) => m.rotateSecretKey('c2hvcnQ='), ['secretKey']),
  invalid('rotateSecretKey: bad options', (m) => m.rotateSecretKey('0'.repeat(64), { actor: 3 as never }), ['actor']),
];

describe('bad input to every public method: a typed error, nothing changes', () => {
  it.each(cases.map((c) => [c.what, c] as const))('%s', async (_what, c) => {
    const m = env.manager;
    const before = await everything(m);
    const error = await (async () => c.call(m))().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(c.error);
    expect(error).toBeInstanceOf(MultisessionError);
    if (c.path) {
      const issues = (error as ValidationError).issues;
      expect(issues.map((i) => i.path)).toContainEqual(c.path);
      expect((error as Error).message.length).toBeGreaterThan(10);
      // Each message says what to change, not only that something is wrong.
      expect(issues.map((i) => i.message)).not.toContain('Invalid key in record');
    }
    expect(await everything(m)).toBe(before);
    expect(events).toEqual([]);
    // The sessions still work.
    await expect(m.send('r', { text: 'after' })).resolves.toEqual({ delivered: 'after' });
  });

  it('metadata nested 2,000 deep is a ValidationError naming how deep, not a stack overflow', async () => {
    const error = await env.manager.create({ id: 'n', platform: 'scripted', metadata: deep(2_000) as never }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    const issue = (error as ValidationError).issues[0]!;
    expect(issue.path[0]).toBe('metadata');
    expect(issue.message).toMatch(/deeper than \d+ levels/);
  });

  it('a failed rotateSecretKey leaves the credentials readable with the old key', async () => {
    const m = env.manager;
    await m.rotateSecretKey('nope').catch(() => undefined);
    await m.start('a');
    expect(env.scripted.last('a').ctx.credentials).toEqual({ token: 'token-a-1234' });
  });

  it('waitFor: a timeout is a TimeoutError, an abort rejects with the reason; neither changes anything', async () => {
    const m = env.manager;
    const before = await everything(m);
    const waiting = m.waitFor('a', 'ready', { timeoutMs: 1_000 }).catch((e: unknown) => e);
    await env.clock.advance(1_000);
    expect(await waiting).toBeInstanceOf(TimeoutError);
    const ac = new AbortController();
    const aborted = m.waitFor('a', 'ready', { signal: ac.signal });
    ac.abort(new Error('gave up'));
    await expect(aborted).rejects.toThrow('gave up');
    expect(await everything(m)).toBe(before);
  });
});

describe('constructor options', () => {
  const adapter = scriptedAdapter().adapter;
  it.each([
    ['maxSessions 0', { maxSessions: 0 }, ['maxSessions']],
    ['negative health interval', { health: { intervalMs: -1 } }, ['health', 'intervalMs']],
    ['jitter above 1', { health: { jitter: 2 } }, ['health', 'jitter']],
    ['unknown health option', { health: { every: 5 } }, ['health']],
    ['restart factor below 1', { restart: { factor: 0.5 } }, ['restart', 'factor']],
    ['negative retries', { restart: { retries: -1 } }, ['restart', 'retries']],
    ['maxDelayMs below minDelayMs', { restart: { minDelayMs: 5_000, maxDelayMs: 100 } }, ['restart', 'maxDelayMs']],
    ['authTimeoutMs as a string', { authTimeoutMs: '5s' }, ['authTimeoutMs']],
    ['idleTimeoutMs 0', { idleTimeoutMs: 0 }, ['idleTimeoutMs']],
    ['restore concurrency 0', { restore: { concurrency: 0 } }, ['restore', 'concurrency']],
    ['negative logBufferSize', { logBufferSize: -1 }, ['logBufferSize']],
    ['historySize 0', { historySize: 0 }, ['historySize']],
    ['not a storage driver', { storage: { kind: 'x' } }, ['storage']],
    ['not an adapter', { adapters: [{ name: 'x' }] }, ['adapters', 0]],
    ['two adapters with one name', { adapters: [adapter, adapter] }, ['adapters']],
    ['not a clock', { clock: { now: () => 1 } }, ['clock']],
    ['not a logger', { logger: { info() {} } }, ['logger']],
    ['a secret key of the wrong size', { secretKey: 'abcd' }, ['secretKey']],
    ['encryptContextData as a string', { encryptContextData: 'no' }, ['encryptContextData']],
    ['an unknown option', { maxSesions: 3 }, []],
  ] as const)('%s → ValidationError', (_what, options, path) => {
    let error: unknown = null;
    try {
      new SessionManager(options as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).issues.map((i) => i.path)).toContainEqual(path);
  });

  it('options that are not an object → ValidationError', () => {
    expect(() => new SessionManager('fast' as never)).toThrow(ValidationError);
    expect(() => new SessionManager(null as never)).toThrow(ValidationError);
  });
});

describe('before open() and after close()', () => {
  const calls: [string, (m: SessionManager) => unknown][] = [
    ['create', (m) => m.create({ id: 'a', platform: 'scripted' })],
    ['get', (m) => m.get('a')],
    ['list', (m) => m.list()],
    ['update', (m) => m.update('a', { priority: 2 })],
    ['delete', (m) => m.delete('a')],
    ['start', (m) => m.start('a')],
    ['stop', (m) => m.stop('a')],
    ['restart', (m) => m.restart('a')],
    ['submitAuth', (m) => m.submitAuth('a', { kind: 'code', value: '1' })],
    ['logout', (m) => m.logout('a')],
    ['clear', (m) => m.clear('a')],
    ['send', (m) => m.send('a', { text: 'x' })],
    ['touch', (m) => m.touch('a')],
    ['kv', (m) => m.kv('a')],
    ['status', (m) => m.status('a')],
    ['statuses', (m) => m.statuses()],
    ['stats', (m) => m.stats('a')],
    ['logs', (m) => m.logs('a')],
    ['waitFor', (m) => m.waitFor('a', 'ready')],
    ['audit', (m) => m.audit()],
    ['rotateSecretKey', (m) => m.rotateSecretKey('0'.repeat(64))],
    ['checkpoint', (m) => m.checkpoint('jobs')],
  ];
  const fresh = () => new SessionManager({ adapters: [scriptedAdapter().adapter], clock: createManualClock() });

  it.each(calls)('%s before open() → MANAGER_NOT_OPEN', async (_name, call) => {
    const m = fresh();
    const error = await (async () => call(m))().then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(MultisessionError);
    expect((error as MultisessionError).code).toBe('MANAGER_NOT_OPEN');
    expect((error as Error).message).toMatch(/open\(\)/);
    await m.close();
  });

  it.each(calls)('%s after close() → ManagerClosedError', async (_name, call) => {
    const m = fresh();
    await m.open();
    await m.create({ id: 'a', platform: 'scripted' });
    await m.close();
    const error = await (async () => call(m))().then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(ManagerClosedError);
    expect((error as ManagerClosedError).code).toBe('MANAGER_CLOSED');
  });

  it('open() after close() is refused; close() twice is fine', async () => {
    const m = fresh();
    await m.open();
    await m.close();
    await expect(m.open()).rejects.toBeInstanceOf(ManagerClosedError);
    await expect(m.close()).resolves.toBeUndefined();
  });
});
