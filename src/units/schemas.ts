import { z } from 'zod';
import { findJsonProblem } from '../json.js';
import type { JsonValue } from '../types.js';
import { unitIdSchema, unitIdsSchema } from './selector.js';

/** The inputs of `manager.units`, checked before anything is read or written. */

const sessionId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a session id (1-64 of A-Z, a-z, 0-9, _ and -)');
const json = z.custom<JsonValue>((v) => v !== undefined && findJsonProblem(v) === null, 'must be a JSON value');
const actor = z.string().max(256).optional();
const reason = z.string().min(1).max(256).optional();

export const unitInputSchema = z.strictObject({
  id: unitIdSchema,
  /** What the unit is (`pair`, `chat` …). Default `unit`. */
  kind: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1-64 of A-Z, a-z, 0-9, _ . : -').default('unit'),
  data: json.default(null),
  /** A session to put it on at once (checked like `assign` to a named session). */
  sessionId: sessionId.nullable().default(null),
});
export type UnitInput = z.input<typeof unitInputSchema>;

export const addUnitsSchema = z
  .array(unitInputSchema)
  .min(1, 'give at least one unit')
  .max(100_000, 'add at most 100,000 units per call')
  .superRefine((units, ctx) => {
    const seen = new Set<string>();
    units.forEach((u, i) => {
      if (seen.has(u.id)) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `unit "${u.id}" is listed twice` });
      seen.add(u.id);
    });
  });

export const actorOptionsSchema = z.strictObject({ actor });
export type UnitActorOptions = z.input<typeof actorOptionsSchema>;

export const unitIdsInput = unitIdsSchema;

export const unitListSchema = z.strictObject({
  sessionId: sessionId.optional(),
  unassigned: z.boolean().optional(),
  kind: z.string().min(1).max(64).optional(),
  limit: z.number().int().min(1).max(10_000).optional(),
  cursor: z.string().max(400).optional(),
});
export type UnitListQuery = z.input<typeof unitListSchema>;

export const pickQuerySchema = z.strictObject({
  platform: z.string().min(1).optional(),
  labels: z.record(z.string(), z.string()).optional(),
});
export type PickQuery = z.input<typeof pickQuerySchema>;

export const assignOptionsSchema = z.strictObject({
  /** A session id; `null` unassigns; absent: the best session for each unit. */
  to: sessionId.nullable().optional(),
  actor,
  reason,
});
export type AssignOptions = z.input<typeof assignOptionsSchema>;

export const reassignOptionsSchema = z.strictObject({
  /** Check everything and return the plan; change nothing. */
  dryRun: z.boolean().default(false),
  reason,
  actor,
});
export type ReassignOptions = z.input<typeof reassignOptionsSchema>;

export const targetSchema = sessionId;

/** `units` of `new SessionManager(options)`. */
export const unitsOptionsSchema = z
  .strictObject({
    /** A session unhealthy this long has its units moved to other sessions (ms). Default 5 minutes. */
    failoverAfterMs: z.number().int().min(1).default(300_000),
    /** The most units of one worker group (`ctx.units.groups`). Default 30. */
    groupSize: z.number().int().min(1).max(10_000).default(30),
  })
  .prefault({});
