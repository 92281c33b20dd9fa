import { rejectsWithCode } from '../runner.js';
import { T0, sampleSessionRecord, type SuiteContext } from './context.js';

/** `sessions.replaceCredentials`: all or nothing, `null` when any row is lost. */
export function replaceCredentialsGroup(t: SuiteContext): void {
  const { it, expect, create, must } = t;
  it('rewrites the credentials of several sessions and adds 1 to each version', async () => {
    await create('a1');
    await create('b2');
    await t.update('b2', { priority: 1, updatedAt: T0 + 1 }, 1);
    const out = await t.sessions.replaceCredentials([
      { id: 'a1', credentials: 'sealed2:a1', credentialsFingerprint: 'fp2:a1', expectedVersion: 1, updatedAt: T0 + 10 },
      { id: 'b2', credentials: 'sealed2:b2', credentialsFingerprint: 'fp2:b2', expectedVersion: 2, updatedAt: T0 + 10 },
    ]);
    expect(out).not.toBeNull();
    expect(out!.map((r) => [r.id, r.version, r.credentials])).toEqual([
      ['a1', 2, 'sealed2:a1'],
      ['b2', 3, 'sealed2:b2'],
    ]);
    const a = await must('a1');
    expect(a).toEqual({
      ...sampleSessionRecord('a1'),
      credentials: 'sealed2:a1',
      credentialsFingerprint: 'fp2:a1',
      updatedAt: T0 + 10,
      version: 2,
    });
    expect((await must('b2')).priority).toBe(1);
  });

  it('rewrites nothing and returns null when one version is stale', async () => {
    await create('a1');
    await create('b2');
    await t.update('b2', { priority: 1, updatedAt: T0 + 1 }, 1);
    expect(
      await t.sessions.replaceCredentials([
        { id: 'a1', credentials: 'sealed2:a1', credentialsFingerprint: 'fp2:a1', expectedVersion: 1, updatedAt: T0 + 10 },
        { id: 'b2', credentials: 'sealed2:b2', credentialsFingerprint: 'fp2:b2', expectedVersion: 1, updatedAt: T0 + 10 },
      ]),
    ).toBeNull();
    const a = await must('a1');
    expect(a.credentials).toBe('sealed:a1');
    expect(a.credentialsFingerprint).toBe('fp:a1');
    expect(a.version).toBe(1);
    expect((await must('b2')).credentials).toBe('sealed:b2');
  });

  it('rewrites nothing and returns null when a session is missing', async () => {
    await create('a1');
    expect(
      await t.sessions.replaceCredentials([
        { id: 'a1', credentials: 'new', credentialsFingerprint: 'fpn', expectedVersion: 1, updatedAt: T0 + 1 },
        { id: 'gone', credentials: 'new', credentialsFingerprint: 'fpg', expectedVersion: 1, updatedAt: T0 + 1 },
      ]),
    ).toBeNull();
    const a = await must('a1');
    expect(a.credentials).toBe('sealed:a1');
    expect(a.version).toBe(1);
    expect(await t.sessions.get('gone')).toBeNull();
  });

  it('rewrites nothing for an empty list', async () => {
    await create('a1');
    expect(await t.sessions.replaceCredentials([])).toEqual([]);
    expect((await must('a1')).version).toBe(1);
  });

  it('moves the duplicate-credential guard to the new fingerprints', async () => {
    await create('a1', { credentialsFingerprint: 'old' });
    expect(
      await t.sessions.replaceCredentials([{ id: 'a1', credentials: 'sealed2', credentialsFingerprint: 'new', expectedVersion: 1, updatedAt: T0 + 1 }]),
    ).toHaveLength(1);
    expect((await create('b2', { credentialsFingerprint: 'old' })).credentialsFingerprint).toBe('old');
    await rejectsWithCode(expect, create('c3', { credentialsFingerprint: 'new' }), 'DUPLICATE_CREDENTIALS');
  });
}
