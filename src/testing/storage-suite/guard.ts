import type { StorageDriver } from '../../storage/contract.js';
import { guardStore } from '../../storage/guarded-storage.js';
import { caught, rejectsWithCode } from '../runner.js';
import type { SuiteContext } from './context.js';

/**
 * The store under the lifecycle guard (`guardStore`, applied by our factories, the manager and this
 * suite): refused after `close()` with a `StorageError` prefixed `[<kind>] `, reopened by `init()`,
 * opened lazily by the first call, a failed opening retried, `close()` while opening.
 */
export function guardGroup(t: SuiteContext): void {
  const { it, expect, create } = t;

  /** A second guard over the (closed) store whose opening fails `failures` times first. */
  const flaky = (failures: number) => {
    const inner = t.store;
    let inits = 0;
    const driver: StorageDriver = {
      ...inner, // the capabilities, still guarded by the store's own guard
      kind: inner.kind,
      persistent: inner.persistent,
      init: async () => {
        inits++;
        if (failures-- > 0) throw new Error('transient failure while opening');
        await inner.init();
      },
      close: () => inner.close(),
      ping: () => inner.ping(),
    };
    return { store: guardStore(driver), inits: () => inits };
  };

  it('refuses every call after close() with a StorageError named after the store', async () => {
    await create('s1');
    await t.store.close();
    const error = await rejectsWithCode(expect, t.sessions.list(), 'STORAGE');
    expect(error.message.startsWith(`[${t.store.kind}] `)).toBe(true);
    await rejectsWithCode(expect, t.sessions.get('s1'), 'STORAGE');
    await rejectsWithCode(expect, t.store.ping(), 'STORAGE');
    await t.store.close(); // idempotent
  });

  it('opens the store again with init() after close()', async () => {
    await t.store.close();
    await t.store.init();
    await t.store.ping();
    expect(Array.isArray(await t.sessions.list())).toBe(true);
    await create('after-reopen');
    expect((await t.sessions.get('after-reopen'))?.id).toBe('after-reopen');
  });

  it('shares one opening between concurrent init() calls and the calls made meanwhile', async () => {
    await t.store.close();
    const [, , listed] = await Promise.all([t.store.init(), t.store.init(), t.sessions.list()]);
    expect(Array.isArray(listed)).toBe(true);
  });

  it('opens lazily on the first call, and retries an opening that failed', async () => {
    await t.store.close();
    const { store, inits } = flaky(1);
    const error = await caught(expect, store.sessions.list());
    expect(error.message).toContain('transient failure while opening');
    expect(Array.isArray(await store.sessions.list())).toBe(true); // the next call opens it
    expect(inits()).toBe(2);
    await store.ping();
    await store.close();
  });

  it('refuses calls when closed while opening, and opens again with init()', async () => {
    await t.store.close();
    const { store } = flaky(0);
    const opening = store.init();
    const closing = store.close();
    await opening;
    await closing;
    await rejectsWithCode(expect, store.sessions.list(), 'STORAGE');
    await store.init();
    expect(Array.isArray(await store.sessions.list())).toBe(true);
    await store.close();
  });
}
