import type { Checkpoint, CheckpointOptions } from '../../checkpoint/checkpoint.js';
import type { CheckpointBackend } from '../../checkpoint/contract.js';
import type { StorageDriver } from '../../storage/driver.js';
import type { TestRunner } from '../runner.js';

/** What every group of the checkpoint suite gets: the runner's `it` and `expect`, and this test's store and stream. */
export interface SuiteContext {
  readonly it: TestRunner['it'];
  readonly expect: TestRunner['expect'];
  /** A checkpoint on this test's store and stream, with `extra` options. */
  open(extra?: Partial<Omit<CheckpointOptions, 'storage'>>): Checkpoint;
  /** This test's store (from the suite's factory). */
  storage(): StorageDriver | CheckpointBackend;
  /** This test's stream: a new one for every test. */
  stream(): string;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The keys of `leases`, sorted. */
export const keys = (leases: { key: string }[]) => leases.map((l) => l.key).sort();

/** `n` items keyed `<prefix>0000`, `<prefix>0001`, … with payload `{ i }`. */
export const items = (n: number, prefix = 'k') =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}${String(i).padStart(4, '0')}`, payload: { i } }));
