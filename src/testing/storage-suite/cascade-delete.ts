import { T0, type SuiteContext } from './context.js';

/** Deleting a session drops its KV, counters and history (whichever the store has), never the audit log. */
export function cascadeDeleteGroup(t: SuiteContext): void {
  const { it, expect, create, transition } = t;
  it("drops the session's KV, counters and history with it, and nothing of others", async () => {
    const kv = t.has('kv');
    const counters = t.has('counters');
    const history = t.has('history');
    const audit = t.has('audit');
    await create('a1');
    await create('b2');
    for (const id of ['a1', 'b2']) {
      if (kv) await t.kv.write(id, [{ op: 'set', key: 'k', value: id }]);
      if (counters) await t.counters.increment([{ sessionId: id, name: 'starts', delta: 2 }]);
      if (history) await t.history.append([transition(id, 0), transition(id, 1)], 10);
    }
    if (audit) await t.audit.append([{ at: T0, sessionId: 'a1', action: 'session.create', actor: null, details: {} }]);
    expect(await t.sessions.delete('a1')).toBe(true);
    if (kv) {
      expect(await t.kv.get('a1', 'k')).toBeUndefined();
      expect(await t.kv.list('a1')).toEqual([]);
    }
    if (counters) expect(await t.counters.get('a1')).toEqual({});
    if (history) expect(await t.history.list('a1', 10)).toEqual([]);
    // the audit log outlives the session
    if (audit) expect((await t.audit.list({ sessionId: 'a1' })).map((e) => e.action)).toEqual(['session.create']);
    // a new session under the same id starts empty
    await create('a1');
    if (kv) expect(await t.kv.list('a1')).toEqual([]);
    if (counters) expect(await t.counters.get('a1')).toEqual({});
    if (history) expect(await t.history.list('a1', 10)).toEqual([]);
    // the other session keeps everything
    if (kv) expect(await t.kv.get('b2', 'k')).toBe('b2');
    if (counters) expect(await t.counters.get('b2')).toEqual({ starts: 2 });
    if (history) expect(await t.history.list('b2', 10)).toHaveLength(2);
  });
}
