import { rejectsWithCode } from '../runner.js';
import { sampleSessionRecord, type SuiteContext } from './context.js';

/** A taken id is refused with `SessionExistsError`. */
export function sessionExistsGroup(t: SuiteContext): void {
  const { it, expect, create, must } = t;
  it('throws SessionExistsError for a taken id and keeps the first record', async () => {
    await create('s1');
    await rejectsWithCode(
      expect,
      create('s1', { platform: 'other', credentialsFingerprint: 'fp:other', priority: 1 }),
      'SESSION_EXISTS',
    );
    const got = await must('s1');
    expect(got).toEqual({ ...sampleSessionRecord('s1'), version: 1 });
    expect(await t.sessions.list()).toHaveLength(1);
  });

  it('lets exactly one of two concurrent creates of one id win', async () => {
    const results = await Promise.allSettled([
      create('s1', { credentialsFingerprint: 'fp-x', priority: 1 }),
      create('s1', { credentialsFingerprint: 'fp-y', priority: 2 }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect((lost?.reason as { code?: string } | undefined)?.code).toBe('SESSION_EXISTS');
    expect(await t.sessions.list()).toHaveLength(1);
  });

  it('frees the id when the session is deleted', async () => {
    await create('s1');
    await t.sessions.delete('s1');
    const again = await create('s1', { priority: 1 });
    expect(again.version).toBe(1);
    expect(again.priority).toBe(1);
  });
}
