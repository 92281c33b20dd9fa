import type { SuiteContext } from './context.js';

/** Each session's newest transitions (`history` capability). */
export function transitionsGroup(t: SuiteContext): void {
  const { it, expect, create, transition } = t;
  it('returns the newest transitions, oldest first', async () => {
    await create('s1');
    await t.history.append([0, 1, 2, 3].map((n) => transition('s1', n)), 10);
    await t.history.append([transition('s1', 4)], 10);
    expect(await t.history.list('s1', 10)).toEqual([0, 1, 2, 3, 4].map((n) => transition('s1', n)));
    expect(await t.history.list('s1', 2)).toEqual([3, 4].map((n) => transition('s1', n)));
    expect(await t.history.list('s1', 1)).toEqual([transition('s1', 4)]);
  });

  it('keeps at most keepPerSession entries per session', async () => {
    await create('s1');
    await create('s2');
    await t.history.append([0, 1, 2, 3, 4].map((n) => transition('s1', n)), 3);
    expect(await t.history.list('s1', 100)).toEqual([2, 3, 4].map((n) => transition('s1', n)));
    await t.history.append([transition('s1', 5), transition('s2', 0), transition('s2', 1)], 3);
    expect((await t.history.list('s1', 100)).map((t) => t.reason)).toEqual(['step 3', 'step 4', 'step 5']);
    // trimming one session never trims another
    await t.history.append([2, 3, 4, 5].map((n) => transition('s2', n)), 2);
    expect((await t.history.list('s2', 100)).map((t) => t.reason)).toEqual(['step 4', 'step 5']);
    expect(await t.history.list('s1', 100)).toHaveLength(3);
  });

  it('lists nothing for a session without history', async () => {
    await create('s1');
    expect(await t.history.list('s1', 5)).toEqual([]);
    expect(await t.history.list('missing', 5)).toEqual([]);
  });
}
