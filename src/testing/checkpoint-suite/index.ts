import type { CheckpointHost } from '../../checkpoint/contract.js';
import type { TestRunner } from '../runner.js';
import { addGroup } from './add.js';
import { claimKeyGroup } from './claim-key.js';
import { claimGroup } from './claim.js';
import { completeGroup } from './complete.js';
import { coalesceGroup } from './coalesce.js';
import { checkpointSuiteContext, type CheckpointSuiteContext } from './context.js';
import { expiryGroup } from './expiry.js';
import { failGroup } from './fail.js';
import { fencingGroup } from './fencing.js';
import { inspectGroup } from './inspect.js';
import { processGroup } from './process.js';
import { releaseGroup } from './release.js';
import { renewGroup } from './renew.js';
import { validationGroup } from './validation.js';

/** Groups of {@link checkpointConformanceSuite}; pass names in `skip` to switch groups off. */
export const CHECKPOINT_SUITE_GROUPS = [
  'add',
  'claim',
  'fencing',
  'expiry',
  'claim-key',
  'renew',
  'complete',
  'fail',
  'release',
  'coalesce',
  'inspect',
  'validation',
  'process',
] as const;
export type CheckpointSuiteGroup = (typeof CHECKPOINT_SUITE_GROUPS)[number];

/** What the suite's factory returns for each test. */
export interface CheckpointSuiteTarget {
  /** A store with the checkpoint: a storage driver (`memoryStorage()` …) or a checkpoint store (`memoryCheckpoint()` …). */
  storage: CheckpointHost;
  /** Called after each test. */
  close?: () => Promise<void>;
}

export interface CheckpointSuiteOptions {
  /** Shown in the suite's title: `checkpoint conformance: <name>`. */
  name?: string;
  /** Groups to leave out (see {@link CHECKPOINT_SUITE_GROUPS}). */
  skip?: readonly CheckpointSuiteGroup[];
}

const GROUPS: Record<CheckpointSuiteGroup, (t: CheckpointSuiteContext) => void> = {
  add: addGroup,
  claim: claimGroup,
  fencing: fencingGroup,
  expiry: expiryGroup,
  'claim-key': claimKeyGroup,
  renew: renewGroup,
  complete: completeGroup,
  fail: failGroup,
  release: releaseGroup,
  coalesce: coalesceGroup,
  inspect: inspectGroup,
  validation: validationGroup,
  process: processGroup,
};

let streamCounter = 0;

/**
 * The checkpoint conformance suite: every rule of the checkpoint contract (atomic claims, fencing
 * tokens that only grow, compare-and-swap changes that raise `LeaseLostError` and change nothing,
 * expiry taken back by the claim, attempts and `dead`, `process()`), checked through the public
 * `createCheckpoint` API. Our memory, SQLite and PostgreSQL backends pass it; run it on yours.
 *
 * Every test works in a stream of its own, so the factory may return the same store each time.
 * Expiry is checked with short real leases (tens of milliseconds) and waits; nothing asserts on
 * elapsed time.
 *
 * @example
 * ```ts
 * import { describe, it, expect, beforeEach, afterEach } from 'vitest';
 * import { memoryCheckpoint } from 'multisession';
 * import { checkpointConformanceSuite } from 'multisession/testing';
 *
 * checkpointConformanceSuite({ describe, it, expect, beforeEach, afterEach }, async () => ({ storage: memoryCheckpoint() }), { name: 'memory' });
 * ```
 */
export function checkpointConformanceSuite(
  runner: TestRunner,
  factory: () => Promise<CheckpointSuiteTarget>,
  options: CheckpointSuiteOptions = {},
): void {
  const { describe, beforeEach, afterEach } = runner;
  const skip = new Set<string>(options.skip ?? []);
  let target: CheckpointSuiteTarget | undefined;
  let stream = '';
  const current = () => {
    if (!target) throw new Error('checkpointConformanceSuite: no store (the factory has not run for this test).');
    return { storage: target.storage, stream };
  };

  describe(`checkpoint conformance: ${options.name ?? 'backend'}`, () => {
    beforeEach(async () => {
      target = await factory();
      stream = `suite-${process.pid}-${Date.now().toString(36)}-${++streamCounter}`;
    });
    afterEach(async () => {
      const t = target;
      target = undefined;
      await t?.close?.();
    });

    for (const name of CHECKPOINT_SUITE_GROUPS) {
      if (!skip.has(name)) describe(name, () => GROUPS[name](checkpointSuiteContext(runner, current)));
    }
  });
}
