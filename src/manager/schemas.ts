import { z } from 'zod';
import { unitsOptionsSchema } from '../units/schemas.js';
import type { StorageDriver } from '../storage/contract.js';
import type { JsonValue, Logger } from '../types.js';
import { clockSchema, parseWith } from '../validation.js';
import { ValidationError } from '../errors.js';
import { findJsonProblem, findProtoKey } from '../json.js';
import type { Adapter } from '../adapters/contract.js';
import { AUTH_KINDS, DESIRED_STATES, HEALTH_STATUSES, SESSION_STATES } from '../lifecycle.js';

/** Session ids: 1-64 of `[A-Za-z0-9_-]`. */
export const sessionIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of A-Z, a-z, 0-9, _ and -');

const labelsSchema = z.record(
  z.string().regex(/^[A-Za-z0-9_.\-/]{1,63}$/, 'label keys are 1-63 of A-Z, a-z, 0-9, _ . - /'),
  z.string().max(256, 'label values are at most 256 characters'),
);

/**
 * Any JSON value, checked by one bounded walk (zod's recursive `z.json()` overflowed the stack on
 * a value nested a few thousand levels deep: a RangeError instead of a ValidationError).
 */
const jsonSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    const problem = findJsonProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
  })
  .meta({ description: 'Any JSON value' }) as unknown as z.ZodType<JsonValue>;

/**
 * Refuses a key named `__proto__` anywhere in a call's input (labels, metadata, config,
 * credentials …): zod and plain copies drop it silently, so it would be accepted and lost.
 */
export function refuseProtoKeys(input: unknown, what: string, path: string[] = []): void {
  const issue = findProtoKey(input, path);
  if (issue) throw new ValidationError(what, [issue]);
}

/** What `manager.create()` takes. `credentials` and `config` are checked by the adapter's schemas. */
export const sessionInputSchema = z.strictObject({
  id: sessionIdSchema,
  platform: z.string().min(1, 'name a registered adapter'),
  credentials: z.unknown().optional(),
  config: z.unknown().optional(),
  labels: labelsSchema.default({}),
  metadata: jsonSchema.default(null),
  priority: z.number().int().min(1).max(10).default(5),
  capacity: z.number().int().min(0).nullable().default(null),
  autoStart: z.boolean().default(false),
  idleTimeoutMs: z.number().int().positive().nullable().default(null),
  /** Let this session use credentials another session already uses (off by default). */
  allowSharedCredentials: z.boolean().default(false),
});
export type SessionInput = z.input<typeof sessionInputSchema>;
export type ParsedSessionInput = z.output<typeof sessionInputSchema>;

const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
const LABEL_KEY = /^[A-Za-z0-9_.\-/]{1,63}$/;
const INPUT_KEYS = new Set(Object.keys(sessionInputSchema.shape));
const isInt = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): boolean => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;

/** Plain, well-formed labels, copied (the schema's output is a copy too); null when the schema must say what is wrong. */
function plainLabels(labels: unknown): Record<string, string> | null {
  if (labels === undefined) return {};
  if (!labels || typeof labels !== 'object' || Object.getPrototypeOf(labels) !== Object.prototype) return null;
  const out: Record<string, string> = {};
  for (const key in labels) {
    const value = (labels as Record<string, unknown>)[key];
    if (!LABEL_KEY.test(key) || typeof value !== 'string' || value.length > 256) return null;
    out[key] = value;
  }
  return out;
}

/**
 * `manager.create()`'s input: a plain check of well-formed input first (the zod walk allocated
 * about 2.7 KB per create, a third of the garbage of create+start), the schema for the rest so
 * its errors name the field.
 */
export function parseSessionInput(input: unknown): ParsedSessionInput {
  refuseProtoKeys(input, 'session input');
  const i = input as Record<string, unknown> | null;
  if (i && typeof i === 'object' && Object.getPrototypeOf(i) === Object.prototype) {
    let known = true;
    for (const key in i) if (!INPUT_KEYS.has(key)) known = false;
    const labels = known ? plainLabels(i.labels) : null;
    if (
      labels &&
      typeof i.id === 'string' && SESSION_ID.test(i.id) &&
      typeof i.platform === 'string' && i.platform.length > 0 &&
      (i.metadata === undefined || findJsonProblem(i.metadata) === null) &&
      (i.priority === undefined || isInt(i.priority, 1, 10)) &&
      (i.capacity === undefined || i.capacity === null || isInt(i.capacity, 0)) &&
      (i.autoStart === undefined || typeof i.autoStart === 'boolean') &&
      (i.idleTimeoutMs === undefined || i.idleTimeoutMs === null || isInt(i.idleTimeoutMs, 1)) &&
      (i.allowSharedCredentials === undefined || typeof i.allowSharedCredentials === 'boolean')
    ) {
      return {
        id: i.id,
        platform: i.platform,
        credentials: i.credentials,
        config: i.config,
        labels,
        metadata: (i.metadata ?? null) as JsonValue,
        priority: (i.priority as number | undefined) ?? 5,
        capacity: (i.capacity as number | null | undefined) ?? null,
        autoStart: (i.autoStart as boolean | undefined) ?? false,
        idleTimeoutMs: (i.idleTimeoutMs as number | null | undefined) ?? null,
        allowSharedCredentials: (i.allowSharedCredentials as boolean | undefined) ?? false,
      };
    }
  }
  return parseWith(sessionInputSchema, input, 'session input');
}

/** What `manager.update()` takes: every field optional; `platform` and `id` cannot change. */
export const sessionPatchSchema = z.strictObject({
  credentials: z.unknown().optional(),
  config: z.unknown().optional(),
  labels: labelsSchema.optional(),
  metadata: jsonSchema.optional(),
  priority: z.number().int().min(1).max(10).optional(),
  capacity: z.number().int().min(0).nullable().optional(),
  autoStart: z.boolean().optional(),
  idleTimeoutMs: z.number().int().positive().nullable().optional(),
  allowSharedCredentials: z.boolean().optional(),
});
export type SessionUpdate = z.input<typeof sessionPatchSchema>;

const sessionFilterShape = {
  state: z.union([z.enum(SESSION_STATES), z.array(z.enum(SESSION_STATES))]).optional(),
  desiredState: z.enum(DESIRED_STATES).optional(),
  platform: z.string().optional(),
  health: z.union([z.enum(HEALTH_STATUSES), z.array(z.enum(HEALTH_STATUSES))]).optional(),
  /** Every listed label must match. */
  labels: z.record(z.string(), z.string()).optional(),
  /** Only these sessions (e.g. the sessions an API key may see). */
  ids: z.array(sessionIdSchema).max(100_000).optional(),
};
export const sessionFilterSchema = z.strictObject(sessionFilterShape).default({});
export type SessionFilter = z.input<typeof sessionFilterSchema>;

/** What `manager.list()` takes: the filter, and a page size and cursor to read it a page at a time. */
export const sessionListQuerySchema = z
  .strictObject({
    ...sessionFilterShape,
    /** Most sessions on the page; without it, every matching session. */
    limit: z.number().int().min(1).max(10_000).optional(),
    /** The `nextCursor` of the previous page (the filter must be the same). */
    cursor: z.string().min(1).max(400).optional(),
  })
  .default({});
export type SessionListQuery = z.input<typeof sessionListQuerySchema>;

export const authInputSchema = z.strictObject({
  kind: z.enum(AUTH_KINDS.filter((k) => k !== 'qr') as ['code', 'password', 'pairing-code']),
  value: z.string().min(1, 'must not be empty').max(4096),
});

export const logsQuerySchema = z
  .strictObject({
    limit: z.number().int().positive().max(100_000).default(100),
    level: z.enum(['debug', 'info', 'warn', 'error']).optional(),
  })
  .default({ limit: 100 });

export const auditQuerySchema = z
  .strictObject({
    sessionId: sessionIdSchema.optional(),
    action: z.string().min(1).max(64).optional(),
    since: z.number().int().min(0).optional(),
    limit: z.number().int().positive().max(10_000).default(100),
  })
  .default({ limit: 100 });

export const waitOptionsSchema = z
  .strictObject({
    timeoutMs: z.number().int().positive().optional(),
    signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'must be an AbortSignal').optional(),
  })
  .default({});

export const controlOptionsSchema = z
  .strictObject({
    /** Who asked: recorded in the audit log. */
    actor: z.string().max(256).optional(),
    /** Free-text reason, carried in the state event. */
    reason: z.string().max(256).optional(),
    /**
     * Stops waiting: the call rejects with the signal's reason, while the operation itself (the
     * start, the stop) goes on; `waitFor` or the state events tell how it ends.
     */
    signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'must be an AbortSignal').optional(),
  })
  .default({});
export type ControlOptions = z.input<typeof controlOptionsSchema>;
export type ParsedControlOptions = z.output<typeof controlOptionsSchema>;

const NO_OPTIONS: ParsedControlOptions = Object.freeze({});

/** Control options, checked (the common call without options skips the schema). */
export function parseControlOptions(options: unknown): ParsedControlOptions {
  if (options === undefined || (options !== null && typeof options === 'object' && Object.getPrototypeOf(options) === Object.prototype && Object.keys(options).length === 0)) {
    return NO_OPTIONS;
  }
  return parseWith(controlOptionsSchema, options, 'options');
}

export const deleteOptionsSchema = controlOptionsSchema.unwrap().extend({
  /** Delete even when running (stops it first). Without it a running session refuses. */
  force: z.boolean().default(false),
}).default({ force: false });
export type DeleteOptions = z.input<typeof deleteOptionsSchema>;

const loggerSchema = z.custom<Logger>(
  (v) => !!v && ['debug', 'info', 'warn', 'error'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
  'must be pino-compatible: debug, info, warn and error methods',
);
const storageSchema = z.custom<StorageDriver>(
  (v) => !!v && typeof (v as StorageDriver).init === 'function' && typeof (v as StorageDriver).sessions?.create === 'function',
  'must be a StorageDriver (memoryStorage(), sqliteStorage(…), postgresStorage(…))',
);
const adapterSchema = z.custom<Adapter>(
  (v) => !!v && typeof (v as Adapter).name === 'string' && typeof (v as Adapter).connect === 'function',
  'must be made with defineAdapter()',
);

/** `new SessionManager(options)`. */
const nodeIdSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 characters of A-Z, a-z, 0-9, _, . or -');

/** `drain()`: this node, or the node `nodeId`. */
export const drainOptionsSchema = z.strictObject({ nodeId: nodeIdSchema.optional() });

export const managerOptionsSchema = z.strictObject({
  storage: storageSchema.optional(),
  adapters: z.array(adapterSchema).default([]),
  /** Most sessions that may exist at once; creating one more raises CapacityError. */
  maxSessions: z.number().int().positive().default(10_000),
  health: z
    .strictObject({
      intervalMs: z.number().int().positive().default(30_000),
      timeoutMs: z.number().int().positive().default(10_000),
      unhealthyThreshold: z.number().int().positive().default(3),
      /** Fraction of the interval by which each check is randomly spread (0 – 1). */
      jitter: z.number().min(0).max(1).default(0.1),
    })
    .prefault({}),
  restart: z
    .strictObject({
      retries: z.number().int().min(0).default(5),
      minDelayMs: z.number().int().min(0).default(1_000),
      maxDelayMs: z.number().int().min(0).default(60_000),
      factor: z.number().min(1).default(2),
      /**
       * The retries are a budget for consecutive failures, starts and lives alike: it is given back
       * only once a session has stayed up and healthy this long, so a session that comes up and
       * fails again and again backs off longer each time and ends `failed`.
       */
      resetAfterMs: z.number().int().min(0).default(60_000),
    })
    .refine((r) => r.maxDelayMs >= r.minDelayMs, { message: 'maxDelayMs must be at least minDelayMs', path: ['maxDelayMs'] })
    .prefault({}),
  /** How long `ctx.auth.request()` and a QR scan may wait. */
  authTimeoutMs: z.number().int().positive().default(120_000),
  /** Stop a session after this long without activity (null: never). */
  idleTimeoutMs: z.number().int().positive().nullable().default(null),
  /** How long an adapter's start() may take before it counts as failed. */
  startTimeoutMs: z.number().int().positive().default(60_000),
  /** How long an adapter's stop() may take before it is abandoned. */
  stopTimeoutMs: z.number().int().positive().default(10_000),
  restore: z
    .strictObject({
      concurrency: z.number().int().positive().default(16),
    })
    .prefault({}),
  /**
   * The write-behind of runtime status, transitions and counters: a batch is written on the next
   * turn of the event loop, and at the latest `flushMs` after its first change (by the manager's
   * clock), even while a burst of calls keeps the event loop from turning.
   */
  persist: z
    .strictObject({
      flushMs: z.number().int().min(1).max(60_000).default(250),
    })
    .prefault({}),
  /**
   * This manager as a node of a cluster (a store with the `cluster` capability: SQLite, PostgreSQL):
   * each session runs only on the node holding its ownership lease. See docs/cluster.md.
   */
  cluster: z
    .strictObject({
      /** This node's id (default: random per manager). Two live processes cannot share one. */
      nodeId: nodeIdSchema.optional(),
      /** A lease lasts this long after its last renewal (by the database's clock); renewed every third of it. */
      leaseTtlMs: z.number().int().min(1_000, 'must be at least 1000 (1 s)').max(600_000).default(15_000),
      /** Most sessions this node runs at once (default: no limit of its own). */
      maxRunning: z.number().int().min(1).nullable().default(null),
      /** How often the node reads the store's change feed (other nodes' creates, updates, deletes, states). */
      changePollMs: z.number().int().min(50).max(60_000).default(500),
      /** How long a call forwarded to the node that runs the session (send, status …) may wait for its answer. */
      commandTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
      /**
       * Other nodes emit this node's `session.message` events too (sealed with the secret key on
       * their way through the store). Turn off when no node listens to other nodes' messages: each
       * message is one more row written.
       */
      relayMessages: z.boolean().default(true),
    })
    .prefault({}),
  /** The audit log: entries older than `retentionMs` are deleted at `open()` and every hour after; null keeps them all. */
  audit: z
    .strictObject({
      retentionMs: z.number().int().positive().nullable().default(null),
    })
    .prefault({}),
  /** Work units (`manager.units`): failover after `failoverAfterMs` unhealthy, worker groups of at most `groupSize`. */
  units: unitsOptionsSchema,
  /** Lines kept per session for `manager.logs(id)`. */
  logBufferSize: z.number().int().min(0).default(200),
  /** Transitions kept per session on the snapshot and in storage. */
  historySize: z.number().int().min(1).max(1000).default(20),
  /** Secret key (32 bytes, base64 or hex) for credentials and auth state at rest; else MULTISESSION_SECRET_KEY. */
  secretKey: z.string().optional(),
  /**
   * Encrypt context data (`ctx.kv`, `manager.kv(id)`) at rest with the secret key, as auth state
   * always is. Turned off, new context values are stored as they are; sealed ones still open.
   */
  encryptContextData: z.boolean().default(true),
  logger: loggerSchema.optional(),
  clock: clockSchema.optional(),
});
export type SessionManagerOptions = z.input<typeof managerOptionsSchema>;
export type ResolvedManagerOptions = z.output<typeof managerOptionsSchema>;
