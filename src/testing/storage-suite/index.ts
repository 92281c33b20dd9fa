import type { StorageCapability, StorageDriver } from '../../storage/contract.js';
import { guardStore } from '../../storage/guarded-storage.js';
import type { TestRunner } from '../runner.js';
import { auditGroup } from './audit.js';
import { transactionalAuditGroup } from './transactional-audit.js';
import { cascadeDeleteGroup } from './cascade-delete.js';
import { clusterGroup } from './cluster.js';
import { suiteContext, type SuiteContext } from './context.js';
import { duplicateCredentialsGroup } from './duplicate-credentials.js';
import { guardGroup } from './guard.js';
import { kvAtomicityGroup } from './kv-atomicity.js';
import { kvClearGroup } from './kv-clear.js';
import { kvIsolationGroup } from './kv-isolation.js';
import { kvListGroup } from './kv-list.js';
import { kvValuesGroup } from './kv-values.js';
import { lifecycleGroup } from './lifecycle.js';
import { replaceCredentialsGroup } from './replace-credentials.js';
import { maxSessionsGroup } from './max-sessions.js';
import { sessionExistsGroup } from './session-exists.js';
import { sessionsGroup } from './sessions.js';
import { sharedStoreGroup } from './shared-store.js';
import { statsGroup } from './stats.js';
import { statusGroup } from './status.js';
import { transitionsGroup } from './transitions.js';
import { unitsGroup } from './units.js';
import { unreadableRowsGroup } from './unreadable-rows.js';
import { versioningGroup } from './versioning.js';
import { webhooksGroup } from './webhooks.js';

export { sampleSessionRecord } from './context.js';

/**
 * Groups of {@link storageConformanceSuite}; pass names in `skip` to switch groups off. Groups of
 * a capability the store lacks (`kv-*`, `stats`, `transitions`, `audit`, `transactional-audit`, `cluster`, `max-sessions`, `webhooks`, `units`) are skipped by themselves.
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
  'transactional-audit',
  'replace-credentials',
  'unreadable-rows',
  'shared-store',
  'cluster',
  'max-sessions',
  'webhooks',
  'units',
  'lifecycle',
  'guard',
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
   * that cannot be decoded, bypassing the driver's checks). `sessions.list` must then return that
   * record with `readError` set and every other record intact.
   */
  corruptRow?: (store: StorageDriver, id: string) => Promise<void>;
  /**
   * Opt in to the `shared-store` group (drivers whose data outlives one handle: SQLite, PostgreSQL):
   * return a second, not yet initialised driver on the same store as `store`, as another process
   * would open it. The suite initialises and closes it. Checks that both handles see one store and
   * that the compare-and-swap and duplicate-credential guards hold between them. The `cluster`
   * group also uses it, for two nodes acquiring at once through two handles (without it, through one).
   */
  reopen?: (store: StorageDriver) => Promise<StorageDriver>;
}

/** Each group: its tests and the capabilities they need (none: the sessions every store has). */
const GROUPS: readonly { name: StorageSuiteGroup; requires: readonly StorageCapability[]; define: (t: SuiteContext, options: StorageSuiteOptions) => void }[] = [
  { name: 'sessions', requires: [], define: sessionsGroup },
  { name: 'versioning', requires: [], define: versioningGroup },
  { name: 'session-exists', requires: [], define: sessionExistsGroup },
  { name: 'duplicate-credentials', requires: [], define: duplicateCredentialsGroup },
  { name: 'status', requires: [], define: statusGroup },
  { name: 'kv-isolation', requires: ['kv'], define: kvIsolationGroup },
  { name: 'kv-values', requires: ['kv'], define: kvValuesGroup },
  { name: 'kv-atomicity', requires: ['kv'], define: kvAtomicityGroup },
  { name: 'kv-list', requires: ['kv'], define: kvListGroup },
  { name: 'kv-clear', requires: ['kv'], define: kvClearGroup },
  { name: 'cascade-delete', requires: [], define: cascadeDeleteGroup },
  { name: 'stats', requires: ['counters'], define: statsGroup },
  { name: 'transitions', requires: ['history'], define: transitionsGroup },
  { name: 'audit', requires: ['audit'], define: auditGroup },
  { name: 'transactional-audit', requires: ['audit'], define: transactionalAuditGroup },
  { name: 'replace-credentials', requires: [], define: replaceCredentialsGroup },
  { name: 'unreadable-rows', requires: [], define: (t, o) => o.corruptRow && unreadableRowsGroup(t, o.corruptRow) },
  { name: 'shared-store', requires: [], define: (t, o) => o.reopen && sharedStoreGroup(t, o.reopen) },
  { name: 'cluster', requires: ['cluster'], define: (t, o) => clusterGroup(t, o.reopen) },
  { name: 'max-sessions', requires: ['cluster'], define: (t, o) => maxSessionsGroup(t, o.reopen) },
  { name: 'webhooks', requires: ['webhooks'], define: webhooksGroup },
  { name: 'units', requires: ['units'], define: unitsGroup },
  { name: 'lifecycle', requires: [], define: lifecycleGroup },
  { name: 'guard', requires: [], define: guardGroup },
];

/**
 * The storage driver conformance suite: every invariant of the `StorageDriver` contract, checked
 * through the driver's own capabilities. The suite that our memory, SQLite and PostgreSQL drivers
 * pass; run it on yours. Modelled on `@keyv/test-suite`: the test runner is passed in.
 *
 * `factory` must return a fresh, empty store for every test (opened or not); the suite guards it
 * with `guardStore` as the manager does, and calls `close()` after each test. Groups of optional
 * capabilities the store lacks are skipped. A lost compare-and-swap must be returned (`null`), not
 * thrown; other errors are recognised by their `code` (`SESSION_EXISTS`, `DUPLICATE_CREDENTIALS`,
 * `SESSION_NOT_FOUND`, `VALIDATION`, `STORAGE`), so the driver must throw the errors of
 * `multisession` for those. Beyond the contract's doc comment the suite expects: `kv.write`
 * refuses a value JSON cannot represent (a function, `undefined`, a bigint …) with
 * `ValidationError` before writing anything; a stored `null` comes back as `null`, a missing key
 * as `undefined`; KV prefixes are literal (`_`, `%` and `\` are not wildcards); numbers and times
 * come back as numbers.
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
 * }, { name: 'my-storage', skip: ['unreadable-rows'] });
 * ```
 */
export function storageConformanceSuite(
  runner: TestRunner,
  factory: () => Promise<StorageDriver>,
  options: StorageSuiteOptions = {},
): void {
  const { describe, beforeEach, afterEach } = runner;
  const skip = new Set<string>(options.skip ?? []);
  let store: StorageDriver | undefined;
  const current = (): StorageDriver => {
    if (!store) throw new Error('storageConformanceSuite: no store (the factory has not run for this test).');
    return store;
  };

  describe(`storage conformance: ${options.name ?? 'driver'}`, () => {
    beforeEach(async () => {
      store = guardStore(await factory());
    });
    afterEach(async () => {
      const s = store;
      store = undefined;
      if (s) await s.close();
    });

    for (const group of GROUPS) {
      if (skip.has(group.name)) continue;
      if (group.name === 'unreadable-rows' && !options.corruptRow) continue;
      if (group.name === 'shared-store' && !options.reopen) continue;
      describe(group.name, () => group.define(suiteContext(runner, current, group.requires), options));
    }
  });
}
