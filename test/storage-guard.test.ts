import { describe, expect, it } from 'vitest';
import { guardStore, isGuarded, storageError, wrapStorageError, type SessionRecord, type StorageDriver } from 'multisession';

/** A driver that records its lifecycle calls; `open()` controls when its init settles. */
function recorder(options: { failInits?: number } = {}) {
  const calls: string[] = [];
  let failInits = options.failInits ?? 0;
  let releaseInit: (() => void) | null = null;
  let holdInit = false;
  const sessions = {
    list: async (): Promise<SessionRecord[]> => {
      calls.push('list');
      return [];
    },
  };
  const driver = {
    kind: 'recorder',
    persistent: false,
    async init() {
      calls.push('init');
      if (holdInit) await new Promise<void>((resolve) => (releaseInit = resolve));
      if (failInits-- > 0) throw new Error('no route to host');
      calls.push('opened');
    },
    async close() {
      calls.push('close');
    },
    async ping() {
      calls.push('ping');
    },
    sessions,
  } as unknown as StorageDriver;
  return {
    driver,
    calls,
    hold: () => (holdInit = true),
    release: () => {
      holdInit = false;
      releaseInit?.();
    },
  };
}

describe('guardStore', () => {
  it('opens lazily on the first call, once for concurrent callers', async () => {
    const r = recorder();
    const store = guardStore(r.driver);
    await Promise.all([store.sessions.list(), store.sessions.list(), store.init(), store.ping()]);
    expect(r.calls.filter((c) => c === 'init')).toHaveLength(1);
    expect(r.calls.indexOf('opened')).toBeLessThan(r.calls.indexOf('list'));
    await store.init(); // idempotent: the driver's init never runs while open
    expect(r.calls.filter((c) => c === 'init')).toHaveLength(1);
  });

  it('lets a failed opening be retried, by init() or by the next call', async () => {
    const r = recorder({ failInits: 2 });
    const store = guardStore(r.driver);
    await expect(store.init()).rejects.toThrow('no route to host');
    await expect(store.sessions.list()).rejects.toThrow('no route to host');
    await expect(store.sessions.list()).resolves.toEqual([]);
    expect(r.calls.filter((c) => c === 'init')).toHaveLength(3);
    await store.close();
    expect(r.calls.at(-1)).toBe('close');
  });

  it('refuses every call after close() with a StorageError prefixed [<kind>], until init() opens it again', async () => {
    const r = recorder();
    const store = guardStore(r.driver);
    await store.init();
    await store.close();
    await store.close(); // idempotent: the driver's close ran once
    expect(r.calls.filter((c) => c === 'close')).toHaveLength(1);
    await expect(store.sessions.list()).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/^\[recorder\] the store is closed/) });
    await expect(store.ping()).rejects.toMatchObject({ code: 'STORAGE' });
    expect(r.calls).not.toContain('list');
    await store.init();
    await expect(store.sessions.list()).resolves.toEqual([]);
    expect(r.calls.filter((c) => c === 'init')).toHaveLength(2);
  });

  it('never calls the driver close when it was never opened', async () => {
    const r = recorder({ failInits: 1 });
    const store = guardStore(r.driver);
    await store.close();
    expect(r.calls).toEqual([]);
    const other = recorder({ failInits: 1 });
    const failed = guardStore(other.driver);
    await expect(failed.init()).rejects.toThrow();
    await failed.close();
    expect(other.calls).not.toContain('close');
  });

  it('close() while opening: waits for the opening, then closes; calls meanwhile and after are refused', async () => {
    const r = recorder();
    r.hold();
    const store = guardStore(r.driver);
    const opening = store.init();
    await Promise.resolve();
    const closing = store.close();
    const during = store.sessions.list();
    r.release();
    await opening;
    await closing;
    await expect(during).rejects.toMatchObject({ code: 'STORAGE' });
    await expect(store.sessions.list()).rejects.toMatchObject({ code: 'STORAGE' });
    expect(r.calls).toEqual(['init', 'opened', 'close']);
    await store.init(); // and it opens again
    await expect(store.sessions.list()).resolves.toEqual([]);
  });

  it('init() while closing waits for the close, then opens again', async () => {
    const r = recorder();
    const store = guardStore(r.driver);
    await store.init();
    const closing = store.close();
    const reopening = store.init();
    await closing;
    await reopening;
    expect(r.calls).toEqual(['init', 'opened', 'close', 'init', 'opened']);
  });

  it('guards class-based capabilities (prototype methods), keeps plain values, and is a no-op on a guarded store', async () => {
    class Kv {
      readonly kind = 'kv-class';
      async get() {
        return 1;
      }
    }
    const r = recorder();
    const store = guardStore({ ...r.driver, kv: new Kv() as unknown as StorageDriver['kv'] });
    expect(await store.kv!.get('s', 'k')).toBe(1);
    expect((store.kv as unknown as Kv).kind).toBe('kv-class');
    expect(guardStore(store)).toBe(store);
    expect(isGuarded(store)).toBe(true);
    // A spread copy with a replaced method is not taken for a guarded store.
    const copy = { ...store, ping: async () => {} };
    expect(isGuarded(copy)).toBe(false);
    expect(guardStore(copy)).not.toBe(copy);
  });

  it('turns a synchronous throw of a driver method into a rejection', async () => {
    const r = recorder();
    const store = guardStore({
      ...r.driver,
      sessions: {
        ...r.driver.sessions,
        get: () => {
          throw new Error('sync');
        },
      },
    } as StorageDriver);
    await store.init();
    await expect(store.sessions.get('x')).rejects.toThrow('sync');
  });
});

describe('storageError and wrapStorageError', () => {
  it('prefix the message with the store kind and keep the cause; our own errors pass unchanged', () => {
    const cause = new Error('disk I/O error');
    expect(storageError('redis', 'the store is gone', cause)).toMatchObject({ code: 'STORAGE', message: '[redis] the store is gone', cause });
    const wrapped = wrapStorageError('redis', 'createSession', cause, 'Check the disk.');
    expect(wrapped).toMatchObject({ code: 'STORAGE', message: '[redis] createSession failed: disk I/O error. Check the disk.', cause });
    const own = storageError('redis', 'x');
    expect(wrapStorageError('redis', 'op', own)).toBe(own);
  });
});
