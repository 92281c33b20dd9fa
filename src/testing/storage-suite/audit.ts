import { caught } from '../runner.js';
import { T0, type SuiteContext } from './context.js';

/** The audit log (`audit` capability). */
export function auditGroup(t: SuiteContext): void {
  const { it, expect } = t;
  const entry = (n: number, sessionId: string | null, action: string) => ({
    at: T0 + n * 1000,
    sessionId,
    action,
    actor: n % 2 ? 'admin' : null,
    details: { n, changed: ['config'] },
  });

  it('appends entries and lists them newest first with growing numeric ids', async () => {
    await t.audit.append([entry(1, 'a1', 'session.create'), entry(2, 'a1', 'session.start')]);
    await t.audit.append([entry(3, null, 'manager.rotate-key')]);
    const list = await t.audit.list({});
    expect(list.map((e) => e.action)).toEqual(['manager.rotate-key', 'session.start', 'session.create']);
    expect(list[2]).toMatchObject(entry(1, 'a1', 'session.create'));
    expect(list[0]!.sessionId).toBeNull();
    for (const e of list) expect(typeof e.id).toBe('number');
    expect(list[0]!.id).toBeGreaterThan(list[1]!.id);
    expect(list[1]!.id).toBeGreaterThan(list[2]!.id);
    await t.audit.append([entry(4, 'b2', 'session.stop')]);
    const [newest] = await t.audit.list({ limit: 1 });
    expect(newest!.id).toBeGreaterThan(list[0]!.id);
    expect(newest!.action).toBe('session.stop');
  });

  it('filters by session, action and time, and limits', async () => {
    await t.audit.append([
      entry(1, 'a1', 'session.create'),
      entry(2, 'b2', 'session.create'),
      entry(3, 'a1', 'session.start'),
      entry(4, 'a1', 'session.stop'),
      entry(5, 'b2', 'session.start'),
    ]);
    expect((await t.audit.list({ sessionId: 'a1' })).map((e) => e.details.n)).toEqual([4, 3, 1]);
    expect((await t.audit.list({ action: 'session.create' })).map((e) => e.sessionId)).toEqual(['b2', 'a1']);
    expect((await t.audit.list({ since: T0 + 3000 })).map((e) => e.details.n)).toEqual([5, 4, 3]);
    expect((await t.audit.list({ limit: 2 })).map((e) => e.details.n)).toEqual([5, 4]);
    expect(
      (await t.audit.list({ sessionId: 'a1', action: 'session.start', since: T0 + 3000 })).map((e) => e.details.n),
    ).toEqual([3]);
    expect((await t.audit.list({ sessionId: 'a1', limit: 1 })).map((e) => e.details.n)).toEqual([4]);
    expect(await t.audit.list({ sessionId: 'zz' })).toEqual([]);
  });

  it('prune(before) deletes the entries older than before and says how many (when the driver has it)', async () => {
    if (!t.audit.prune) return;
    await t.audit.append([entry(1, 'a1', 'session.create'), entry(2, 'a1', 'session.start'), entry(3, null, 'manager.rotate-key')]);
    expect(await t.audit.prune(T0 + 2000)).toBe(1);
    expect((await t.audit.list({})).map((e) => e.details.n)).toEqual([3, 2]);
    expect(await t.audit.prune(T0)).toBe(0);
    await t.audit.append([entry(4, 'a1', 'session.stop')]);
    expect(await t.audit.prune(T0 + 10_000)).toBe(3);
    expect(await t.audit.list({})).toEqual([]);
    expect((await caught(expect, t.audit.prune(-1))).code).toBe('VALIDATION');
  });

  it('returns at most 100 entries by default', async () => {
    await t.audit.append(Array.from({ length: 120 }, (_, i) => entry(i, 'a1', 'session.touch')));
    const list = await t.audit.list({});
    expect(list).toHaveLength(100);
    expect(list[0]!.details.n).toBe(119);
    expect(list[99]!.details.n).toBe(20);
  });
}
