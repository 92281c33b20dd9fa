import { createCheckpoint, type Checkpoint, type CheckpointOptions } from '../../checkpoint/checkpoint.js';
import type { CheckpointHost } from '../../checkpoint/contract.js';
import type { TestRunner } from '../runner.js';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What a group's tests see: the runner, the store and stream of the current test, helpers. */
export interface CheckpointSuiteContext {
  readonly it: TestRunner['it'];
  readonly expect: TestRunner['expect'];
  /** The store the factory returned for the current test. */
  readonly storage: CheckpointHost;
  /** A stream of the current test's own. */
  readonly stream: string;
  /** A checkpoint on the current test's store and stream. */
  open(extra?: Partial<Omit<CheckpointOptions, 'storage'>>): Checkpoint;
  /** The keys of `leases`, sorted. */
  keys(leases: { key: string }[]): string[];
  /** `n` items `k0000`, `k0001`, … (or with `prefix`), payload `{ i }`. */
  items(n: number, prefix?: string): { key: string; payload: { i: number } }[];
}

export function checkpointSuiteContext(runner: TestRunner, current: () => { storage: CheckpointHost; stream: string }): CheckpointSuiteContext {
  return {
    it: runner.it,
    expect: runner.expect,
    get storage() {
      return current().storage;
    },
    get stream() {
      return current().stream;
    },
    open: (extra = {}) => createCheckpoint({ storage: current().storage, stream: current().stream, ...extra }),
    keys: (leases) => leases.map((l) => l.key).sort(),
    items: (n, prefix = 'k') => Array.from({ length: n }, (_, i) => ({ key: `${prefix}${String(i).padStart(4, '0')}`, payload: { i } })),
  };
}
