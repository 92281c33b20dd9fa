import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager, ValidationError, memoryStorage, type StorageDriver } from 'multisession';
import { createManualClock, simulatedAdapter, type ManualClock } from 'multisession/testing';

/**
 * The write-behind of runtime status, transitions and counters, seen through the store: batches
 * are written at the latest `persist.flushMs` after their first change, by the manager's clock,
 * even while a burst of awaited calls never lets the event loop turn; audit entries are stored
 * with the call that makes them.
 */
const T0 = Date.UTC(2026, 0, 1);
let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

/** A memory store that counts the write-behind's driver calls. */
function countingStore() {
  const inner = memoryStorage();
  const calls = { saveStatus: 0, historyAppend: 0, auditAppend: 0 };
  const storage: StorageDriver = {
    kind: 'counting',
    persistent: false,
    init: () => inner.init(),
    close: () => inner.close(),
    ping: () => inner.ping(),
    sessions: {
      ...inner.sessions,
      saveStatus: (updates) => {
        calls.saveStatus++;
        return inner.sessions.saveStatus(updates);
      },
    },
    history: {
      ...inner.history!,
      append: (entries, keep) => {
        calls.historyAppend++;
        return inner.history!.append(entries, keep);
      },
    },
    audit: {
      ...inner.audit!,
      append: (entries) => {
        calls.auditAppend++;
        return inner.audit!.append(entries);
      },
    },
    counters: inner.counters!,
    kv: inner.kv!,
  };
  return { storage, inner, calls };
}

async function managerOn(storage: StorageDriver, clock: ManualClock, options: { persist?: { flushMs: number } } = {}) {
  const m = new SessionManager({ storage, clock, adapters: [simulatedAdapter({ clock })], health: { intervalMs: 3_600_000 }, ...options });
  open.push(m);
  await m.open();
  return m;
}

/**
 * `n` sessions created and started one awaited call after another, the clock moved `stepMs`
 * after each (without firing timers): the whole loop runs in promise jobs, as a burst does on a
 * synchronous store. Returns whether the event loop turned meanwhile.
 */
async function burst(m: SessionManager, clock: ManualClock, n: number, stepMs: number): Promise<{ loopTurned: boolean }> {
  let loopTurned = false;
  setImmediate(() => (loopTurned = true));
  for (let i = 0; i < n; i++) {
    await m.create({ id: `s${i}`, platform: 'simulated', credentials: { token: `token-${i}` } }, { actor: 'burst' });
    await m.start(`s${i}`, { actor: 'burst' });
    clock.set(clock.now() + stepMs);
  }
  return { loopTurned };
}

const storedState = async (inner: StorageDriver, id: string) => (await inner.sessions.get(id))?.state;
const storedTransitions = async (inner: StorageDriver, id: string) => (await inner.history!.list(id, 10)).length;

describe('write-behind under a burst', () => {
  it('a burst of awaited creates and starts that never lets the event loop turn still gets status and transitions written within flushMs, in batches', async () => {
    const clock = createManualClock(T0);
    const { storage, inner, calls } = countingStore();
    const m = await managerOn(storage, clock);

    // 20 sessions, 50 ms of manager time apart: 950 ms in all, the default bound 250 ms.
    const { loopTurned } = await burst(m, clock, 20, 50);
    expect(loopTurned).toBe(false); // no timer, no setImmediate could have flushed

    // Changes older than the bound (and one step) when the last came in are stored.
    for (let i = 0; i <= 13; i++) {
      expect(await storedState(inner, `s${i}`)).toBe('ready');
      expect(await storedTransitions(inner, `s${i}`)).toBe(2);
    }
    // The newest are still behind (written behind, not through) …
    expect(await storedState(inner, 's19')).toBe('stopped');
    expect(await storedTransitions(inner, 's19')).toBe(0);
    // … and they went in a few batches, at most one per bound of manager time, not one per session.
    expect(calls.historyAppend).toBeGreaterThanOrEqual(2);
    expect(calls.historyAppend).toBeLessThanOrEqual(Math.ceil(950 / 250));
    expect(calls.saveStatus).toBe(calls.historyAppend);

    // Audit entries are never behind: each call stored its entry with its change (no separate append).
    const audit = await inner.audit!.list({ limit: 100 });
    expect(audit.filter((e) => e.action === 'create')).toHaveLength(20);
    expect(audit.filter((e) => e.action === 'start')).toHaveLength(20);
    expect(calls.auditAppend).toBe(0);

    // A flush (stats() waits for one) still writes everything.
    await m.stats('s19');
    expect(await storedState(inner, 's19')).toBe('ready');
    expect(await storedTransitions(inner, 's19')).toBe(2);
  });

  it('persist.flushMs moves the bound: 1 s holds a 950 ms burst in memory until the event loop turns', async () => {
    const clock = createManualClock(T0);
    const { storage, inner, calls } = countingStore();
    const m = await managerOn(storage, clock, { persist: { flushMs: 1_000 } });
    const { loopTurned } = await burst(m, clock, 20, 50);
    expect(loopTurned).toBe(false);
    expect(calls.historyAppend).toBe(0);
    expect(await storedState(inner, 's0')).toBe('stopped');

    // One more change past the bound writes the whole batch at once.
    clock.set(clock.now() + 100);
    await m.create({ id: 'late', platform: 'simulated', credentials: { token: 'token-late' } });
    await m.start('late');
    expect(calls.historyAppend).toBe(1);
    expect(await storedState(inner, 's0')).toBe('ready');
    expect(await storedTransitions(inner, 's19')).toBe(2);
  });

  it('with the event loop free, a change is written on its next turn, long before the bound', async () => {
    const clock = createManualClock(T0);
    const { storage, inner, calls } = countingStore();
    const m = await managerOn(storage, clock);
    await m.create({ id: 'a', platform: 'simulated', credentials: { token: 'token-a' } });
    await m.start('a');
    expect(await storedState(inner, 'a')).toBe('stopped');
    await new Promise((resolve) => setImmediate(resolve)); // one turn; the manager's clock has not moved
    await new Promise((resolve) => setImmediate(resolve));
    expect(await storedState(inner, 'a')).toBe('ready');
    expect(await storedTransitions(inner, 'a')).toBe(2);
    expect(calls.historyAppend).toBe(1);
  });

  it('audits a restart (desired state unchanged), logout, clear and delete before the call returns; entries that ride on a write add no call', async () => {
    const clock = createManualClock(T0);
    const { storage, inner, calls } = countingStore();
    const m = await managerOn(storage, clock);
    const actions = async () => (await inner.audit!.list({ sessionId: 'a' })).map((e) => `${e.action}:${e.actor}`);
    await m.create({ id: 'a', platform: 'simulated', credentials: { token: 'token-a' } }, { actor: 'ops' });
    await m.start('a', { actor: 'ops' });
    expect(calls.auditAppend).toBe(0); // both rode on their session write
    await m.restart('a', { actor: 'ops' }); // desired state stays running: nothing to ride on
    await m.logout('a', { actor: 'ops' });
    expect(await m.clear('a', { actor: 'ops' })).toBe(0);
    expect(await actions()).toEqual(['clear:ops', 'logout:ops', 'restart:ops', 'start:ops', 'create:ops']);
    expect(calls.auditAppend).toBe(3);
    await m.delete('a', { actor: 'ops', force: true });
    expect((await actions())[0]).toBe('delete:ops');
    expect(calls.auditAppend).toBe(3);
  });
});

describe('persist options', () => {
  it.each([
    [{ flushMs: 0 }, ['persist', 'flushMs']],
    [{ flushMs: -5 }, ['persist', 'flushMs']],
    [{ flushMs: 1.5 }, ['persist', 'flushMs']],
    [{ flushMs: '250' }, ['persist', 'flushMs']],
    [{ flushMs: 60_001 }, ['persist', 'flushMs']],
    [{ flushMs: 250, batch: 10 }, ['persist']],
  ])('refuses persist %j with a ValidationError naming the field', (persist, path) => {
    let error: unknown;
    try {
      new SessionManager({ persist: persist as never });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).issues.some((issue) => JSON.stringify(issue.path) === JSON.stringify(path))).toBe(true);
  });

  it('defaults flushMs to 250 ms', () => {
    expect(new SessionManager().options.persist).toEqual({ flushMs: 250 });
  });
});
