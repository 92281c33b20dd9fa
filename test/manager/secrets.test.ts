import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AdapterError,
  DuplicateCredentialsError,
  SECRET_KEY_ENV,
  SecretKeyRequiredError,
  SessionManager,
  defineAdapter,
  memoryStorage,
  type StorageDriver,
  ValidationError,
  type Logger,
  SESSION_MANAGER_EVENTS,
  type SessionManagerEventName,
} from 'multisession';
import { z } from 'zod';
import { createManualClock } from 'multisession/testing';
import { setup, storageOf } from '../helpers/setup.js';
import { scriptedAdapter, settle } from '../helpers/scripted-adapter.js';

/** Every event of events.ts; the type below fails to compile when one is missing. */
const EVENT_NAMES = SESSION_MANAGER_EVENTS;
type Missing = Exclude<SessionManagerEventName, (typeof EVENT_NAMES)[number]>;
const allEventsListed: [Missing] extends [never] ? true : false = true;

const TOKEN = 'tok_9f8e7d6c5b4a3210SECRET';
const OTHER_TOKEN = 'tok_0123456789abcdefOTHER';

/** JSON that also spells out errors (name, message, context), as a log serializer would. */
function dump(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v instanceof Error ? { name: v.name, message: v.message, context: (v as { context?: unknown }).context } : v,
  );
}

let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

async function harness() {
  const loggerOut: string[] = [];
  const logger: Logger = {
    debug: (o, msg) => loggerOut.push(dump({ o, msg })),
    info: (o, msg) => loggerOut.push(dump({ o, msg })),
    warn: (o, msg) => loggerOut.push(dump({ o, msg })),
    error: (o, msg) => loggerOut.push(dump({ o, msg })),
  };
  const env = await setup({ logger, secretKey: randomBytes(32).toString('base64') });
  open.push(env.manager);
  const events: { name: string; payload: unknown }[] = [];
  expect(allEventsListed).toBe(true);
  for (const name of EVENT_NAMES) env.manager.on(name, (payload: unknown) => events.push({ name, payload }));
  const thrown: unknown[] = [];
  const m = env.manager;

  /** Looks for the secrets in everything the outside world can see. */
  async function sinks(ids: string[]): Promise<Record<string, string>> {
    const out: Record<string, string> = {
      events: dump(events),
      logger: loggerOut.join('\n'),
      thrown: dump(thrown),
      list: dump((await m.list()).items),
      statuses: dump(await m.statuses()),
      audit: dump(await m.audit({ limit: 10_000 })),
    };
    for (const id of ids) {
      const live = (await m.list()).items.some((s) => s.id === id);
      if (!live) continue;
      out[`logs:${id}`] = dump(await m.logs(id, { limit: 10_000 }));
      out[`stats:${id}`] = dump(await m.stats(id));
      out[`stored:${id}`] = dump(await storageOf(m).sessions.get(id));
      out[`transitions:${id}`] = dump(await storageOf(m).history!.list(id, 1000));
    }
    return out;
  }
  async function expectNoSecret(ids: string[], secrets: string[] = [TOKEN]) {
    const seen = await sinks(ids);
    const leaks = Object.entries(seen).flatMap(([where, text]) => secrets.filter((s) => text.includes(s)).map((s) => `${s} in ${where}`));
    expect(leaks).toEqual([]);
  }
  return { ...env, events, loggerOut, thrown, expectNoSecret };
}

describe('credentials never leave the manager', () => {
  it('through a whole life: create, start, send, update, restart, logout, clear, stop, delete', async () => {
    const h = await harness();
    const { manager: m, scripted: s } = h;
    const created = await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN }, labels: { team: 'x' } });
    expect(created.hasCredentials).toBe(true);
    expect(dump(created)).not.toContain(TOKEN);
    expect(dump(await m.start('a'))).not.toContain(TOKEN);
    expect(s.last('a').ctx.credentials).toEqual({ token: TOKEN }); // the adapter does get them
    await m.send('a', { text: 'hello' });
    await m.update('a', { labels: { team: 'y' } });
    const updated = await m.update('a', { credentials: { token: OTHER_TOKEN } });
    expect(dump(updated)).not.toContain(OTHER_TOKEN);
    await m.restart('a');
    await m.logout('a');
    await m.clear('a');
    await m.stop('a');
    expect(dump(m.adapterInfo())).not.toContain(TOKEN);
    await h.expectNoSecret(['a'], [TOKEN, OTHER_TOKEN]);
    await m.delete('a');
    await h.expectNoSecret(['a'], [TOKEN, OTHER_TOKEN]);
    expect(h.events.map((e) => e.name)).toEqual(expect.arrayContaining(['session.created', 'session.updated', 'session.state', 'session.ready', 'session.message', 'session.deleted']));
  });

  it('an adapter error that carries the token: the AdapterError message, events, logs and lastError have it scrubbed', async () => {
    const h = await harness();
    const { manager: m, scripted: s } = h;
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
    await m.start('a');
    s.behave('a', { sendThrows: true });
    const err = await m.send('a', { text: 'x' }).catch((e: unknown) => e);
    h.thrown.push(err);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as Error).message).not.toContain(TOKEN);
    expect((err as Error).message).toContain('[redacted]');
    expect(JSON.stringify(err)).not.toContain(TOKEN);
    // The connection fails with the token in its error: lastError and the state reasons are scrubbed.
    s.last('a').ctx.fail(new Error(`401 Unauthorized for bearer ${TOKEN}`));
    await m.waitFor('a', 'backoff');
    expect((await m.get('a')).lastError!.message).toContain('[redacted]');
    await h.clock.advance(100);
    await m.waitFor('a', 'ready');
    await h.expectNoSecret(['a']);
    expect(h.events.some((e) => e.name === 'session.error')).toBe(true);
  });

  it('an AdapterError does not carry the token in its cause chain either (inspect, as a logger prints it)', async () => {
    const h = await harness();
    const { manager: m, scripted: s } = h;
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
    await m.start('a');
    s.behave('a', { sendThrows: true });
    const err = await m.send('a', { text: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect(inspect(err, { depth: 10 })).not.toContain(TOKEN);
  });

  it('a start failure carrying the token is scrubbed everywhere', async () => {
    const h = await harness();
    const { manager: m, scripted: s } = h;
    await m.create({ id: 'g', platform: 'scripted', credentials: { token: TOKEN }, config: { mode: 'gate' } });
    const starting = m.start('g');
    await settle();
    s.last('g').ctx.fail(new Error(`login refused for ${TOKEN}`));
    expect((await starting).state).toBe('backoff');
    await h.expectNoSecret(['g']);
  });

  it('ctx.expired(reason) with the token in the reason is scrubbed from state events, lastError and logs', async () => {
    const h = await harness();
    const { manager: m, scripted: s } = h;
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
    await m.start('a');
    s.last('a').ctx.expired(`token ${TOKEN} was revoked`);
    await m.waitFor('a', 'expired');
    await h.expectNoSecret(['a']);
  });

  it('a health report whose detail carries the token is scrubbed from health events, lastError and state reasons', async () => {
    const h = await harness();
    const { manager: m, scripted: s, clock } = h;
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
    await m.start('a');
    s.behave('a', { health: { status: 'unhealthy', detail: `GET /me?access_token=${TOKEN} → 503` } });
    await clock.advance(2_000);
    expect((await m.get('a')).state).toBe('degraded');
    await h.expectNoSecret(['a']);
  });

  it('an adapter that logs its token: the session log and the logger get it scrubbed', async () => {
    const h = await harness();
    const { manager: m, scripted: s } = h;
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
    await m.start('a');
    const log = s.last('a').ctx.log;
    log.info('login', { token: TOKEN }); // a secret-looking key: redacted by name
    log.info('login', { header: `Bearer ${TOKEN}` }); // any other key: the value is scrubbed
    log.warn(`retrying with ${TOKEN}`); // in the message itself
    log.error('request failed', { err: new Error(`401 for bearer ${TOKEN}`) }); // inside an Error in the data
    log.info('nested', { request: { headers: [`x-auth: ${TOKEN}`] } }); // deep in the data
    expect((await m.logs('a')).map((l) => l.msg)).toContain('login');
    await h.expectNoSecret(['a']);
  });

  it('bad credentials are refused without echoing them', async () => {
    const h = await harness();
    const { manager: m } = h;
    const err = await m.create({ id: 'a', platform: 'scripted', credentials: TOKEN as never }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues[0]!.path).toEqual(['credentials']);
    expect(dump(err)).not.toContain(TOKEN);
    expect((await m.list()).items).toEqual([]);
  });
});

describe('credentials that are not strings', () => {
  it('a numeric PIN in the credentials is scrubbed from adapter errors like a string token', async () => {
    const pinned = defineAdapter({
      name: 'pinned',
      credentials: z.object({ pin: z.number().int(), user: z.string() }),
      config: z.object({}),
      connect(ctx) {
        return {
          async start() {},
          async stop() {},
          async health() {
            return { status: 'healthy' as const };
          },
          async send() {
            throw new Error(`login with pin ${ctx.credentials.pin} for ${ctx.credentials.user} refused`);
          },
        };
      },
    });
    const m = new SessionManager({ adapters: [pinned], clock: createManualClock() });
    open.push(m);
    await m.open();
    await m.create({ id: 'a', platform: 'pinned', credentials: { pin: 48151623, user: 'operator-7781' } });
    await m.start('a');
    const err = await m.send('a', 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as Error).message).not.toContain('operator-7781');
    expect((err as Error).message).not.toContain('48151623');
    expect(inspect(err, { depth: 10 })).not.toContain('48151623');
  });
});

describe('duplicate-credential guard', () => {
  it('refuses a second session with the same credentials unless allowSharedCredentials', async () => {
    const h = await harness();
    const { manager: m, scripted: s } = h;
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
    const dup = await m.create({ id: 'b', platform: 'scripted', credentials: { token: TOKEN } }).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(DuplicateCredentialsError);
    expect((dup as DuplicateCredentialsError).code).toBe('DUPLICATE_CREDENTIALS');
    expect((dup as DuplicateCredentialsError).context).toMatchObject({ otherSessionId: 'a' });
    expect(dump(dup)).not.toContain(TOKEN);
    expect((await m.list()).items.map((x) => x.id)).toEqual(['a']);
    expect(await storageOf(m).sessions.get('b')).toBeNull();

    // Other credentials are fine; switching them to a's is refused and changes nothing.
    await m.create({ id: 'b', platform: 'scripted', credentials: { token: OTHER_TOKEN } });
    const v = (await m.get('b')).version;
    await expect(m.update('b', { credentials: { token: TOKEN } })).rejects.toBeInstanceOf(DuplicateCredentialsError);
    expect((await m.get('b')).version).toBe(v);
    await m.start('b');
    expect(s.last('b').ctx.credentials).toEqual({ token: OTHER_TOKEN });

    // Sharing on purpose.
    const shared = await m.create({ id: 'c', platform: 'scripted', credentials: { token: TOKEN }, allowSharedCredentials: true });
    expect(shared.allowSharedCredentials).toBe(true);
    // …and it cannot stop sharing while another session holds them.
    await expect(m.update('c', { allowSharedCredentials: false })).rejects.toBeInstanceOf(DuplicateCredentialsError);
    expect((await m.get('c')).allowSharedCredentials).toBe(true);
    // Each refusal is audited (repeated ones are how credentials get guessed), naming the holder.
    expect((await m.audit({ action: 'credentials-conflict' })).map((e) => [e.sessionId, e.details])).toEqual([
      ['c', { operation: 'update', otherSessionId: 'a' }],
      ['b', { operation: 'update', otherSessionId: 'a' }],
      ['b', { operation: 'create', otherSessionId: 'a' }],
    ]);

    // Sessions without credentials never collide.
    await m.create({ id: 'n1', platform: 'scripted' });
    await m.create({ id: 'n2', platform: 'scripted' });
    await h.expectNoSecret(['a', 'b', 'c'], [TOKEN, OTHER_TOKEN]);
  });

  it('the credentials are free again once the session holding them is deleted', async () => {
    const h = await harness();
    const { manager: m } = h;
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
    await m.delete('a');
    expect((await m.create({ id: 'b', platform: 'scripted', credentials: { token: TOKEN } })).id).toBe('b');
  });
});

describe('rotateSecretKey', () => {
  it('re-encrypts every stored credential with the new key; sessions keep working and the guard still holds', async () => {
    const h = await harness();
    const { manager: m, scripted: s } = h;
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
    await m.create({ id: 'b', platform: 'scripted', credentials: { token: OTHER_TOKEN } });
    await m.create({ id: 'none', platform: 'scripted' });
    await m.start('a');
    const sealedBefore = (await storageOf(m).sessions.get('a'))!.credentials!;
    expect(sealedBefore.startsWith('v1.')).toBe(true);
    const newKey = randomBytes(32).toString('hex');
    expect(await m.rotateSecretKey(newKey, { actor: 'ops' })).toEqual({ rotated: 2 });
    const sealedAfter = (await storageOf(m).sessions.get('a'))!.credentials!;
    expect(sealedAfter).not.toBe(sealedBefore);
    expect(sealedAfter.split('.')[1]).not.toBe(sealedBefore.split('.')[1]); // another key id
    expect(sealedAfter).not.toContain(TOKEN);
    // The running session is untouched; a restart decrypts with the new key.
    expect((await m.get('a')).state).toBe('ready');
    await m.restart('a');
    expect(s.last('a').ctx.credentials).toEqual({ token: TOKEN });
    await m.start('b');
    expect(s.last('b').ctx.credentials).toEqual({ token: OTHER_TOKEN });
    // Fingerprints were rewritten too: the duplicate guard still recognises the token.
    await expect(m.create({ id: 'c', platform: 'scripted', credentials: { token: TOKEN } })).rejects.toBeInstanceOf(DuplicateCredentialsError);
    const audit = await m.audit({ action: 'rotate-key' });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'ops', details: { sessions: 2 } });
    expect(JSON.stringify(audit)).not.toContain(newKey);
    await h.expectNoSecret(['a', 'b'], [TOKEN, OTHER_TOKEN, newKey]);
  });
});

describe('rotateSecretKey racing credential writes', () => {
  it.each(['create', 'update'] as const)('a %s running alongside a rotation ends with credentials readable under the new key', async (op) => {
    const h = await harness();
    const { manager: m, scripted: s } = h;
    await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
    if (op === 'update') await m.create({ id: 'b', platform: 'scripted', credentials: { token: 'tok_initial_b_0000' } });
    const write = op === 'create'
      ? m.create({ id: 'b', platform: 'scripted', credentials: { token: OTHER_TOKEN } })
      : m.update('b', { credentials: { token: OTHER_TOKEN } });
    const results = await Promise.allSettled([m.rotateSecretKey(randomBytes(32).toString('hex')), write]);
    // Either may lose a race with a typed error and be retried; neither may leave unreadable data.
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(Error);
    if (results[1].status === 'rejected') {
      if (op === 'create') await m.create({ id: 'b', platform: 'scripted', credentials: { token: OTHER_TOKEN } });
      else await m.update('b', { credentials: { token: OTHER_TOKEN } });
    }
    const snap = await m.start('b');
    expect(snap.lastError).toBeNull();
    expect(snap.state).toBe('ready');
    expect(s.last('b').ctx.credentials).toEqual({ token: OTHER_TOKEN });
    // And the duplicate guard still recognises its token.
    await expect(m.create({ id: 'c', platform: 'scripted', credentials: { token: OTHER_TOKEN } })).rejects.toBeInstanceOf(DuplicateCredentialsError);
  });
});

describe('a persistent store needs a secret key', () => {
  /** The memory driver dressed up as persistent (as SQLite and PostgreSQL are). */
  function persistentMemory(): StorageDriver {
    return { ...memoryStorage(), persistent: true };
  }

  it('without a key, credentials are refused with SecretKeyRequiredError and nothing is stored; sessions without credentials work', async () => {
    const saved = process.env[SECRET_KEY_ENV];
    delete process.env[SECRET_KEY_ENV];
    try {
      const m = new SessionManager({ storage: persistentMemory(), adapters: [scriptedAdapter().adapter] });
      open.push(m);
      await m.open();
      const err = await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SecretKeyRequiredError);
      expect((err as Error).message).toMatch(/secret key/i);
      expect(dump(err)).not.toContain(TOKEN);
      expect((await m.list()).items).toEqual([]);
      expect((await m.create({ id: 'b', platform: 'scripted' })).hasCredentials).toBe(false);
    } finally {
      if (saved === undefined) delete process.env[SECRET_KEY_ENV];
      else process.env[SECRET_KEY_ENV] = saved;
    }
  });

  it(`the key can come from ${SECRET_KEY_ENV}; a malformed one fails the constructor`, async () => {
    const saved = process.env[SECRET_KEY_ENV];
    try {
      process.env[SECRET_KEY_ENV] = randomBytes(32).toString('base64');
      const storage = persistentMemory();
      const m = new SessionManager({ storage, adapters: [scriptedAdapter().adapter] });
      open.push(m);
      await m.open();
      await m.create({ id: 'a', platform: 'scripted', credentials: { token: TOKEN } });
      const stored = (await storage.sessions.get('a'))!;
      expect(stored.credentials!.startsWith('v1.')).toBe(true);
      expect(JSON.stringify(stored)).not.toContain(TOKEN);
      process.env[SECRET_KEY_ENV] = 'not-a-key';
      expect(() => new SessionManager({})).toThrow(ValidationError);
    } finally {
      if (saved === undefined) delete process.env[SECRET_KEY_ENV];
      else process.env[SECRET_KEY_ENV] = saved;
    }
  });
});

