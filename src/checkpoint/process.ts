/**
 * The public shape of `Checkpoint.process()`: its options, the handler and what it receives, the
 * summary. The machinery is in `./worker/` (claimer, lease keeper, completion batcher, runner).
 */
import { z } from 'zod';
import type { JsonValue } from '../types.js';
import type { WorkItem } from './checkpoint.js';
import type { Lease } from './contract.js';

/** What the handler receives besides the item. */
export interface WorkContext {
  /** The current lease (its expiry moves on every renewal). Its `token` can fence side effects. */
  lease: Lease;
  /** Aborted when the lease is lost, its deadline passes, or `process()` is asked to stop. */
  signal: AbortSignal;
}

/** Does the work of one item. The value it resolves to is stored as the item's result. */
export type WorkHandler = (item: WorkItem, context: WorkContext) => Promise<JsonValue | void> | JsonValue | void;

export const processOptionsSchema = z
  .object({
    owner: z.string().min(1, 'name the owner (e.g. worker id)').max(200),
    /** Handlers running at once. Default 1. */
    concurrency: z.number().int().min(1).max(1000).default(1),
    /** Items per claim (and per completion batch); default min(200, max(16, 8 × concurrency)). */
    batchSize: z.number().int().min(1).max(10_000).optional(),
    /** Lease length; renewed every third of it. Default 30 s. */
    leaseMs: z.number().int().min(30).max(24 * 60 * 60 * 1000).default(30_000),
    /** Completions wait at most this long to be written together. Default 5 ms. */
    flushMs: z.number().int().min(0).max(60_000).default(5),
    /** Wait between claims when nothing is claimable (until: 'aborted') or after an error. Default 1 s. */
    pollMs: z.number().int().min(1).max(600_000).default(1000),
    /** `drained`: return when nothing is claimable; `aborted`: keep polling until `signal` aborts. */
    until: z.enum(['drained', 'aborted']).default('drained'),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .refine((o) => o.until === 'drained' || o.signal !== undefined, {
    message: "until: 'aborted' needs a signal to stop it",
    path: ['signal'],
  });

export type ProcessOptions = z.input<typeof processOptionsSchema>;

/** Counters of one `process()` run. */
export interface ProcessSummary {
  /** Why it returned. */
  reason: 'drained' | 'aborted';
  claimed: number;
  completed: number;
  /** Handler failures that will be retried. */
  failed: number;
  /** Handler failures that used up `maxAttempts`. */
  dead: number;
  /** Leases lost (renewal refused, deadline passed, or the completion's compare-and-swap lost). */
  lost: number;
  /** Leases given back unprocessed because of the stop signal. */
  released: number;
  /** Backend errors met (and retried) on the way. */
  errors: number;
}
