import type { SessionRecord } from '../../storage/contract.js';
import { T0, sampleSessionRecord, type SuiteContext } from './context.js';

/** `sessions.update` is a compare-and-swap on `version`: a lost one returns `null` and changes nothing. */
export function versioningGroup(t: SuiteContext): void {
  const { it, expect, create, must } = t;
  it('updates only the patched fields, sets updatedAt and adds 1 to version', async () => {
    await create('s1');
    const updated = await t.update(
      's1',
      { config: { greeting: 'hi', bidLimit: 2 }, desiredState: 'running', priority: 2, updatedAt: T0 + 100 },
      1,
    );
    const expected = {
      ...sampleSessionRecord('s1'),
      config: { greeting: 'hi', bidLimit: 2 },
      desiredState: 'running',
      priority: 2,
      updatedAt: T0 + 100,
      version: 2,
    };
    expect(updated).toEqual(expected);
    expect(await t.sessions.get('s1')).toEqual(expected);
    const third = await t.update('s1', { labels: {}, capacity: null, updatedAt: T0 + 200 }, 2);
    expect(third.version).toBe(3);
    expect(third.labels).toEqual({});
    expect(third.capacity).toBeNull();
    expect(third.createdAt).toBe(T0);
  });

  it('clears credentials when the patch sets them to null', async () => {
    await create('s1');
    const updated = await t.update('s1', { credentials: null, credentialsFingerprint: null, updatedAt: T0 + 1 }, 1);
    expect(updated.credentials).toBeNull();
    expect(updated.credentialsFingerprint).toBeNull();
    expect((await must('s1')).credentials).toBeNull();
  });

  it('returns null for a stale version (a lost compare-and-swap is an outcome) and changes nothing', async () => {
    await create('s1');
    await t.update('s1', { priority: 2, updatedAt: T0 + 1 }, 1);
    expect(await t.sessions.update('s1', { priority: 9, labels: {}, updatedAt: T0 + 2 }, 1)).toBeNull();
    expect(await t.sessions.update('s1', { priority: 9, updatedAt: T0 + 2 }, 7)).toBeNull();
    const got = await must('s1');
    expect(got.version).toBe(2);
    expect(got.priority).toBe(2);
    expect(got.labels).toEqual(sampleSessionRecord('s1').labels);
    expect(got.updatedAt).toBe(T0 + 1);
  });

  it('lets exactly one of two concurrent updates with the same version win', async () => {
    await create('s1');
    const results = await Promise.allSettled([
      t.sessions.update('s1', { metadata: 'first', updatedAt: T0 + 1 }, 1),
      t.sessions.update('s1', { metadata: 'second', updatedAt: T0 + 2 }, 1),
    ]);
    // Neither rejects: the winner gets the record, the loser `null`.
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(0);
    const values = results.map((r) => (r as PromiseFulfilledResult<SessionRecord | null>).value);
    const won = values.filter((v): v is SessionRecord => v !== null);
    expect(won).toHaveLength(1);
    expect(values.filter((v) => v === null)).toHaveLength(1);
    const winner = won[0]!;
    const got = await must('s1');
    expect(got.version).toBe(2);
    expect(got.metadata).toBe(winner.metadata);
  });

  it('lets exactly one of many concurrent updates win', async () => {
    await create('s1');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => t.sessions.update('s1', { priority: i + 1, updatedAt: T0 + i }, 1)),
    );
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(results.filter((r) => r === null)).toHaveLength(7);
    expect((await must('s1')).version).toBe(2);
  });

  it('writes no audit entry with a lost compare-and-swap (stale version or missing session)', async () => {
    await create('s1');
    const audit = { at: T0 + 2, sessionId: 's1', action: 'update', actor: null, details: { fields: ['priority'] } };
    expect(await t.sessions.update('s1', { priority: 9, updatedAt: T0 + 2 }, 7, { audit })).toBeNull();
    expect(await t.sessions.update('nope', { priority: 9, updatedAt: T0 + 2 }, 1, { audit: { ...audit, sessionId: 'nope' } })).toBeNull();
    expect(await t.audit.list({})).toEqual([]);
    expect((await must('s1')).version).toBe(1);
  }, ['audit']);

  it('returns null when updating a missing session, and creates nothing', async () => {
    expect(await t.sessions.update('nope', { priority: 1, updatedAt: T0 }, 1)).toBeNull();
    expect(await t.sessions.get('nope')).toBeNull();
  });
}
