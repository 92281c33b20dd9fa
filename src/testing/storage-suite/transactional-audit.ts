import type { AuditInput } from '../../storage/contract.js';
import { rejectsWithCode } from '../runner.js';
import { sampleSessionRecord as sampleOf, T0, type SuiteContext } from './context.js';

/**
 * Session writes that carry their audit entry (`audit` capability): the entry is stored with the
 * change, in the same transaction, and only when the change is.
 */
export function transactionalAuditGroup(t: SuiteContext): void {
  const { it, expect } = t;
  const entry = (action: string, sessionId: string | null, n = 1): AuditInput => ({
    at: T0 + n,
    sessionId,
    action,
    actor: 'admin',
    details: { n, fields: ['config'] },
  });
  const actions = async () => (await t.audit.list({})).map((e) => `${e.action}:${e.sessionId}`);

  it('create, update, delete and replaceCredentials store their entry with the change', async () => {
    const created = await t.sessions.create(sampleOf('w1'), { audit: entry('create', 'w1', 1) });
    expect(created.version).toBe(1);
    const [first] = await t.audit.list({});
    expect(first).toMatchObject(entry('create', 'w1', 1));
    expect(typeof first!.id).toBe('number');

    const updated = await t.sessions.update('w1', { labels: { x: 'y' }, updatedAt: T0 + 2 }, 1, { audit: entry('update', 'w1', 2) });
    expect(updated?.version).toBe(2);
    const rewritten = await t.sessions.replaceCredentials(
      [{ id: 'w1', credentials: 'sealed:new', credentialsFingerprint: 'fp:new', expectedVersion: 2, updatedAt: T0 + 3 }],
      { audit: entry('rotate-key', null, 3) },
    );
    expect(rewritten?.[0]?.version).toBe(3);
    expect(await t.sessions.delete('w1', { audit: entry('delete', 'w1', 4) })).toBe(true);
    expect(await t.sessions.get('w1')).toBeNull();
    // Newest first; the log outlives the session.
    expect(await actions()).toEqual(['delete:w1', 'rotate-key:null', 'update:w1', 'create:w1']);
    const [newest] = await t.audit.list({ limit: 1 });
    expect(newest).toMatchObject(entry('delete', 'w1', 4));
  });

  it('a write that does not happen stores no entry: taken id, duplicate credentials, stale key rotation, nothing to delete', async () => {
    await t.create('w1');
    await rejectsWithCode(expect, t.sessions.create(sampleOf('w1'), { audit: entry('create', 'w1') }), 'SESSION_EXISTS');
    await rejectsWithCode(expect, t.sessions.create(sampleOf('w2', { credentialsFingerprint: 'fp:w1' }), { audit: entry('create', 'w2') }), 'DUPLICATE_CREDENTIALS');
    // (A lost compare-and-swap of `update` is checked by the versioning group.)
    const stale = [{ id: 'w1', credentials: 'sealed:x', credentialsFingerprint: 'fp:x', expectedVersion: 9, updatedAt: T0 + 1 }];
    expect(await t.sessions.replaceCredentials(stale, { audit: entry('rotate-key', null) })).toBeNull();
    expect(await t.sessions.delete('nope', { audit: entry('delete', 'nope') })).toBe(false);
    expect(await t.audit.list({})).toEqual([]);
    expect((await t.must('w1')).version).toBe(1);
  });

  it('refuses a bad entry with ValidationError before writing anything', async () => {
    const bad = { ...entry('create', 'w1'), action: '' };
    await rejectsWithCode(expect, t.sessions.create(sampleOf('w1'), { audit: bad }), 'VALIDATION');
    expect(await t.sessions.get('w1')).toBeNull();
    await t.create('w2');
    const notJson = { ...entry('update', 'w2'), details: { when: new Date(T0) } } as unknown as AuditInput;
    await rejectsWithCode(expect, t.sessions.update('w2', { priority: 1, updatedAt: T0 + 1 }, 1, { audit: notJson }), 'VALIDATION');
    await rejectsWithCode(expect, t.sessions.delete('w2', { audit: bad }), 'VALIDATION');
    expect((await t.must('w2')).version).toBe(1);
    expect(await t.audit.list({})).toEqual([]);
  });

  it('stores the entry of a key rotation with no session to rewrite', async () => {
    expect(await t.sessions.replaceCredentials([], { audit: entry('rotate-key', null) })).toEqual([]);
    expect(await actions()).toEqual(['rotate-key:null']);
  });

  it('writes without an entry add none, and entries of many writes keep their order', async () => {
    await t.create('w1');
    await t.update('w1', { priority: 2, updatedAt: T0 + 1 }, 1);
    expect(await t.audit.list({})).toEqual([]);
    for (let i = 0; i < 5; i++) await t.sessions.create(sampleOf(`m${i}`), { audit: entry('create', `m${i}`, i) });
    expect((await t.audit.list({})).map((e) => e.sessionId)).toEqual(['m4', 'm3', 'm2', 'm1', 'm0']);
  });
}
