import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DecryptionError, SecretKeyRequiredError, defineAdapter, memoryStorage, type JsonValue, type KvStore, type StorageDriver } from 'multisession';
import { z } from 'zod';
import { setup } from '../helpers/setup.js';
import { deferred, settle, type Deferred } from '../helpers/scripted-adapter.js';

/**
 * Auth state and context data at rest, on the memory driver (the driver's own `kv` shows what is
 * stored): sealed with the secret key, bound to their session and key, re-sealed by a rotation.
 * The same on SQLite and PostgreSQL, byte for byte: test/stored-data-at-rest-*.test.ts.
 */
const newKey = () => randomBytes(32).toString('base64');
const SESSION_STRING = '1BVtsOKABu7Zq3b9SESSIONSTRINGxyz';
const CHAT = { from: 'alice', text: 'meet me at the usual place' };
const SEALED = /^ms-kv1\.[0-9a-f]{16}\.[\w-]+\.[\w-]+\.[\w-]+$/;
const keyIdOf = (stored: JsonValue | undefined) => String(stored).split('.')[1];

async function withSession(options: { secretKey?: string; encryptContextData?: boolean; storage?: StorageDriver } = {}) {
  const storage = options.storage ?? memoryStorage();
  const h = await setup({ storage, ...options });
  await h.manager.create({ id: 'a', platform: 'scripted' });
  await h.manager.create({ id: 'b', platform: 'scripted' });
  await h.manager.start('a');
  return { ...h, raw: storage.kv! as KvStore, ctx: () => h.scripted.last('a').ctx };
}

describe('auth state and context data at rest', () => {
  it('with a key, both are sealed in the store with its id; they read back as written; keys stay plain, so listing by prefix works', async () => {
    const { manager: m, raw, ctx } = await withSession({ secretKey: newKey() });
    await ctx().authState.set('session', SESSION_STRING);
    await ctx().kv.batch([
      { op: 'set', key: 'history:chat-1', value: [CHAT] },
      { op: 'set', key: 'history:chat-2', value: [] },
      { op: 'set', key: 'topics', value: { 42: 'general' } },
    ]);
    await m.kv('a').set('history:chat-0', [CHAT, CHAT]);

    const stored = await raw.list('a');
    expect(stored.map((e) => e.key)).toEqual(['auth:session', 'ctx:history:chat-0', 'ctx:history:chat-1', 'ctx:history:chat-2', 'ctx:topics']);
    for (const { value } of stored) expect(value).toMatch(SEALED);
    expect(new Set(stored.map((e) => keyIdOf(e.value))).size).toBe(1);
    expect(JSON.stringify(stored)).not.toContain('SESSIONSTRING');
    expect(JSON.stringify(stored)).not.toContain('usual place');

    expect(await ctx().authState.get('session')).toBe(SESSION_STRING);
    expect(await m.kv('a').list({ prefix: 'history:' })).toEqual([
      { key: 'history:chat-0', value: [CHAT, CHAT] },
      { key: 'history:chat-1', value: [CHAT] },
      { key: 'history:chat-2', value: [] },
    ]);
    expect(await ctx().kv.get('topics')).toEqual({ 42: 'general' });
    expect(await m.kv('a').clear({ prefix: 'history:' })).toBe(3);
    expect((await raw.list('a')).map((e) => e.key)).toEqual(['auth:session', 'ctx:topics']);
    await m.close();
  });

  it('the memory store without a key keeps values as they are, as it does credentials', async () => {
    const { manager: m, raw, ctx } = await withSession();
    await ctx().authState.set('session', SESSION_STRING);
    await m.kv('a').set('history', [CHAT]);
    expect(await raw.list('a')).toEqual([
      { key: 'auth:session', value: SESSION_STRING },
      { key: 'ctx:history', value: [CHAT] },
    ]);
    expect(await m.kv('a').get('history')).toEqual([CHAT]);
    await m.close();
  });

  it('a sealed value copied to another session, to another key, or altered is refused with DecryptionError; the original still opens', async () => {
    const { manager: m, raw, ctx } = await withSession({ secretKey: newKey() });
    await ctx().authState.set('session', SESSION_STRING);
    await m.kv('a').set('history', [CHAT]);
    const sealedAuth = (await raw.get('a', 'auth:session'))!;
    const sealedCtx = (await raw.get('a', 'ctx:history'))!;

    await raw.write('b', [{ op: 'set', key: 'ctx:history', value: sealedCtx }]); // another session
    await raw.write('a', [
      { op: 'set', key: 'ctx:copy', value: sealedCtx }, // another key
      { op: 'set', key: 'ctx:session', value: sealedAuth }, // auth state read as context data
      { op: 'set', key: 'ctx:altered', value: `${String(sealedCtx).slice(0, -2)}AA` },
    ]);
    for (const [id, key] of [['b', 'history'], ['a', 'copy'], ['a', 'session'], ['a', 'altered']] as const) {
      const err = await m.kv(id).get(key).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(DecryptionError);
      expect(err).toMatchObject({ code: 'DECRYPTION', context: { sessionId: id, key: `ctx:${key}` } });
      expect((err as Error).message).not.toContain('usual place');
    }
    await expect(m.kv('b').list()).rejects.toBeInstanceOf(DecryptionError);
    expect(await m.kv('a').get('history')).toEqual([CHAT]);
    expect(await ctx().authState.get('session')).toBe(SESSION_STRING);
    await m.close();
  });

  it('a start that fails on auth state the key cannot open ends failed with DECRYPTION, without retries', async () => {
    let starts = 0;
    const resumer = defineAdapter({
      name: 'resumer',
      credentials: z.undefined(),
      config: z.object({}),
      connect: (ctx) => ({
        async start() {
          starts++;
          await ctx.authState.get('session'); // resumes a stored login
        },
        async stop() {},
        async health() {
          return { status: 'healthy' as const };
        },
        async send() {},
      }),
    });
    const storage = memoryStorage();
    const { manager: m } = await setup({ storage, secretKey: newKey() }, [resumer]);
    const raw = storage.kv!;
    await m.create({ id: 'a', platform: 'resumer' });
    await m.create({ id: 'b', platform: 'resumer' });
    await m.start('a');
    await m.kv('a').set('x', 1);
    await raw.write('a', [{ op: 'set', key: 'auth:session', value: (await raw.get('a', 'ctx:x'))! }]); // sealed for another key
    starts = 0;
    expect(await m.restart('a')).toMatchObject({ state: 'failed', lastError: { code: 'DECRYPTION' } });
    expect(starts).toBe(1); // setup() allows 2 retries: none was spent on it
    expect((await m.start('b')).state).toBe('ready');
    await m.close();
  });

  it('encryptContextData: false stores new context data as it is (auth state stays sealed) and still opens what was sealed before', async () => {
    const key = newKey();
    const sealing = await withSession({ secretKey: key });
    await sealing.manager.kv('a').set('old', 'sealed-before');
    const sealedOld = (await sealing.raw.get('a', 'ctx:old'))!;
    await sealing.manager.close();

    const { manager: m, raw, ctx } = await withSession({ secretKey: key, encryptContextData: false });
    expect(m.options.encryptContextData).toBe(false);
    await raw.write('a', [{ op: 'set', key: 'ctx:old', value: sealedOld }]);
    await ctx().authState.set('session', SESSION_STRING);
    await m.kv('a').set('history', [CHAT]);
    expect(await raw.get('a', 'ctx:history')).toEqual([CHAT]);
    expect(await raw.get('a', 'auth:session')).toMatch(SEALED);
    expect(await m.kv('a').list()).toEqual([
      { key: 'history', value: [CHAT] },
      { key: 'old', value: 'sealed-before' },
    ]);
    await m.close();
  });

  it('a persistent store without a key refuses auth state and context data with SecretKeyRequiredError, and stores nothing', async () => {
    const persistent = (): StorageDriver => ({ ...memoryStorage(), persistent: true });
    const { manager: m, raw, ctx } = await withSession({ storage: persistent() });
    await expect(ctx().authState.set('session', SESSION_STRING)).rejects.toBeInstanceOf(SecretKeyRequiredError);
    const err = await m.kv('a').set('history', [CHAT]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(SecretKeyRequiredError);
    expect((err as Error).message).toMatch(/secretKey|MULTISESSION_SECRET_KEY/);
    expect((err as Error).message).toContain('encryptContextData: false');
    expect(await raw.list('a')).toEqual([]);
    await m.close();

    const optedOut = await withSession({ storage: persistent(), encryptContextData: false });
    await optedOut.manager.kv('a').set('history', [CHAT]);
    expect(await optedOut.raw.get('a', 'ctx:history')).toEqual([CHAT]);
    await expect(optedOut.ctx().authState.set('session', SESSION_STRING)).rejects.toBeInstanceOf(SecretKeyRequiredError);
    await optedOut.manager.close();
  });

  it('a plain value where a sealed one belongs (written before encryption at rest) is refused, not trusted; rotating to the same key seals it', async () => {
    const key = newKey();
    const { manager: m, raw, ctx } = await withSession({ secretKey: key });
    await m.kv('a').set('sealed', 1);
    await raw.write('a', [
      { op: 'set', key: 'auth:session', value: SESSION_STRING },
      { op: 'set', key: 'ctx:history', value: [CHAT] },
    ]);
    const err = await ctx().authState.get('session').then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'DECRYPTION', context: { sessionId: 'a', key: 'auth:session' } });
    expect((err as Error).message).toMatch(/unencrypted.*rotateSecretKey/);
    await expect(m.kv('a').get('history')).rejects.toBeInstanceOf(DecryptionError);
    const sealedBefore = await raw.get('a', 'ctx:sealed');

    expect(await m.rotateSecretKey(key)).toEqual({ rotated: 0 });
    expect(await ctx().authState.get('session')).toBe(SESSION_STRING);
    expect(await m.kv('a').get('history')).toEqual([CHAT]);
    expect(await raw.get('a', 'auth:session')).toMatch(SEALED);
    expect(await raw.get('a', 'ctx:sealed')).toBe(sealedBefore); // sealed already: left as it was
    expect(await m.audit({ action: 'rotate-key' })).toMatchObject([{ details: { values: 2 } }]);
    await m.close();
  });
});

describe('rotateSecretKey and stored values', () => {
  it('re-seals auth state and context data of every session with the new key; sessions keep reading them', async () => {
    const { manager: m, raw, ctx, scripted } = await withSession({ secretKey: newKey() });
    await ctx().authState.set('session', SESSION_STRING);
    await m.kv('a').set('history', [CHAT]);
    await m.kv('b').set('history', []);
    const before = [...(await raw.list('a')), ...(await raw.list('b'))];
    expect(await m.rotateSecretKey(newKey(), { actor: 'ops' })).toEqual({ rotated: 0 });
    const after = [...(await raw.list('a')), ...(await raw.list('b'))];
    expect(after.map((e) => e.key)).toEqual(before.map((e) => e.key));
    for (const [i, e] of after.entries()) {
      expect(e.value).toMatch(SEALED);
      expect(keyIdOf(e.value)).not.toBe(keyIdOf(before[i]!.value));
    }
    expect(await m.audit({ action: 'rotate-key' })).toMatchObject([{ actor: 'ops', details: { values: 3 } }]);
    expect(await ctx().authState.get('session')).toBe(SESSION_STRING);
    await m.restart('a');
    expect(await scripted.last('a').ctx.authState.get('session')).toBe(SESSION_STRING);
    expect(await m.kv('b').get('history')).toEqual([]);
    await m.close();
  });

  it('during a rotation, reads go on (with either key) and writes wait; a write made meanwhile lands under the new key', async () => {
    const storage = memoryStorage();
    const kv = storage.kv!;
    let hold: Deferred | null = null;
    let writes = 0;
    const held = { ...storage, kv: { ...kv, write: async (id: string, ops: Parameters<KvStore['write']>[1]) => {
      if (hold && ++writes === 2) await hold.promise; // the rotation has re-sealed session a, not yet b
      return kv.write(id, ops);
    } } };
    const { manager: m, raw } = await withSession({ secretKey: newKey(), storage: held });
    await m.kv('a').set('x', 'a-x');
    await m.kv('b').set('x', 'b-x');
    const oldKeyId = keyIdOf(await raw.get('a', 'ctx:x'));

    hold = deferred();
    const rotation = m.rotateSecretKey(newKey());
    for (let i = 0; writes < 2 && i < 1_000; i++) await settle(1);
    expect(writes).toBe(2);
    expect(keyIdOf(await raw.get('a', 'ctx:x'))).not.toBe(oldKeyId); // re-sealed already
    expect(await m.kv('a').get('x')).toBe('a-x'); // new key
    expect(await m.kv('b').get('x')).toBe('b-x'); // old key
    let written = false;
    const write = m.kv('b').set('y', 'b-y').then(() => (written = true));
    await settle();
    expect(written).toBe(false);
    hold.resolve();
    await rotation;
    await write;
    const newKeyId = keyIdOf(await raw.get('a', 'ctx:x'));
    expect(keyIdOf(await raw.get('b', 'ctx:y'))).toBe(newKeyId);
    expect(keyIdOf(await raw.get('b', 'ctx:x'))).toBe(newKeyId);
    expect(await m.kv('b').list()).toEqual([
      { key: 'x', value: 'b-x' },
      { key: 'y', value: 'b-y' },
    ]);
    await m.close();
  });

  it('a rotation that stops half-way leaves every value readable, the credentials under the old key, and finishes when run again', async () => {
    const storage = memoryStorage();
    const kv = storage.kv!;
    let failAt = 0;
    let writes = 0;
    const flaky = { ...storage, kv: { ...kv, write: async (id: string, ops: Parameters<KvStore['write']>[1]) => {
      if (failAt && ++writes === failAt) throw new Error('connection lost');
      return kv.write(id, ops);
    } } };
    const { manager: m, raw } = await withSession({ secretKey: newKey(), storage: flaky });
    await m.update('b', { credentials: { token: 'tok-b-1234567890' } });
    await m.kv('a').set('x', 'a-x');
    await m.kv('b').set('x', 'b-x');
    const oldKeyId = keyIdOf(await raw.get('b', 'ctx:x'));
    const nextKey = newKey();

    failAt = 2;
    await expect(m.rotateSecretKey(nextKey)).rejects.toThrow(/connection lost/);
    expect(keyIdOf(await raw.get('a', 'ctx:x'))).not.toBe(oldKeyId);
    expect(keyIdOf(await raw.get('b', 'ctx:x'))).toBe(oldKeyId);
    expect(await m.kv('a').get('x')).toBe('a-x');
    expect(await m.kv('b').get('x')).toBe('b-x');
    expect((await m.start('b')).state).toBe('ready'); // credentials: still the old key
    expect(await m.audit({ action: 'rotate-key' })).toEqual([]);

    failAt = 0;
    expect(await m.rotateSecretKey(nextKey)).toEqual({ rotated: 1 });
    const newKeyId = keyIdOf(await raw.get('a', 'ctx:x'));
    expect(keyIdOf(await raw.get('b', 'ctx:x'))).toBe(newKeyId);
    expect(await m.kv('a').get('x')).toBe('a-x');
    expect(await m.kv('b').get('x')).toBe('b-x');
    expect(await m.audit({ action: 'rotate-key' })).toMatchObject([{ details: { values: 1 } }]); // a's was kept
    await m.restart('b');
    expect((await m.get('b')).state).toBe('ready');
    await m.close();
  });

  it('a value that cannot be opened stops the rotation before anything is re-sealed', async () => {
    const { manager: m, raw } = await withSession({ secretKey: newKey() });
    await m.kv('a').set('x', 'a-x');
    const foreign = await withSession({ secretKey: newKey() });
    await foreign.manager.kv('b').set('x', 'foreign');
    await raw.write('b', [{ op: 'set', key: 'ctx:x', value: (await foreign.raw.get('b', 'ctx:x'))! }]);
    await foreign.manager.close();
    const before = await raw.get('a', 'ctx:x');

    const err = await m.rotateSecretKey(newKey()).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DecryptionError);
    expect(err).toMatchObject({ context: { sessionId: 'b', key: 'ctx:x' } });
    expect((err as Error).message).toMatch(/Nothing was changed/);
    expect(await raw.get('a', 'ctx:x')).toBe(before);
    expect(await m.kv('a').get('x')).toBe('a-x');
    await m.close();
  });
});
