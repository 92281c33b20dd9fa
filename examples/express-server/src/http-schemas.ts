import { z } from 'zod';
import { AUTH_KINDS, DESIRED_STATES, HEALTH_STATUSES, SESSION_STATES, sessionIdSchema } from 'multisession';

/**
 * The HTTP layer's own schemas (query strings, small bodies, responses). They validate requests
 * and, together with the library's input schemas, generate the OpenAPI document.
 */

/** `a,b` or repeated `?x=a&x=b` → string[]. */
const csv = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => {
    const list = Array.isArray(v) ? v : [v];
    return list.flatMap((s) => (typeof s === 'string' ? s.split(',') : [s])).filter((s) => s !== '');
  }, z.array(item));

const labelPair = z
  .string()
  .regex(/^[^=:]+[=:].*$/, 'write labels as key=value (or key:value)')
  // `__proto__` is not a key an object keeps: the filter was lost and every session listed.
  .refine((pair) => !/^__proto__[=:]/.test(pair), 'a label named __proto__ is not allowed');

/** Page size of `GET /sessions`: the default, and the most one page may hold. */
export const LIST_LIMIT_DEFAULT = 100;
export const LIST_LIMIT_MAX = 1_000;
const LIMIT_MESSAGE = `must be a whole number from 1 to ${LIST_LIMIT_MAX}`;
/** What a client did wrong when a cursor is refused (an admin's or a scoped key's). */
export const CURSOR_MESSAGE = 'is not a nextCursor of this endpoint for this key; pass it unchanged';

export const listQuerySchema = z.strictObject({
  state: csv(z.enum(SESSION_STATES)).optional().describe('Comma-separated states'),
  health: csv(z.enum(HEALTH_STATUSES)).optional().describe('Comma-separated health values'),
  desiredState: z.enum(DESIRED_STATES).optional(),
  platform: z.string().min(1).optional(),
  label: csv(labelPair).optional().describe('key=value; repeat or comma-separate for several (all must match)'),
  limit: z.coerce
    .number({ error: LIMIT_MESSAGE })
    .int({ error: LIMIT_MESSAGE })
    .min(1, { error: LIMIT_MESSAGE })
    .max(LIST_LIMIT_MAX, { error: LIMIT_MESSAGE })
    .default(LIST_LIMIT_DEFAULT)
    .describe(`Most sessions on the page (1-${LIST_LIMIT_MAX.toLocaleString('en')}; default ${LIST_LIMIT_DEFAULT})`),
  cursor: z
    .string()
    .min(1, { error: CURSOR_MESSAGE })
    .max(400, { error: CURSOR_MESSAGE })
    .optional()
    .describe('The nextCursor of the previous page, unchanged (with the same key and filters); omit it for the first page'),
});

const boolText = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

export const deleteQuerySchema = z.strictObject({
  force: boolText.optional().describe('Delete even a running session (it is stopped first)'),
});

export const controlBodySchema = z
  .strictObject({
    reason: z.string().max(256).optional().describe('Free text carried in the state event'),
  })
  .describe('Optional body of start, stop, restart, logout and clear');

export const logsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().positive().max(10_000).optional(),
  level: z.enum(['debug', 'info', 'warn', 'error']).optional(),
});

export const auditQuerySchema = z.strictObject({
  sessionId: sessionIdSchema.optional(),
  action: z.string().min(1).max(64).optional(),
  since: z.coerce.number().int().min(0).optional().describe('Epoch milliseconds'),
  limit: z.coerce.number().int().positive().max(10_000).optional(),
});

export const eventsQuerySchema = z.strictObject({
  session: csv(sessionIdSchema).optional().describe('Only events of these sessions (comma-separated)'),
  key: z.string().optional().describe('API key (EventSource cannot send headers); accepted on this endpoint only'),
});

export const streamNameSchema = z.string().min(1, 'name a stream').max(200, 'stream names are at most 200 characters');

/** A cluster node id, as the library accepts it. */
export const nodeIdSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 characters of A-Z, a-z, 0-9, _, . or -');

export const createKeySchema = z.strictObject({
  name: z.string().min(1).max(100),
  role: z.enum(['admin', 'session']).default('session'),
  sessions: z.array(sessionIdSchema).max(1000).optional().describe('Sessions a session-scoped key may act on'),
}).refine((k) => k.role === 'admin' || (k.sessions?.length ?? 0) > 0, {
  path: ['sessions'],
  message: 'a session-scoped key needs at least one session id',
});

export const messageBodySchema = z.json().describe('A platform action, passed to the adapter\'s send()');

// ----- responses (documentation only) -----

const json = z.json();
const authInfo = z.object({ kind: z.enum(AUTH_KINDS), data: json, expiresAt: z.number().nullable() }).nullable();
const sessionError = z.object({ code: z.string(), message: z.string(), at: z.number() }).nullable();

export const snapshotSchema = z.object({
  id: z.string(),
  platform: z.string(),
  config: z.record(z.string(), json),
  hasCredentials: z.boolean(),
  state: z.enum(SESSION_STATES),
  desiredState: z.enum(DESIRED_STATES),
  auth: authInfo,
  health: z.enum(HEALTH_STATUSES),
  labels: z.record(z.string(), z.string()),
  metadata: json,
  priority: z.number().int(),
  capacity: z.number().int().nullable(),
  autoStart: z.boolean(),
  idleTimeoutMs: z.number().int().nullable(),
  allowSharedCredentials: z.boolean(),
  createdAt: z.number(),
  updatedAt: z.number(),
  lastActivityAt: z.number().nullable(),
  lastError: sessionError,
  transitions: z.array(z.object({ from: z.enum(SESSION_STATES), to: z.enum(SESSION_STATES), reason: z.string(), at: z.number() })),
  owner: z
    .object({ nodeId: z.string(), since: z.number() })
    .nullable()
    .describe('The cluster node that runs the session (null: no node runs it)'),
  version: z.number().int(),
});

export const sessionPageSchema = z
  .object({
    items: z.array(snapshotSchema).describe('In id order'),
    nextCursor: z.string().nullable().describe('Pass as ?cursor= for the next page; null after the last page'),
  })
  .describe('A page of sessions');

export const statusSchema = z.object({
  id: z.string(),
  platform: z.string(),
  state: z.enum(SESSION_STATES),
  desiredState: z.enum(DESIRED_STATES),
  health: z.enum(HEALTH_STATUSES),
  auth: authInfo,
  lastError: sessionError,
  lastActivityAt: z.number().nullable(),
  uptimeMs: z.number().nullable(),
  restarts: z.number().int(),
});

export const statisticsSchema = z.object({
  id: z.string(),
  starts: z.number().int(),
  restarts: z.number().int(),
  failures: z.number().int(),
  messagesIn: z.number().int(),
  messagesOut: z.number().int(),
  errors: z.number().int(),
  custom: z.record(z.string(), z.number()),
});

export const trafficSchema = z
  .object({
    id: z.string(),
    bucketMs: z.literal(60_000),
    buckets: z.array(z.object({ at: z.number().describe('Start of the minute, epoch ms'), in: z.number().int(), out: z.number().int() })),
  })
  .describe('Messages in and out per minute, the last hour, oldest first (ends with the current minute)');

export const logEntrySchema = z.object({
  at: z.number(),
  level: z.enum(['debug', 'info', 'warn', 'error']),
  msg: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
});

export const auditEntrySchema = z.object({
  id: z.number().int(),
  at: z.number(),
  sessionId: z.string().nullable(),
  action: z.string(),
  actor: z.string().nullable(),
  details: z.record(z.string(), json),
});

export const qrSchema = z.object({
  id: z.string(),
  data: z.string().describe('The QR payload the adapter asked to show'),
  expiresAt: z.number().nullable(),
  dataUrl: z.string().describe('data:image/png;base64,…'),
});

export const keyInfoSchema = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(['admin', 'session']),
  sessions: z.array(z.string()).nullable(),
  createdAt: z.number(),
});

export const createdKeySchema = keyInfoSchema.extend({ key: z.string().describe('The plain key: shown once, never again') });

export const adapterInfoSchema = z.object({
  name: z.string(),
  description: z.string().nullable(),
  credentialsSchema: z.record(z.string(), z.unknown()),
  configSchema: z.record(z.string(), z.unknown()),
});

export const healthSchema = z.object({
  status: z.enum(['ok', 'degraded']),
  uptimeSeconds: z.number(),
  storage: z.object({ kind: z.string(), ok: z.boolean(), latencyMs: z.number().nullable(), error: z.string().optional() }),
  sessions: z.number().int(),
});

export const sendResultSchema = z.object({ result: json.nullable() });

export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  instance: z.string().optional(),
  code: z.string().describe('The library error code (VALIDATION, SESSION_NOT_FOUND, …) or an HTTP-layer code'),
  errors: z.array(z.object({ path: z.string(), pointer: z.string(), message: z.string() })).optional(),
  context: z.record(z.string(), z.unknown()).optional(),
});

export const checkpointStatsSchema = z.object({
  stream: z.string(),
  pending: z.number().int(),
  processing: z.number().int(),
  done: z.number().int(),
  failed: z.number().int(),
  dead: z.number().int(),
  total: z.number().int(),
  oldestPendingAgeMs: z.number().nullable(),
}).describe('Item counts by status');

export const nodeSchema = z
  .object({
    nodeId: z.string(),
    host: z.string(),
    pid: z.number().int(),
    startedAt: z.number(),
    lastSeenAt: z.number().describe("Its last heartbeat (the database's clock)"),
    live: z.boolean().describe('Its heartbeat is younger than the lease TTL'),
    running: z.number().int().describe('Sessions it holds leases for'),
    maxRunning: z.number().int().nullable(),
    draining: z.boolean().describe('It runs no new sessions (drained or closing)'),
  })
  .describe('A manager process sharing the store');

export const nodeListSchema = z
  .object({
    self: z.string().describe('The node id of the server that answered'),
    nodes: z.array(nodeSchema),
  })
  .describe('The cluster nodes');

export const drainResultSchema = z
  .object({
    nodeId: z.string(),
    node: nodeSchema.nullable().describe('The node after the drain (null if it left the store meanwhile)'),
  })
  .describe('A drained node');
