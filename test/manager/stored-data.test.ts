import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DecryptionError, SecretKeyRequiredError, defineAdapter, memoryStorage, type JsonValue, type KvStore, type StorageDriver } from 'multisession';
import { z } from 'zod';
import { setup } from '../helpers/setup.js';

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

  it('a plain value where a sealed one belongs (written before encryption at rest) is refused, not trusted', async () => {
    const { manager: m, raw, ctx } = await withSession({ secretKey: newKey() });
    await raw.write('a', [
      { op: 'set', key: 'auth:session', value: SESSION_STRING },
      { op: 'set', key: 'ctx:history', value: [CHAT] },
    ]);
    const err = await ctx().authState.get('session').then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'DECRYPTION', context: { sessionId: 'a', key: 'auth:session' } });
    expect((err as Error).message).toMatch(/unencrypted/);
    await expect(m.kv('a').get('history')).rejects.toBeInstanceOf(DecryptionError);
    await m.close();
  });
});
