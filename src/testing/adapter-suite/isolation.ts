import type { JsonValue } from '../../types.js';
import { createAdapterTestStore, type AdapterTestContext } from '../adapter-context.js';
import { type SuiteHarness } from './harness.js';

/** The `isolation` group of the adapter conformance suite. */
export function isolationGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { adapter, action, connect, started } = h;
  // Registered before the lifecycle tests on purpose: the first connection this adapter ever
  // makes happens here, so login state kept in module globals shows up as a difference.
  it("never reads or writes another session's KV, nor shares its login", async () => {
    // What a session shows of itself: the login steps it asked for and the KV keys it wrote
    // (digits masked, so keys holding times or counters compare equal).
    const observed = (t: AdapterTestContext) => ({
      asked: t.requests.map((r) => r.kind),
      qr: t.qrs.length > 0,
      kv: [...t.kv.keys()].map((k) => k.replace(/\d+/g, '#')).sort(),
      authState: [...t.authState.keys()].map((k) => k.replace(/\d+/g, '#')).sort(),
    });
    // Each session does the same: start, health, send, stop (a send may write to the session's
    // own KV, e.g. a conversation's history).
    const exercise = async (t: ReturnType<typeof connect>) => {
      await started(t);
      await t.connection.health();
      await Promise.resolve(t.connection.send(adapter.action.parse(action) as JsonValue)).catch(() => {});
      await t.stop();
    };
    // B alone in a fresh store: the reference behaviour.
    const alone = connect({ id: 'conformance-b' });
    await exercise(alone);
    const reference = observed(alone as AdapterTestContext);
    // A runs first in a shared store and leaves state behind; then B runs next to it.
    const store = createAdapterTestStore();
    const a = connect({ id: 'conformance-a', store });
    await exercise(a);
    // a new session next to nothing of its own logs in like the first one did
    expect(observed(a as AdapterTestContext)).toEqual(reference);
    const aKv = JSON.stringify([...a.kv.entries()]);
    const aAuth = JSON.stringify([...a.authState.entries()]);
    const b = connect({ id: 'conformance-b', store });
    await exercise(b);
    expect(observed(b as AdapterTestContext)).toEqual(reference);
    expect(JSON.stringify([...a.kv.entries()])).toBe(aKv);
    expect(JSON.stringify([...a.authState.entries()])).toBe(aAuth);
    expect([...store.sessions.keys()].sort()).toEqual(['conformance-a', 'conformance-b']);
  });
}
