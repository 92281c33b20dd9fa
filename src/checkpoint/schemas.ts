import { z } from 'zod';
import { findJsonProblem } from '../json.js';
import { clockSchema } from '../validation.js';
import { CHECKPOINT_STATUSES, type NewCheckpointItem } from './contract.js';

/** The input schemas of the checkpoint facade, and the plain checks that spare them on hot paths. */

export const MAX_LEASE_MS = 24 * 60 * 60 * 1000;
export const streamSchema = z.string().min(1, 'give the stream a non-empty name').max(200);
export const keySchema = z.string().min(1, 'keys must be non-empty strings').max(1000);
export const ownerSchema = z.string().min(1, 'name the owner (e.g. worker id)').max(200);
export const leaseMsSchema = z.number().int().min(1).max(MAX_LEASE_MS, 'leases last at most 24 h; renew instead');
export const jsonSchema = z.json();

export const checkpointOptionsSchema = z.object({
  stream: streamSchema,
  /** Failed attempts before an item goes `dead` (expired leases count). Default 5. */
  maxAttempts: z.number().int().min(1).max(1000).default(5),
  /** Retry delay after the n-th failure: min(maxMs, minMs · factor^(n-1)). */
  backoff: z
    .object({
      minMs: z.number().int().min(0).default(1000),
      maxMs: z.number().int().min(0).default(5 * 60_000),
      factor: z.number().min(1).max(100).default(2),
    })
    .refine((b) => b.maxMs >= b.minMs, { message: 'backoff.maxMs must be at least backoff.minMs' })
    .default({ minMs: 1000, maxMs: 5 * 60_000, factor: 2 }),
  /**
   * The time source of `process()`: its timers (renewal, deadlines, flush window, pauses) and its
   * time reads. Default `systemClock`; pass `createManualClock()` to drive it by hand in tests.
   * Lease expiry is still judged by the store's clock.
   */
  clock: clockSchema.optional(),
});

export const newItemSchema = z.object({
  key: keySchema,
  payload: jsonSchema.optional(),
  priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
  runAt: z.union([z.number().finite().min(0), z.date()]).optional(),
});
export const itemsSchema = z.array(newItemSchema).max(100_000, 'add at most 100,000 items per call');
export const claimSchema = z.object({
  owner: ownerSchema,
  limit: z.number().int().min(1).max(10_000).default(1),
  leaseMs: leaseMsSchema.default(30_000),
});
export const claimKeySchema = z.object({
  owner: ownerSchema,
  leaseMs: leaseMsSchema.default(30_000),
  payload: jsonSchema.optional(),
});
export const leaseSchema = z.looseObject({
  stream: streamSchema,
  key: keySchema,
  owner: ownerSchema,
  token: z.number().int().min(0),
});
export const failOptionsSchema = z.object({ retryInMs: z.number().int().min(0).max(365 * MAX_LEASE_MS).optional() }).default({});
export const listSchema = z.object({
  status: z.enum(CHECKPOINT_STATUSES).optional(),
  limit: z.number().int().min(1).max(10_000).default(100),
  cursor: z.string().nullable().optional(),
});
export const purgeSchema = z.object({
  status: z
    .union([z.enum(CHECKPOINT_STATUSES), z.array(z.enum(CHECKPOINT_STATUSES)).min(1)])
    .default(['done'])
    .refine((s) => !(Array.isArray(s) ? s : [s]).includes('processing'), {
      message: 'processing items are leased; release or complete them instead of purging',
    }),
  olderThanMs: z.number().int().min(0).default(0),
});


/** Whether add()'s items are all plainly well-formed (the common case): no schema walk per item. */
export function wellFormedItems(items: unknown): items is NewCheckpointItem[] {
  if (!Array.isArray(items) || items.length > 100_000) return false;
  for (const item of items as unknown[]) {
    if (!item || typeof item !== 'object') return false;
    const { key, payload, priority, runAt } = item as Record<string, unknown>;
    if (typeof key !== 'string' || key.length < 1 || key.length > 1000) return false;
    if (priority !== undefined && !(Number.isInteger(priority) && Math.abs(priority as number) <= 1_000_000)) return false;
    if (runAt !== undefined && !(runAt instanceof Date ? !Number.isNaN(runAt.getTime()) : typeof runAt === 'number' && Number.isFinite(runAt) && runAt >= 0)) {
      return false;
    }
    if (payload !== undefined && findJsonProblem(payload) !== null) return false;
  }
  return true;
}
