import type { ClusterStore } from '../../storage/cluster-contract.js';
import type {
  AuditStore,
  CounterStore,
  HistoryStore,
  KvStore,
  NewSessionRecord,
  SessionPatch,
  SessionRecord,
  SessionStore,
  StorageCapability,
  StorageDriver,
  TransitionRecord,
} from '../../storage/contract.js';
import type { TestRunner } from '../runner.js';

export const T0 = Date.UTC(2026, 0, 1);

/**
 * A complete, realistic `NewSessionRecord` for driver tests; every field differs from its default
 * so round-trips show. `overrides` replace fields.
 *
 * @example
 * ```ts
 * const created = await store.sessions.create(sampleSessionRecord('bot-1', { credentialsFingerprint: null }));
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

/** What a group's tests see: the runner, the store of the current test and helpers. */
export interface SuiteContext {
  readonly expect: TestRunner['expect'];
  readonly describe: TestRunner['describe'];
  readonly beforeEach: TestRunner['beforeEach'];
  readonly afterEach: TestRunner['afterEach'];
  /**
   * Defines a test that runs only when the store has every capability in `requires` (by default
   * the group's); otherwise it is skipped (through the runner's `context.skip()` when it has one,
   * as vitest does; else it passes without asserting).
   */
  it(name: string, fn: () => Promise<void>, requires?: readonly StorageCapability[]): void;
  /** The store of the current test, as the factory made it and the suite guarded it. */
  readonly store: StorageDriver;
  readonly sessions: SessionStore;
  /** The store's capabilities (read only in tests that require them). */
  readonly kv: KvStore;
  readonly counters: CounterStore;
  readonly history: HistoryStore;
  readonly audit: AuditStore;
  readonly cluster: ClusterStore;
  /** True when the store has `capability`. */
  has(capability: StorageCapability): boolean;
  create(id: string, overrides?: Partial<NewSessionRecord>): Promise<SessionRecord>;
  /** `sessions.update` that must win its compare-and-swap (fails the test on `null`). */
  update(id: string, patch: SessionPatch, expectedVersion: number): Promise<SessionRecord>;
  /** The stored session; fails the test when it is missing. */
  must(id: string): Promise<SessionRecord>;
  transition(sessionId: string, n: number): TransitionRecord;
}

/** Makes the context of one group; `current()` is the store of the running test. */
export function suiteContext(runner: TestRunner, current: () => StorageDriver, requires: readonly StorageCapability[]): SuiteContext {
  const { expect } = runner;
  const store = (): StorageDriver => current();
  const capability = <K extends StorageCapability>(name: K): NonNullable<StorageDriver[K]> => {
    const value = store()[name];
    if (!value) throw new Error(`The store has no ${name} capability (the suite should have skipped this test).`);
    return value as NonNullable<StorageDriver[K]>;
  };
  const context: SuiteContext = {
    expect,
    describe: runner.describe,
    beforeEach: runner.beforeEach,
    afterEach: runner.afterEach,
    it(name, fn, needs = requires) {
      runner.it(name, async (...args: unknown[]) => {
        const missing = needs.filter((c) => !store()[c]);
        if (missing.length === 0) return fn();
        // vitest passes a test context whose skip() marks the test skipped; other runners pass none.
        const skip = (args[0] as { skip?: (note?: string) => void } | undefined)?.skip;
        if (typeof skip === 'function') skip(`the store has no ${missing.join(', ')} capability`);
      });
    },
    get store() {
      return store();
    },
    get sessions() {
      return store().sessions;
    },
    get kv() {
      return capability('kv');
    },
    get counters() {
      return capability('counters');
    },
    get history() {
      return capability('history');
    },
    get audit() {
      return capability('audit');
    },
    get cluster() {
      return capability('cluster');
    },
    has: (name) => !!store()[name],
    create: (id, overrides = {}) => store().sessions.create(sampleSessionRecord(id, overrides)),
    async update(id, patch, expectedVersion) {
      const record = await store().sessions.update(id, patch, expectedVersion);
      expect(record).not.toBeNull();
      return record!;
    },
    async must(id) {
      const record = await store().sessions.get(id);
      expect(record).not.toBeNull();
      return record!;
    },
    transition: (sessionId, n) => ({
      sessionId,
      from: n % 2 === 0 ? 'stopped' : 'starting',
      to: n % 2 === 0 ? 'starting' : 'ready',
      reason: `step ${n}`,
      at: T0 + n,
    }),
  };
  return context;
}
