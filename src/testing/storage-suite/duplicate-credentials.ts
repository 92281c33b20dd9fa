import { rejectsWithCode } from '../runner.js';
import { T0, type SuiteContext } from './context.js';

/** The duplicate-credential guard on create and on updates that touch credentials or sharing. */
export function duplicateCredentialsGroup(t: SuiteContext): void {
  const { it, expect, create, must } = t;
  it('refuses to create a session with credentials another session holds', async () => {
    await create('a1', { credentialsFingerprint: 'same' });
    const error = await rejectsWithCode(expect, create('b2', { credentialsFingerprint: 'same' }), 'DUPLICATE_CREDENTIALS');
    expect(error.message).toContain('a1');
    expect(await t.sessions.get('b2')).toBeNull();
    expect(await t.sessions.list()).toHaveLength(1);
  });

  it('lets exactly one of two concurrent creates with the same credentials win', async () => {
    const results = await Promise.allSettled([
      create('a1', { credentialsFingerprint: 'same' }),
      create('b2', { credentialsFingerprint: 'same' }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect((lost?.reason as { code?: string } | undefined)?.code).toBe('DUPLICATE_CREDENTIALS');
    expect(await t.sessions.list()).toHaveLength(1);
  });

  it('lets a session that allows shared credentials through', async () => {
    await create('a1', { credentialsFingerprint: 'same' });
    const b = await create('b2', { credentialsFingerprint: 'same', allowSharedCredentials: true });
    expect(b.credentialsFingerprint).toBe('same');
    expect(await t.sessions.list()).toHaveLength(2);
  });

  it('never treats missing credentials as duplicates', async () => {
    await create('a1', { credentials: null, credentialsFingerprint: null });
    await create('b2', { credentials: null, credentialsFingerprint: null });
    expect(await t.sessions.list()).toHaveLength(2);
  });

  it('refuses an update to credentials another session holds, and changes nothing', async () => {
    await create('a1', { credentialsFingerprint: 'fa' });
    await create('b2', { credentialsFingerprint: 'fb' });
    await rejectsWithCode(
      expect,
      t.sessions.update('b2', { credentials: 'sealed:x', credentialsFingerprint: 'fa', priority: 1, updatedAt: T0 + 1 }, 1),
      'DUPLICATE_CREDENTIALS',
    );
    const b = await must('b2');
    expect(b.version).toBe(1);
    expect(b.credentialsFingerprint).toBe('fb');
    expect(b.credentials).toBe('sealed:b2');
    expect(b.priority).toBe(7);
    // b2 still holds 'fb': the failed update did not release it.
    await rejectsWithCode(expect, create('c3', { credentialsFingerprint: 'fb' }), 'DUPLICATE_CREDENTIALS');
  });

  it('accepts the update when the patch also allows shared credentials', async () => {
    await create('a1', { credentialsFingerprint: 'fa' });
    await create('b2', { credentialsFingerprint: 'fb' });
    const b = await t.update('b2', { credentialsFingerprint: 'fa', allowSharedCredentials: true, updatedAt: T0 + 1 }, 1);
    expect(b.credentialsFingerprint).toBe('fa');
    expect(b.version).toBe(2);
  });

  it('lets a session keep or re-write its own fingerprint', async () => {
    await create('a1', { credentialsFingerprint: 'fa' });
    const a = await t.update('a1', { credentialsFingerprint: 'fa', priority: 1, updatedAt: T0 + 1 }, 1);
    expect(a.version).toBe(2);
    const a2 = await t.update('a1', { labels: { x: 'y' }, updatedAt: T0 + 2 }, 2);
    expect(a2.credentialsFingerprint).toBe('fa');
  });

  it('never trips on an update that leaves credentials and sharing alone', async () => {
    // a1 holds the credentials without sharing; b2 shares them on purpose. a1's own unrelated
    // writes (desired state on start/stop, labels …) must keep working.
    await create('a1', { credentialsFingerprint: 'same' });
    await create('b2', { credentialsFingerprint: 'same', allowSharedCredentials: true });
    const a = await t.update('a1', { desiredState: 'running', labels: { shift: 'night' }, updatedAt: T0 + 1 }, 1);
    expect(a.version).toBe(2);
    expect(a.desiredState).toBe('running');
    // …while a patch that does touch them is still judged.
    await rejectsWithCode(expect, t.sessions.update('a1', { allowSharedCredentials: false, updatedAt: T0 + 2 }, 2), 'DUPLICATE_CREDENTIALS');
    expect((await must('a1')).version).toBe(2);
  });

  it('frees a fingerprint when its session is deleted or changes credentials', async () => {
    await create('a1', { credentialsFingerprint: 'fa' });
    await create('b2', { credentialsFingerprint: 'fb' });
    await t.sessions.delete('a1');
    const c = await create('c3', { credentialsFingerprint: 'fa' });
    expect(c.credentialsFingerprint).toBe('fa');
    await t.update('b2', { credentialsFingerprint: 'fb2', updatedAt: T0 + 1 }, 1);
    const d = await create('d4', { credentialsFingerprint: 'fb' });
    expect(d.credentialsFingerprint).toBe('fb');
    await rejectsWithCode(expect, create('e5', { credentialsFingerprint: 'fb2' }), 'DUPLICATE_CREDENTIALS');
  });
}
