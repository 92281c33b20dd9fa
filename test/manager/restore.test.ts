import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { SessionManager, StorageError, memoryStorage, type StorageDriver } from 'multisession';
import { createManualClock } from 'multisession/testing';
import { scriptedAdapter, settle } from '../helpers/scripted-adapter.js';

/** A memory store holding `running` sessions (gate mode) and one stopped session. */
async function storeWithRunningSessions(n: number) {
  const storage = memoryStorage();
  const clock = createManualClock();
  const first = new SessionManager({ storage, adapters: [scriptedAdapter().adapter], clock });
  await first.open();
  for (let i = 0; i < n; i++) {
    await first.create({ id: `s${i}`, platform: 'scripted', config: { mode: 'gate' }, credentials: { token: `token-${i}` } });
    void first.start(`s${i}`);
  }
  await first.create({ id: 'off', platform: 'scripted' });
  await settle();
  await first.close();
  await storage.init(); // the memory store keeps its data across close(): open it again
  return { storage, clock };
}

describe('open() restores desired-running sessions', () => {
  it('restore.concurrency at a time, and only those whose desired state is running', async () => {
    const { storage, clock } = await storeWithRunningSessions(5);
    const scripted = scriptedAdapter();
    const manager = new SessionManager({ storage, adapters: [scripted.adapter], clock, restore: { concurrency: 2 } });
    const ids = ['s0', 's1', 's2', 's3', 's4'];
    let opened = false;
    const opening = manager.open().then(() => (opened = true));
    let maxInFlight = 0;
    for (let round = 0; round < 10 && !opened; round++) {
      await settle();
      const starting: string[] = [];
      for (const id of ids) if ((await manager.get(id)).state === 'starting') starting.push(id);
      maxInFlight = Math.max(maxInFlight, starting.length);
      for (const id of starting) scripted.last(id).gate.resolve();
    }
    await opening;
    expect(maxInFlight).toBeGreaterThan(0);
    expect(maxInFlight).toBeLessThanOrEqual(2);
    for (const id of ids) {
      const snap = await manager.get(id);
      expect(snap.state, id).toBe('ready');
      expect(snap.transitions.at(-2)).toMatchObject({ from: 'stopped', to: 'starting', reason: 'restore' });
      expect(scripted.last(id).ctx.credentials).toEqual({ token: `token-${id.slice(1)}` });
    }
    expect((await manager.get('off')).state).toBe('stopped');
    expect(scripted.connections('off')).toHaveLength(0);
    await manager.close();
  });

  it('a session whose platform is no longer registered ends failed with ADAPTER_NOT_FOUND; the others run', async () => {
    const storage = memoryStorage();
    const clock = createManualClock();
    const old = new SessionManager({ storage, adapters: [scriptedAdapter().adapter, scriptedAdapter('retired').adapter], clock });
    await old.open();
    await old.create({ id: 'kept', platform: 'scripted' });
    await old.create({ id: 'orphan', platform: 'retired' });
    await old.start('kept');
    await old.start('orphan');
    await old.close();
    await storage.init();
    const manager = new SessionManager({ storage, adapters: [scriptedAdapter().adapter], clock });
    await manager.open();
    expect((await manager.get('kept')).state).toBe('ready');
    const orphan = await manager.get('orphan');
    expect(orphan.state).toBe('failed');
    expect(orphan.lastError).toMatchObject({ code: 'ADAPTER_NOT_FOUND' });
    expect(orphan.lastError!.message).toMatch(/retired/);
    // Starting it again cannot help: it fails at once, no back-off loop.
    const again = await manager.start('orphan');
    expect(again.state).toBe('failed');
    expect(again.lastError).toMatchObject({ code: 'ADAPTER_NOT_FOUND' });
    // It can still be deleted.
    await manager.delete('orphan');
    expect((await manager.list()).items.map((s) => s.id)).toEqual(['kept']);
    await manager.close();
  });
});

describe('open()', () => {
  it('a store that cannot be opened fails open() with StorageError; a later open() succeeds', async () => {
    const inner = memoryStorage();
    let failures = 1;
    const flaky: StorageDriver = {
      ...inner,
      init: async () => {
        if (failures-- > 0) throw new Error('connection refused');
        return inner.init();
      },
    };
    const manager = new SessionManager({ storage: flaky, adapters: [scriptedAdapter().adapter], clock: createManualClock() });
    const err = await manager.open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/connection refused/);
    await expect(manager.list()).rejects.toMatchObject({ code: 'MANAGER_NOT_OPEN' });
    await manager.open();
    await manager.create({ id: 'a', platform: 'scripted' });
    expect((await manager.list()).items.map((x) => x.id)).toEqual(['a']);
    await manager.close();
  });

  it('open() twice at once opens once', async () => {
    const storage = memoryStorage();
    let inits = 0;
    const counted: StorageDriver = { ...storage, init: async () => (inits++, storage.init()) };
    const manager = new SessionManager({ storage: counted, adapters: [scriptedAdapter().adapter], clock: createManualClock() });
    await Promise.all([manager.open(), manager.open()]);
    await manager.open();
    expect(inits).toBe(1);
    await manager.close();
  });
});

describe('what a restarted process remembers', () => {
  it("a session's transition history, last error and counters survive a restart", async () => {
    const storage = memoryStorage();
    const clock = createManualClock();
    const scripted = scriptedAdapter();
    const first = new SessionManager({ storage, adapters: [scripted.adapter], clock, historySize: 5, restart: { retries: 0 } });
    await first.open();
    await first.create({ id: 'a', platform: 'scripted' });
    await first.start('a', { reason: 'morning shift' });
    scripted.last('a').ctx.fail(new Error('socket closed'));
    await first.waitFor('a', 'failed');
    await first.stop('a');
    const before = await first.get('a');
    const statsBefore = await first.stats('a');
    expect(before.transitions).toHaveLength(5);
    await first.close();
    await storage.init();

    const second = new SessionManager({ storage, adapters: [scriptedAdapter().adapter], clock, historySize: 5 });
    await second.open();
    const after = await second.get('a');
    expect(after.state).toBe('stopped');
    expect(after.lastError).toEqual(before.lastError);
    expect(await second.stats('a')).toEqual(statsBefore);
    expect(after.transitions).toEqual(before.transitions);
    await second.close();
  });
});

describe('restoring with the wrong secret key', () => {
  it('a session whose credentials cannot be decrypted ends failed (DECRYPTION) at once, without a retry loop; the others run', async () => {
    const storage = memoryStorage();
    const clock = createManualClock();
    const first = new SessionManager({ storage, adapters: [scriptedAdapter().adapter], clock, secretKey: randomBytes(32).toString('base64') });
    await first.open();
    await first.create({ id: 'sealed', platform: 'scripted', credentials: { token: 'tok-sealed-1' } });
    await first.create({ id: 'plain', platform: 'scripted' });
    await first.start('sealed');
    await first.start('plain');
    await first.close();
    await storage.init();

    const scripted = scriptedAdapter();
    const second = new SessionManager({ storage, adapters: [scripted.adapter], clock, secretKey: randomBytes(32).toString('base64') });
    await second.open();
    expect((await second.get('plain')).state).toBe('ready');
    const sealed = await second.get('sealed');
    expect(sealed.state).toBe('failed');
    expect(sealed.lastError).toMatchObject({ code: 'DECRYPTION' });
    expect(sealed.lastError!.message).toMatch(/key/);
    expect(scripted.connections('sealed')).toHaveLength(0); // the adapter never saw undecryptable credentials
    await clock.advance(600_000);
    expect((await second.stats('sealed')).starts).toBeLessThanOrEqual(1);
    // New credentials fix it.
    await second.update('sealed', { credentials: { token: 'tok-sealed-2' } });
    expect((await second.start('sealed')).state).toBe('ready');
    await second.close();
  });
});

describe('close() while open() is still restoring', () => {
  it('stops the restore: no further session is started, and close() does not wait for the rest of the queue', async () => {
    const { storage, clock } = await storeWithRunningSessions(5);
    const scripted = scriptedAdapter();
    const manager = new SessionManager({ storage, adapters: [scripted.adapter], clock, restore: { concurrency: 1 }, startTimeoutMs: 3_000 });
    const ids = ['s0', 's1', 's2', 's3', 's4'];
    let closed = false;
    const opening = manager.open().catch(() => undefined);
    await settle();
    expect(ids.filter((id) => scripted.connections(id).length > 0)).toEqual(['s0']); // one at a time, held at its gate
    const closing = manager.close().then(() => (closed = true));
    for (let t = 0; t < 5 && !closed; t++) await clock.advance(1_000);
    expect(closed).toBe(true);
    await closing;
    await opening;
    expect(ids.filter((id) => scripted.connections(id).length > 0)).toEqual(['s0']);
    expect(scripted.connections('s0').every((c) => c.stopped)).toBe(true);
  });
});

