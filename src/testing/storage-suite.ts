import type { NewSessionRecord, SessionRecord, StorageDriver, TransitionRecord } from '../storage/driver.js';
import type { JsonValue } from '../types.js';
import { rejectsWithCode, type TestRunner } from './runner.js';

/**
 * Groups of {@link storageConformanceSuite}; pass names in `skip` to switch groups off.
 *
 * @example
 * ```ts
 * // run only the KV groups while working on them
 * storageConformanceSuite(runner, factory, { skip: STORAGE_SUITE_GROUPS.filter((g) => !g.startsWith('kv-')) });
 * ```
 */
export const STORAGE_SUITE_GROUPS = [
  'sessions',
  'versioning',
  'session-exists',
  'duplicate-credentials',
  'status',
  'kv-isolation',
  'kv-values',
  'kv-atomicity',
  'kv-list',
  'kv-clear',
  'cascade-delete',
  'stats',
  'transitions',
  'audit',
  'replace-credentials',
  'unreadable-rows',
  'shared-store',
  'lifecycle',
] as const;
export type StorageSuiteGroup = (typeof STORAGE_SUITE_GROUPS)[number];

/** Options of {@link storageConformanceSuite}. */
export interface StorageSuiteOptions {
  /** Shown in the suite's title: `storage conformance: <name>`. */
  name?: string;
  /** Groups to leave out (see {@link STORAGE_SUITE_GROUPS}). */
  skip?: readonly StorageSuiteGroup[];
  /**
   * Opt in to the `unreadable-rows` group: break the stored row of session `id` (write bytes
   * that cannot be decoded, bypassing the driver's checks). `listSessions` must then return that
   * record with `readError` set and every other record intact.
   */
  corruptRow?: (store: StorageDriver, id: string) => Promise<void>;
  /**
   * Opt in to the `shared-store` group (drivers whose data outlives one handle: SQLite, PostgreSQL):
   * return a second, not yet initialised driver on the same store as `store`, as another process
   * would open it. The suite initialises and closes it. Checks that both handles see one store and
   * that the compare-and-swap and duplicate-credential guards hold between them.
   */
  reopen?: (store: StorageDriver) => Promise<StorageDriver>;
}

const T0 = Date.UTC(2026, 0, 1);

/**
 * A complete, realistic `NewSessionRecord` for driver tests; every field differs from its default
 * so round-trips show. `overrides` replace fields.
 *
 * @example
 * ```ts
 * const created = await store.createSession(sampleSessionRecord('bot-1', { credentialsFingerprint: null }));
 * ```
 */
export function sampleSessionRecord(id: string, overrides: Partial<NewSessionRecord> = {}): NewSessionRecord {
  return {
    id,
    platform: 'simulated',
    config: { greeting: 'hello', bidLimit: 10, nested: { list: [1, 2.5, -3, 'x', true, null] } },
    labels: { team: 'blue', 'k8s.io/zone': 'eu-1' },
    metadata: { owner: 'Zoë ✓', tags: ['a', 'b'], n: 0 },
    priority: 7,
    capacity: 3,
    autoStart: true,
    idleTimeoutMs: 3_600_000,
    allowSharedCredentials: false,
    desiredState: 'stopped',
    credentials: `sealed:${id}`,
    credentialsFingerprint: `fp:${id}`,
    state: 'stopped',
    health: 'unknown',
    lastError: null,
    lastActivityAt: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

/**
 * The storage driver conformance suite: every invariant of the `StorageDriver` contract, checked
 * through the driver's own methods. The suite that our memory, SQLite and PostgreSQL drivers
 * pass; run it on yours. Modelled on `@keyv/test-suite`: the test runner is passed in.
 *
 * `factory` must return a fresh, initialised and empty store for every test; the suite calls
 * `close()` after each. Errors are recognised by their `code` (`CONFLICT`, `SESSION_EXISTS`,
 * `DUPLICATE_CREDENTIALS`, `SESSION_NOT_FOUND`, `VALIDATION`), so the driver must throw the
 * errors of `multisession`. Beyond the contract's doc comment the suite expects: `updateSession`
 * and `replaceCredentials` on a missing id throw `SessionNotFoundError`; `kvWrite` refuses a value
 * JSON cannot represent (a function, `undefined`, a bigint …) with `ValidationError` before
 * writing anything; a stored `null` comes back as `null`, a missing key as `undefined`; KV
 * prefixes are literal (`_`, `%` and `\` are not wildcards); numbers and times come back as
 * numbers.
 *
 * @example
 * ```ts
 * import { describe, it, expect, beforeEach, afterEach } from 'vitest';
 * import { storageConformanceSuite } from 'multisession/testing';
 * import { myStorage } from '../src/my-storage.js';
 *
 * storageConformanceSuite({ describe, it, expect, beforeEach, afterEach }, async () => {
 *   const store = myStorage({ url: process.env.MY_URL });
 *   await store.init();
 *   return store;
 * }, { name: 'my-storage', skip: ['audit'] });
 * ```
 */
export function storageConformanceSuite(
  runner: TestRunner,
  factory: () => Promise<StorageDriver>,
  options: StorageSuiteOptions = {},
): void {
  const { describe, it, expect, beforeEach, afterEach } = runner;
  const skip = new Set<string>(options.skip ?? []);
  let store: StorageDriver;
  let current: StorageDriver | undefined;

  const group = (name: StorageSuiteGroup, body: () => void): void => {
    if (!skip.has(name)) describe(name, body);
  };
  const create = (id: string, overrides: Partial<NewSessionRecord> = {}): Promise<SessionRecord> =>
    store.createSession(sampleSessionRecord(id, overrides));
  const must = async (id: string): Promise<SessionRecord> => {
    const record = await store.getSession(id);
    expect(record).not.toBeNull();
    return record!;
  };
  const transition = (sessionId: string, n: number): TransitionRecord => ({
    sessionId,
    from: n % 2 === 0 ? 'stopped' : 'starting',
    to: n % 2 === 0 ? 'starting' : 'ready',
    reason: `step ${n}`,
    at: T0 + n,
  });

  describe(`storage conformance: ${options.name ?? 'driver'}`, () => {
    beforeEach(async () => {
      store = await factory();
      current = store;
    });
    afterEach(async () => {
      const s = current;
      current = undefined;
      if (s) await s.close();
    });

    group('sessions', () => {
      it('creates a session and returns every field as written, with version 1', async () => {
        const input = sampleSessionRecord('s1', {
          lastError: { code: 'ADAPTER', message: 'boom "quoted" \u00e9', at: T0 + 5 },
          lastActivityAt: T0 + 9,
          state: 'ready',
          health: 'healthy',
          desiredState: 'running',
        });
        const created = await store.createSession(input);
        const expected = { ...input, version: 1 };
        expect(created).toEqual(expected);
        expect(await store.getSession('s1')).toEqual(expected);
        expect(typeof created.createdAt).toBe('number');
        expect(typeof created.version).toBe('number');
        expect(created.readError).toBeUndefined();
      });

      it('keeps nulls, empty maps and null JSON metadata', async () => {
        const input = sampleSessionRecord('s2', {
          config: {},
          labels: {},
          metadata: null,
          capacity: null,
          idleTimeoutMs: null,
          credentials: null,
          credentialsFingerprint: null,
          autoStart: false,
        });
        await store.createSession(input);
        expect(await store.getSession('s2')).toEqual({ ...input, version: 1 });
      });

      it('returns null for a missing session and false when deleting it', async () => {
        expect(await store.getSession('nope')).toBeNull();
        expect(await store.deleteSession('nope')).toBe(false);
      });

      it('lists every session ordered by id', async () => {
        for (const id of ['c3', 'a1', 'b2']) await create(id);
        const list = await store.listSessions();
        expect(list.map((r) => r.id)).toEqual(['a1', 'b2', 'c3']);
        expect(list[0]).toEqual({ ...sampleSessionRecord('a1'), version: 1 });
        expect(await store.listSessions()).toHaveLength(3);
      });

      it('lists nothing in an empty store', async () => {
        expect(await store.listSessions()).toEqual([]);
      });

      it('deletes a session', async () => {
        await create('a1');
        await create('b2');
        expect(await store.deleteSession('a1')).toBe(true);
        expect(await store.getSession('a1')).toBeNull();
        expect((await store.listSessions()).map((r) => r.id)).toEqual(['b2']);
        expect(await store.deleteSession('a1')).toBe(false);
      });

      it('returns copies: mutating a returned record changes nothing stored', async () => {
        const created = await create('s1');
        (created.config as Record<string, JsonValue>).greeting = 'changed';
        created.labels.team = 'red';
        const got = await must('s1');
        expect(got.config).toEqual(sampleSessionRecord('s1').config);
        expect(got.labels).toEqual(sampleSessionRecord('s1').labels);
        ((got.metadata as Record<string, JsonValue>).tags as JsonValue[]).push('z');
        const [listed] = await store.listSessions();
        (listed!.config as Record<string, JsonValue>).bidLimit = 99;
        const again = await must('s1');
        expect(again.metadata).toEqual(sampleSessionRecord('s1').metadata);
        expect(again.config).toEqual(sampleSessionRecord('s1').config);
      });

      it('copies its input: mutating the written object afterwards changes nothing stored', async () => {
        const input = sampleSessionRecord('s1');
        await store.createSession(input);
        (input.config as Record<string, JsonValue>).greeting = 'mutated';
        input.labels.team = 'mutated';
        const patch = { labels: { a: 'b' }, updatedAt: T0 + 1 };
        await store.updateSession('s1', patch, 1);
        patch.labels.a = 'mutated';
        const got = await must('s1');
        expect(got.config).toEqual(sampleSessionRecord('s1').config);
        expect(got.labels).toEqual({ a: 'b' });
      });
    });

    group('versioning', () => {
      it('updates only the patched fields, sets updatedAt and adds 1 to version', async () => {
        await create('s1');
        const updated = await store.updateSession(
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
        expect(await store.getSession('s1')).toEqual(expected);
        const third = await store.updateSession('s1', { labels: {}, capacity: null, updatedAt: T0 + 200 }, 2);
        expect(third.version).toBe(3);
        expect(third.labels).toEqual({});
        expect(third.capacity).toBeNull();
        expect(third.createdAt).toBe(T0);
      });

      it('clears credentials when the patch sets them to null', async () => {
        await create('s1');
        const updated = await store.updateSession('s1', { credentials: null, credentialsFingerprint: null, updatedAt: T0 + 1 }, 1);
        expect(updated.credentials).toBeNull();
        expect(updated.credentialsFingerprint).toBeNull();
        expect((await must('s1')).credentials).toBeNull();
      });

      it('throws ConflictError for a stale version and changes nothing', async () => {
        await create('s1');
        await store.updateSession('s1', { priority: 2, updatedAt: T0 + 1 }, 1);
        await rejectsWithCode(expect, store.updateSession('s1', { priority: 9, labels: {}, updatedAt: T0 + 2 }, 1), 'CONFLICT');
        await rejectsWithCode(expect, store.updateSession('s1', { priority: 9, updatedAt: T0 + 2 }, 7), 'CONFLICT');
        const got = await must('s1');
        expect(got.version).toBe(2);
        expect(got.priority).toBe(2);
        expect(got.labels).toEqual(sampleSessionRecord('s1').labels);
        expect(got.updatedAt).toBe(T0 + 1);
      });

      it('lets exactly one of two concurrent updates with the same version win', async () => {
        await create('s1');
        const results = await Promise.allSettled([
          store.updateSession('s1', { metadata: 'first', updatedAt: T0 + 1 }, 1),
          store.updateSession('s1', { metadata: 'second', updatedAt: T0 + 2 }, 1),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect((lost[0]!.reason as { code?: string }).code).toBe('CONFLICT');
        const winner = (won[0] as PromiseFulfilledResult<SessionRecord>).value;
        const got = await must('s1');
        expect(got.version).toBe(2);
        expect(got.metadata).toBe(winner.metadata);
      });

      it('lets exactly one of many concurrent updates win', async () => {
        await create('s1');
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, (_, i) => store.updateSession('s1', { priority: i + 1, updatedAt: T0 + i }, 1)),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        expect((await must('s1')).version).toBe(2);
      });

      it('throws SessionNotFoundError when updating a missing session', async () => {
        await rejectsWithCode(expect, store.updateSession('nope', { priority: 1, updatedAt: T0 }, 1), 'SESSION_NOT_FOUND');
        expect(await store.getSession('nope')).toBeNull();
      });
    });

    group('session-exists', () => {
      it('throws SessionExistsError for a taken id and keeps the first record', async () => {
        await create('s1');
        await rejectsWithCode(
          expect,
          create('s1', { platform: 'other', credentialsFingerprint: 'fp:other', priority: 1 }),
          'SESSION_EXISTS',
        );
        const got = await must('s1');
        expect(got).toEqual({ ...sampleSessionRecord('s1'), version: 1 });
        expect(await store.listSessions()).toHaveLength(1);
      });

      it('lets exactly one of two concurrent creates of one id win', async () => {
        const results = await Promise.allSettled([
          create('s1', { credentialsFingerprint: 'fp-x', priority: 1 }),
          create('s1', { credentialsFingerprint: 'fp-y', priority: 2 }),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect((lost?.reason as { code?: string } | undefined)?.code).toBe('SESSION_EXISTS');
        expect(await store.listSessions()).toHaveLength(1);
      });

      it('frees the id when the session is deleted', async () => {
        await create('s1');
        await store.deleteSession('s1');
        const again = await create('s1', { priority: 1 });
        expect(again.version).toBe(1);
        expect(again.priority).toBe(1);
      });
    });

    group('duplicate-credentials', () => {
      it('refuses to create a session with credentials another session holds', async () => {
        await create('a1', { credentialsFingerprint: 'same' });
        const error = await rejectsWithCode(expect, create('b2', { credentialsFingerprint: 'same' }), 'DUPLICATE_CREDENTIALS');
        expect(error.message).toContain('a1');
        expect(await store.getSession('b2')).toBeNull();
        expect(await store.listSessions()).toHaveLength(1);
      });

      it('lets exactly one of two concurrent creates with the same credentials win', async () => {
        const results = await Promise.allSettled([
          create('a1', { credentialsFingerprint: 'same' }),
          create('b2', { credentialsFingerprint: 'same' }),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect((lost?.reason as { code?: string } | undefined)?.code).toBe('DUPLICATE_CREDENTIALS');
        expect(await store.listSessions()).toHaveLength(1);
      });

      it('lets a session that allows shared credentials through', async () => {
        await create('a1', { credentialsFingerprint: 'same' });
        const b = await create('b2', { credentialsFingerprint: 'same', allowSharedCredentials: true });
        expect(b.credentialsFingerprint).toBe('same');
        expect(await store.listSessions()).toHaveLength(2);
      });

      it('never treats missing credentials as duplicates', async () => {
        await create('a1', { credentials: null, credentialsFingerprint: null });
        await create('b2', { credentials: null, credentialsFingerprint: null });
        expect(await store.listSessions()).toHaveLength(2);
      });

      it('refuses an update to credentials another session holds, and changes nothing', async () => {
        await create('a1', { credentialsFingerprint: 'fa' });
        await create('b2', { credentialsFingerprint: 'fb' });
        await rejectsWithCode(
          expect,
          store.updateSession('b2', { credentials: 'sealed:x', credentialsFingerprint: 'fa', priority: 1, updatedAt: T0 + 1 }, 1),
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
        const b = await store.updateSession('b2', { credentialsFingerprint: 'fa', allowSharedCredentials: true, updatedAt: T0 + 1 }, 1);
        expect(b.credentialsFingerprint).toBe('fa');
        expect(b.version).toBe(2);
      });

      it('lets a session keep or re-write its own fingerprint', async () => {
        await create('a1', { credentialsFingerprint: 'fa' });
        const a = await store.updateSession('a1', { credentialsFingerprint: 'fa', priority: 1, updatedAt: T0 + 1 }, 1);
        expect(a.version).toBe(2);
        const a2 = await store.updateSession('a1', { labels: { x: 'y' }, updatedAt: T0 + 2 }, 2);
        expect(a2.credentialsFingerprint).toBe('fa');
      });

      it('never trips on an update that leaves credentials and sharing alone', async () => {
        // a1 holds the credentials without sharing; b2 shares them on purpose. a1's own unrelated
        // writes (desired state on start/stop, labels …) must keep working.
        await create('a1', { credentialsFingerprint: 'same' });
        await create('b2', { credentialsFingerprint: 'same', allowSharedCredentials: true });
        const a = await store.updateSession('a1', { desiredState: 'running', labels: { shift: 'night' }, updatedAt: T0 + 1 }, 1);
        expect(a.version).toBe(2);
        expect(a.desiredState).toBe('running');
        // …while a patch that does touch them is still judged.
        await rejectsWithCode(expect, store.updateSession('a1', { allowSharedCredentials: false, updatedAt: T0 + 2 }, 2), 'DUPLICATE_CREDENTIALS');
        expect((await must('a1')).version).toBe(2);
      });

      it('frees a fingerprint when its session is deleted or changes credentials', async () => {
        await create('a1', { credentialsFingerprint: 'fa' });
        await create('b2', { credentialsFingerprint: 'fb' });
        await store.deleteSession('a1');
        const c = await create('c3', { credentialsFingerprint: 'fa' });
        expect(c.credentialsFingerprint).toBe('fa');
        await store.updateSession('b2', { credentialsFingerprint: 'fb2', updatedAt: T0 + 1 }, 1);
        const d = await create('d4', { credentialsFingerprint: 'fb' });
        expect(d.credentialsFingerprint).toBe('fb');
        await rejectsWithCode(expect, create('e5', { credentialsFingerprint: 'fb2' }), 'DUPLICATE_CREDENTIALS');
      });
    });

    group('status', () => {
      it('writes runtime status for many sessions without touching version', async () => {
        await create('a1');
        await create('b2');
        await store.saveStatus([
          { id: 'a1', state: 'ready', health: 'healthy', lastActivityAt: T0 + 50 },
          { id: 'b2', state: 'failed', lastError: { code: 'ADAPTER', message: 'no route', at: T0 + 60 } },
        ]);
        const a = await must('a1');
        const b = await must('b2');
        expect(a).toEqual({ ...sampleSessionRecord('a1'), state: 'ready', health: 'healthy', lastActivityAt: T0 + 50, version: 1 });
        expect(b.state).toBe('failed');
        expect(b.health).toBe('unknown');
        expect(b.lastError).toEqual({ code: 'ADAPTER', message: 'no route', at: T0 + 60 });
        expect(b.version).toBe(1);
        // the version is untouched, so an update with version 1 still succeeds
        expect((await store.updateSession('a1', { priority: 1, updatedAt: T0 + 70 }, 1)).state).toBe('ready');
      });

      it('keeps fields a status update leaves out, and clears lastError with null', async () => {
        await create('a1', { lastError: { code: 'X', message: 'old', at: T0 } });
        await store.saveStatus([{ id: 'a1', state: 'ready' }]);
        expect((await must('a1')).lastError).toEqual({ code: 'X', message: 'old', at: T0 });
        await store.saveStatus([{ id: 'a1', lastError: null, lastActivityAt: null }]);
        const a = await must('a1');
        expect(a.lastError).toBeNull();
        expect(a.state).toBe('ready');
        expect(a.lastActivityAt).toBeNull();
      });

      it('skips ids that no longer exist and still applies the rest', async () => {
        await create('a1');
        await store.saveStatus([
          { id: 'gone', state: 'ready' },
          { id: 'a1', state: 'degraded', health: 'unhealthy' },
        ]);
        expect(await store.getSession('gone')).toBeNull();
        const a = await must('a1');
        expect(a.state).toBe('degraded');
        expect(a.health).toBe('unhealthy');
        await store.saveStatus([]);
      });

      it('lets the last status written win', async () => {
        await create('a1');
        await store.saveStatus([{ id: 'a1', state: 'starting' }, { id: 'a1', state: 'ready' }]);
        await store.saveStatus([{ id: 'a1', health: 'healthy' }]);
        const a = await must('a1');
        expect(a.state).toBe('ready');
        expect(a.health).toBe('healthy');
      });
    });

    group('kv-isolation', () => {
      it('keeps each session in its own key space', async () => {
        await create('a1');
        await create('b2');
        await store.kvWrite('a1', [{ op: 'set', key: 'auth', value: { who: 'a' } }, { op: 'set', key: 'only-a', value: 1 }]);
        await store.kvWrite('b2', [{ op: 'set', key: 'auth', value: { who: 'b' } }]);
        expect(await store.kvGet('a1', 'auth')).toEqual({ who: 'a' });
        expect(await store.kvGet('b2', 'auth')).toEqual({ who: 'b' });
        expect(await store.kvGet('b2', 'only-a')).toBeUndefined();
        expect(await store.kvList('b2')).toEqual([{ key: 'auth', value: { who: 'b' } }]);
        expect(await store.kvClear('a1')).toBe(2);
        expect(await store.kvGet('b2', 'auth')).toEqual({ who: 'b' });
        await store.kvWrite('a1', [{ op: 'delete', key: 'auth' }]);
        expect(await store.kvGet('b2', 'auth')).toEqual({ who: 'b' });
      });

      it('does not mix sessions whose ids are prefixes of each other', async () => {
        await create('a');
        await create('a1');
        await store.kvWrite('a', [{ op: 'set', key: '1:x', value: 'from a' }]);
        await store.kvWrite('a1', [{ op: 'set', key: 'x', value: 'from a1' }]);
        expect(await store.kvList('a')).toEqual([{ key: '1:x', value: 'from a' }]);
        expect(await store.kvList('a1')).toEqual([{ key: 'x', value: 'from a1' }]);
        expect(await store.kvGet('a', 'x')).toBeUndefined();
      });

      it('throws SessionNotFoundError when writing KV for a missing session', async () => {
        await rejectsWithCode(expect, store.kvWrite('ghost', [{ op: 'set', key: 'k', value: 1 }]), 'SESSION_NOT_FOUND');
        expect(await store.kvGet('ghost', 'k')).toBeUndefined();
        await create('ghost');
        expect(await store.kvList('ghost')).toEqual([]);
      });
    });

    group('kv-values', () => {
      it('round-trips every kind of JSON value', async () => {
        await create('s1');
        const values: Record<string, JsonValue> = {
          str: 'héllo "world" \\ \n ✓ 𝄞',
          empty: '',
          int: 42,
          neg: -7,
          float: 3.25,
          big: 2 ** 53 - 1,
          yes: true,
          no: false,
          nil: null,
          arr: [1, 'two', [3], { four: 4 }],
          obj: { a: { b: { c: [] } }, 'key with spaces': 1 },
          emptyObj: {},
          long: 'x'.repeat(100_000),
        };
        await store.kvWrite('s1', Object.entries(values).map(([key, value]) => ({ op: 'set' as const, key, value })));
        for (const [key, value] of Object.entries(values)) expect(await store.kvGet('s1', key)).toEqual(value);
        expect(await store.kvGet('s1', 'nil')).toBeNull();
        expect(await store.kvGet('s1', 'missing')).toBeUndefined();
      });

      it('overwrites, deletes, and applies a batch in order', async () => {
        await create('s1');
        await store.kvWrite('s1', [{ op: 'set', key: 'k', value: 1 }]);
        await store.kvWrite('s1', [{ op: 'set', key: 'k', value: { v: 2 } }]);
        expect(await store.kvGet('s1', 'k')).toEqual({ v: 2 });
        await store.kvWrite('s1', [
          { op: 'set', key: 'a', value: 1 },
          { op: 'delete', key: 'a' },
          { op: 'set', key: 'b', value: 1 },
          { op: 'set', key: 'b', value: 2 },
          { op: 'delete', key: 'never-set' },
        ]);
        expect(await store.kvGet('s1', 'a')).toBeUndefined();
        expect(await store.kvGet('s1', 'b')).toBe(2);
        await store.kvWrite('s1', [{ op: 'delete', key: 'k' }]);
        expect(await store.kvGet('s1', 'k')).toBeUndefined();
        await store.kvWrite('s1', []);
        expect((await store.kvList('s1')).map((e) => e.key)).toEqual(['b']);
      });

      it('returns copies: mutating a value read or written changes nothing stored', async () => {
        await create('s1');
        const value = { list: [1, 2], inner: { x: 1 } };
        await store.kvWrite('s1', [{ op: 'set', key: 'k', value }]);
        value.list.push(3);
        value.inner.x = 2;
        const read = (await store.kvGet('s1', 'k')) as { list: number[]; inner: { x: number } };
        expect(read).toEqual({ list: [1, 2], inner: { x: 1 } });
        read.list.push(9);
        const [entry] = await store.kvList('s1');
        (entry!.value as { inner: { x: number } }).inner.x = 5;
        expect(await store.kvGet('s1', 'k')).toEqual({ list: [1, 2], inner: { x: 1 } });
      });
    });

    group('kv-atomicity', () => {
      const invalid: [string, unknown][] = [
        ['a function', () => 1],
        ['undefined', undefined],
        ['a function nested in an object', { ok: 1, bad: { fn: () => 1 } }],
        ['a bigint', 10n],
        ['a symbol in an array', [1, Symbol('s')]],
      ];
      for (const [what, bad] of invalid) {
        it(`refuses a batch holding ${what} with ValidationError and writes none of it`, async () => {
          await create('s1');
          await store.kvWrite('s1', [{ op: 'set', key: 'keep', value: 'old' }]);
          await rejectsWithCode(
            expect,
            store.kvWrite('s1', [
              { op: 'set', key: 'new', value: 1 },
              { op: 'set', key: 'keep', value: 'overwritten' },
              { op: 'delete', key: 'keep' },
              { op: 'set', key: 'bad', value: bad as JsonValue },
            ]),
            'VALIDATION',
          );
          expect(await store.kvGet('s1', 'new')).toBeUndefined();
          expect(await store.kvGet('s1', 'bad')).toBeUndefined();
          expect(await store.kvGet('s1', 'keep')).toBe('old');
          expect(await store.kvList('s1')).toEqual([{ key: 'keep', value: 'old' }]);
        });
      }

      it('applies a batch to a missing session not at all', async () => {
        await rejectsWithCode(expect, store.kvWrite('nobody', [{ op: 'set', key: 'a', value: 1 }]), 'SESSION_NOT_FOUND');
        expect(await store.kvList('nobody')).toEqual([]);
      });

      it('keeps concurrent batches whole', async () => {
        await create('s1');
        await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            store.kvWrite('s1', [
              { op: 'set', key: 'x', value: i },
              { op: 'set', key: 'y', value: i },
            ]),
          ),
        );
        const x = await store.kvGet('s1', 'x');
        expect(await store.kvGet('s1', 'y')).toBe(x);
      });
    });

    group('kv-list', () => {
      it('lists entries ordered by key', async () => {
        await create('s1');
        await store.kvWrite('s1', ['b', 'a2', 'a10', 'a1', 'c'].map((key, i) => ({ op: 'set' as const, key, value: i })));
        const list = await store.kvList('s1');
        expect(list.map((e) => e.key)).toEqual(['a1', 'a10', 'a2', 'b', 'c']);
        expect(list[0]).toEqual({ key: 'a1', value: 3 });
      });

      it('filters by prefix, in order', async () => {
        await create('s1');
        await store.kvWrite('s1', ['hist:2', 'auth:x', 'hist:1', 'hist', 'histx:1'].map((key) => ({ op: 'set' as const, key, value: key })));
        expect((await store.kvList('s1', { prefix: 'hist:' })).map((e) => e.key)).toEqual(['hist:1', 'hist:2']);
        expect((await store.kvList('s1', { prefix: 'hist' })).map((e) => e.key)).toEqual(['hist', 'hist:1', 'hist:2', 'histx:1']);
        expect(await store.kvList('s1', { prefix: 'zzz' })).toEqual([]);
        expect(await store.kvList('s1', { prefix: '' })).toHaveLength(5);
        expect(await store.kvList('s1', {})).toHaveLength(5);
      });

      it('treats _ % and \\ in a prefix literally', async () => {
        await create('s1');
        await store.kvWrite('s1', ['a_1', 'ab1', 'a%1', 'a%x', 'aZZ', 'c\\d', 'cd'].map((key) => ({ op: 'set' as const, key, value: 1 })));
        expect((await store.kvList('s1', { prefix: 'a_' })).map((e) => e.key)).toEqual(['a_1']);
        expect((await store.kvList('s1', { prefix: 'a%' })).map((e) => e.key)).toEqual(['a%1', 'a%x']);
        expect((await store.kvList('s1', { prefix: 'c\\' })).map((e) => e.key)).toEqual(['c\\d']);
      });

      it('lists nothing for a session without entries', async () => {
        await create('s1');
        expect(await store.kvList('s1')).toEqual([]);
        expect(await store.kvList('missing')).toEqual([]);
      });
    });

    group('kv-clear', () => {
      it('clears every entry and says how many', async () => {
        await create('s1');
        await store.kvWrite('s1', ['a', 'b', 'c'].map((key) => ({ op: 'set' as const, key, value: 1 })));
        expect(await store.kvClear('s1')).toBe(3);
        expect(await store.kvList('s1')).toEqual([]);
        expect(await store.kvClear('s1')).toBe(0);
        await store.kvWrite('s1', [{ op: 'set', key: 'a', value: 2 }]);
        expect(await store.kvGet('s1', 'a')).toBe(2);
      });

      it('clears only entries under a prefix, taken literally', async () => {
        await create('s1');
        await store.kvWrite('s1', ['ctx:1', 'ctx:2', 'auth:1', 'x_1', 'xy1'].map((key) => ({ op: 'set' as const, key, value: 1 })));
        expect(await store.kvClear('s1', { prefix: 'ctx:' })).toBe(2);
        expect(await store.kvClear('s1', { prefix: 'x_' })).toBe(1);
        expect((await store.kvList('s1')).map((e) => e.key)).toEqual(['auth:1', 'xy1']);
      });

      it('returns 0 for a session without entries', async () => {
        await create('s1');
        expect(await store.kvClear('s1')).toBe(0);
        expect(await store.kvClear('s1', { prefix: 'a' })).toBe(0);
      });
    });

    group('cascade-delete', () => {
      it("drops the session's KV, counters and history with it, and nothing of others", async () => {
        await create('a1');
        await create('b2');
        for (const id of ['a1', 'b2']) {
          await store.kvWrite(id, [{ op: 'set', key: 'k', value: id }]);
          await store.incrementStats([{ sessionId: id, name: 'starts', delta: 2 }]);
          await store.appendTransitions([transition(id, 0), transition(id, 1)], 10);
        }
        await store.appendAudit([{ at: T0, sessionId: 'a1', action: 'session.create', actor: null, details: {} }]);
        expect(await store.deleteSession('a1')).toBe(true);
        expect(await store.kvGet('a1', 'k')).toBeUndefined();
        expect(await store.kvList('a1')).toEqual([]);
        expect(await store.getStats('a1')).toEqual({});
        expect(await store.listTransitions('a1', 10)).toEqual([]);
        // the audit log outlives the session
        expect((await store.listAudit({ sessionId: 'a1' })).map((e) => e.action)).toEqual(['session.create']);
        // a new session under the same id starts empty
        await create('a1');
        expect(await store.kvList('a1')).toEqual([]);
        expect(await store.getStats('a1')).toEqual({});
        expect(await store.listTransitions('a1', 10)).toEqual([]);
        // the other session keeps everything
        expect(await store.kvGet('b2', 'k')).toBe('b2');
        expect(await store.getStats('b2')).toEqual({ starts: 2 });
        expect(await store.listTransitions('b2', 10)).toHaveLength(2);
      });
    });

    group('stats', () => {
      it('creates counters on first use and adds deltas', async () => {
        await create('s1');
        expect(await store.getStats('s1')).toEqual({});
        await store.incrementStats([
          { sessionId: 's1', name: 'starts', delta: 1 },
          { sessionId: 's1', name: 'messagesIn', delta: 5 },
          { sessionId: 's1', name: 'starts', delta: 2 },
        ]);
        await store.incrementStats([{ sessionId: 's1', name: 'messagesIn', delta: -1 }]);
        await store.incrementStats([{ sessionId: 's1', name: 'bids', delta: 0 }]);
        const stats = await store.getStats('s1');
        expect(stats).toEqual({ starts: 3, messagesIn: 4, bids: 0 });
        expect(typeof stats.starts).toBe('number');
      });

      it('keeps counters per session and skips missing sessions', async () => {
        await create('a1');
        await create('b2');
        await store.incrementStats([
          { sessionId: 'a1', name: 'errors', delta: 1 },
          { sessionId: 'ghost', name: 'errors', delta: 100 },
          { sessionId: 'b2', name: 'errors', delta: 10 },
        ]);
        expect(await store.getStats('a1')).toEqual({ errors: 1 });
        expect(await store.getStats('b2')).toEqual({ errors: 10 });
        expect(await store.getStats('ghost')).toEqual({});
        await create('ghost');
        expect(await store.getStats('ghost')).toEqual({});
      });

      it('loses no increment under concurrency', async () => {
        await create('s1');
        await Promise.all(Array.from({ length: 20 }, () => store.incrementStats([{ sessionId: 's1', name: 'n', delta: 1 }])));
        expect(await store.getStats('s1')).toEqual({ n: 20 });
      });

      it('returns a copy of the counters', async () => {
        await create('s1');
        await store.incrementStats([{ sessionId: 's1', name: 'n', delta: 1 }]);
        const stats = await store.getStats('s1');
        stats.n = 99;
        expect(await store.getStats('s1')).toEqual({ n: 1 });
      });
    });

    group('transitions', () => {
      it('returns the newest transitions, oldest first', async () => {
        await create('s1');
        await store.appendTransitions([0, 1, 2, 3].map((n) => transition('s1', n)), 10);
        await store.appendTransitions([transition('s1', 4)], 10);
        expect(await store.listTransitions('s1', 10)).toEqual([0, 1, 2, 3, 4].map((n) => transition('s1', n)));
        expect(await store.listTransitions('s1', 2)).toEqual([3, 4].map((n) => transition('s1', n)));
        expect(await store.listTransitions('s1', 1)).toEqual([transition('s1', 4)]);
      });

      it('keeps at most keepPerSession entries per session', async () => {
        await create('s1');
        await create('s2');
        await store.appendTransitions([0, 1, 2, 3, 4].map((n) => transition('s1', n)), 3);
        expect(await store.listTransitions('s1', 100)).toEqual([2, 3, 4].map((n) => transition('s1', n)));
        await store.appendTransitions([transition('s1', 5), transition('s2', 0), transition('s2', 1)], 3);
        expect((await store.listTransitions('s1', 100)).map((t) => t.reason)).toEqual(['step 3', 'step 4', 'step 5']);
        // trimming one session never trims another
        await store.appendTransitions([2, 3, 4, 5].map((n) => transition('s2', n)), 2);
        expect((await store.listTransitions('s2', 100)).map((t) => t.reason)).toEqual(['step 4', 'step 5']);
        expect(await store.listTransitions('s1', 100)).toHaveLength(3);
      });

      it('lists nothing for a session without history', async () => {
        await create('s1');
        expect(await store.listTransitions('s1', 5)).toEqual([]);
        expect(await store.listTransitions('missing', 5)).toEqual([]);
      });
    });

    group('audit', () => {
      const entry = (n: number, sessionId: string | null, action: string) => ({
        at: T0 + n * 1000,
        sessionId,
        action,
        actor: n % 2 ? 'admin' : null,
        details: { n, changed: ['config'] },
      });

      it('appends entries and lists them newest first with growing numeric ids', async () => {
        await store.appendAudit([entry(1, 'a1', 'session.create'), entry(2, 'a1', 'session.start')]);
        await store.appendAudit([entry(3, null, 'manager.rotate-key')]);
        const list = await store.listAudit({});
        expect(list.map((e) => e.action)).toEqual(['manager.rotate-key', 'session.start', 'session.create']);
        expect(list[2]).toMatchObject(entry(1, 'a1', 'session.create'));
        expect(list[0]!.sessionId).toBeNull();
        for (const e of list) expect(typeof e.id).toBe('number');
        expect(list[0]!.id).toBeGreaterThan(list[1]!.id);
        expect(list[1]!.id).toBeGreaterThan(list[2]!.id);
        await store.appendAudit([entry(4, 'b2', 'session.stop')]);
        const [newest] = await store.listAudit({ limit: 1 });
        expect(newest!.id).toBeGreaterThan(list[0]!.id);
        expect(newest!.action).toBe('session.stop');
      });

      it('filters by session, action and time, and limits', async () => {
        await store.appendAudit([
          entry(1, 'a1', 'session.create'),
          entry(2, 'b2', 'session.create'),
          entry(3, 'a1', 'session.start'),
          entry(4, 'a1', 'session.stop'),
          entry(5, 'b2', 'session.start'),
        ]);
        expect((await store.listAudit({ sessionId: 'a1' })).map((e) => e.details.n)).toEqual([4, 3, 1]);
        expect((await store.listAudit({ action: 'session.create' })).map((e) => e.sessionId)).toEqual(['b2', 'a1']);
        expect((await store.listAudit({ since: T0 + 3000 })).map((e) => e.details.n)).toEqual([5, 4, 3]);
        expect((await store.listAudit({ limit: 2 })).map((e) => e.details.n)).toEqual([5, 4]);
        expect(
          (await store.listAudit({ sessionId: 'a1', action: 'session.start', since: T0 + 3000 })).map((e) => e.details.n),
        ).toEqual([3]);
        expect((await store.listAudit({ sessionId: 'a1', limit: 1 })).map((e) => e.details.n)).toEqual([4]);
        expect(await store.listAudit({ sessionId: 'zz' })).toEqual([]);
      });

      it('returns at most 100 entries by default', async () => {
        await store.appendAudit(Array.from({ length: 120 }, (_, i) => entry(i, 'a1', 'session.touch')));
        const list = await store.listAudit({});
        expect(list).toHaveLength(100);
        expect(list[0]!.details.n).toBe(119);
        expect(list[99]!.details.n).toBe(20);
      });
    });

    group('replace-credentials', () => {
      it('rewrites the credentials of several sessions and adds 1 to each version', async () => {
        await create('a1');
        await create('b2');
        await store.updateSession('b2', { priority: 1, updatedAt: T0 + 1 }, 1);
        const out = await store.replaceCredentials([
          { id: 'a1', credentials: 'sealed2:a1', credentialsFingerprint: 'fp2:a1', expectedVersion: 1, updatedAt: T0 + 10 },
          { id: 'b2', credentials: 'sealed2:b2', credentialsFingerprint: 'fp2:b2', expectedVersion: 2, updatedAt: T0 + 10 },
        ]);
        expect(out.map((r) => [r.id, r.version, r.credentials])).toEqual([
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

      it('rewrites nothing when one version is stale (ConflictError)', async () => {
        await create('a1');
        await create('b2');
        await store.updateSession('b2', { priority: 1, updatedAt: T0 + 1 }, 1);
        await rejectsWithCode(
          expect,
          store.replaceCredentials([
            { id: 'a1', credentials: 'sealed2:a1', credentialsFingerprint: 'fp2:a1', expectedVersion: 1, updatedAt: T0 + 10 },
            { id: 'b2', credentials: 'sealed2:b2', credentialsFingerprint: 'fp2:b2', expectedVersion: 1, updatedAt: T0 + 10 },
          ]),
          'CONFLICT',
        );
        const a = await must('a1');
        expect(a.credentials).toBe('sealed:a1');
        expect(a.credentialsFingerprint).toBe('fp:a1');
        expect(a.version).toBe(1);
        expect((await must('b2')).credentials).toBe('sealed:b2');
      });

      it('rewrites nothing when a session is missing', async () => {
        await create('a1');
        const error = await store
          .replaceCredentials([
            { id: 'a1', credentials: 'new', credentialsFingerprint: 'fpn', expectedVersion: 1, updatedAt: T0 + 1 },
            { id: 'gone', credentials: 'new', credentialsFingerprint: 'fpg', expectedVersion: 1, updatedAt: T0 + 1 },
          ])
          .then(
            () => null,
            (e: { code?: string }) => e,
          );
        expect(['SESSION_NOT_FOUND', 'CONFLICT']).toContain(error?.code);
        expect((await must('a1')).credentials).toBe('sealed:a1');
      });

      it('moves the duplicate-credential guard to the new fingerprints', async () => {
        await create('a1', { credentialsFingerprint: 'old' });
        await store.replaceCredentials([
          { id: 'a1', credentials: 'sealed2', credentialsFingerprint: 'new', expectedVersion: 1, updatedAt: T0 + 1 },
        ]);
        expect((await create('b2', { credentialsFingerprint: 'old' })).credentialsFingerprint).toBe('old');
        await rejectsWithCode(expect, create('c3', { credentialsFingerprint: 'new' }), 'DUPLICATE_CREDENTIALS');
      });
    });

    if (options.corruptRow) {
      const corruptRow = options.corruptRow;
      group('unreadable-rows', () => {
        it('returns an unreadable record with readError and every other record intact', async () => {
          await create('a1');
          await create('b2');
          await create('c3');
          await corruptRow(store, 'b2');
          const list = await store.listSessions();
          expect(list.map((r) => r.id)).toEqual(['a1', 'b2', 'c3']);
          expect(list[0]).toEqual({ ...sampleSessionRecord('a1'), version: 1 });
          expect(list[2]).toEqual({ ...sampleSessionRecord('c3'), version: 1 });
          const broken = list[1]!;
          expect(typeof broken.readError).toBe('string');
          expect((broken.readError ?? '').length).toBeGreaterThan(0);
          expect(broken.id).toBe('b2');
        });

        it('keeps other sessions writable next to an unreadable one', async () => {
          await create('a1');
          await create('b2');
          await corruptRow(store, 'a1');
          const b = await store.updateSession('b2', { priority: 1, updatedAt: T0 + 1 }, 1);
          expect(b.version).toBe(2);
          await store.kvWrite('b2', [{ op: 'set', key: 'k', value: 1 }]);
          expect(await store.kvGet('b2', 'k')).toBe(1);
          expect((await store.listSessions()).filter((r) => r.readError === undefined).map((r) => r.id)).toEqual(['b2']);
        });
      });
    }

    if (options.reopen) {
      const reopen = options.reopen;
      group('shared-store', () => {
        let other: StorageDriver;
        beforeEach(async () => {
          other = await reopen(store);
          await other.init();
        });
        afterEach(async () => {
          await other.close();
        });

        it('shows what one handle writes to the other', async () => {
          await create('a1');
          await store.kvWrite('a1', [{ op: 'set', key: 'k', value: { v: 1 } }]);
          await store.incrementStats([{ sessionId: 'a1', name: 'n', delta: 2 }]);
          expect(await other.getSession('a1')).toEqual({ ...sampleSessionRecord('a1'), version: 1 });
          expect(await other.kvGet('a1', 'k')).toEqual({ v: 1 });
          expect(await other.getStats('a1')).toEqual({ n: 2 });
          await other.updateSession('a1', { priority: 1, updatedAt: T0 + 1 }, 1);
          expect((await must('a1')).version).toBe(2);
        });

        it('keeps the compare-and-swap between handles', async () => {
          await create('a1');
          const results = await Promise.allSettled([
            store.updateSession('a1', { metadata: 'one', updatedAt: T0 + 1 }, 1),
            other.updateSession('a1', { metadata: 'two', updatedAt: T0 + 2 }, 1),
          ]);
          expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
          await rejectsWithCode(expect, other.updateSession('a1', { priority: 1, updatedAt: T0 + 3 }, 1), 'CONFLICT');
          expect((await must('a1')).version).toBe(2);
        });

        it('keeps the duplicate-credential guard between handles', async () => {
          const results = await Promise.allSettled([
            create('a1', { credentialsFingerprint: 'same' }),
            other.createSession(sampleSessionRecord('b2', { credentialsFingerprint: 'same' })),
          ]);
          expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
          expect(await store.listSessions()).toHaveLength(1);
          await rejectsWithCode(expect, other.createSession(sampleSessionRecord('c3', { credentialsFingerprint: 'same' })), 'DUPLICATE_CREDENTIALS');
        });

        it('grows audit ids across handles', async () => {
          await store.appendAudit([{ at: T0, sessionId: null, action: 'one', actor: null, details: {} }]);
          await other.appendAudit([{ at: T0, sessionId: null, action: 'two', actor: null, details: {} }]);
          await store.appendAudit([{ at: T0, sessionId: null, action: 'three', actor: null, details: {} }]);
          const list = await other.listAudit({});
          expect(list.map((e) => e.action)).toEqual(['three', 'two', 'one']);
          expect(list[0]!.id).toBeGreaterThan(list[1]!.id);
          expect(list[1]!.id).toBeGreaterThan(list[2]!.id);
        });

        it('initialises from two handles at once', async () => {
          const third = await reopen(store);
          const fourth = await reopen(store);
          try {
            await Promise.all([third.init(), fourth.init(), other.init()]);
            await create('a1');
            expect((await third.getSession('a1'))?.id).toBe('a1');
            expect((await fourth.listSessions()).map((r) => r.id)).toEqual(['a1']);
          } finally {
            await third.close();
            await fourth.close();
          }
        });
      });
    }

    group('lifecycle', () => {
      it('init is idempotent and keeps the data', async () => {
        await create('s1');
        await store.kvWrite('s1', [{ op: 'set', key: 'k', value: 1 }]);
        await store.init();
        await store.init();
        await store.ping();
        expect((await must('s1')).version).toBe(1);
        expect(await store.kvGet('s1', 'k')).toBe(1);
      });

      it('close is idempotent', async () => {
        await store.close();
        await store.close();
        expect(typeof store.kind).toBe('string');
        expect(typeof store.persistent).toBe('boolean');
      });
    });
  });
}
