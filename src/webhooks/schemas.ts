import { z } from 'zod';
import { SESSION_MANAGER_EVENTS } from '../manager/events.js';
import { clockSchema } from '../validation.js';
import { WEBHOOK_DELIVERY_STATUSES } from '../storage/webhook-contract.js';

/** The input schemas of `multisession/webhooks`. */

/** An endpoint or delivery id. */
export const webhookIdSchema = z.string().min(1, 'give the id').max(200);

/** The Standard Webhooks retry schedule: the delay before each retry, after the first attempt. */
export const STANDARD_RETRY_SCHEDULE_MS: readonly number[] = Object.freeze([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);

/** Event types an endpoint may subscribe to: the manager's session events and `webhook.test`. */
export const WEBHOOK_EVENT_TYPES = [...SESSION_MANAGER_EVENTS.filter((e) => e !== 'manager.error'), 'webhook.test'] as const;

const eventName = z.string().regex(/^(\*|[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+)$/, 'must be an event type such as "session.state", or "*"');

const sessionFilterSchema = z.strictObject({
  ids: z.array(z.string().min(1).max(200)).max(1000).default([]),
  labels: z.record(z.string().min(1).max(200), z.string().max(200)).default({}),
});

const endpointFields = {
  url: z.string().min(1, 'give the URL that receives the webhooks').max(2000),
  description: z.string().max(1000).default(''),
  /** Event types, or `['*']` (the default) for every one. */
  events: z.array(eventName).min(1, 'name at least one event type, or "*"').max(100).default(['*']),
  /** `null` (the default): every session; else sessions whose id is in `ids` or that carry every label of `labels`. */
  sessions: sessionFilterSchema.nullable().default(null),
  enabled: z.boolean().default(true),
};

export const endpointInputSchema = z.strictObject({
  ...endpointFields,
  /** A secret of your own (`whsec_` + base64 of 24–64 bytes); by default one is generated. */
  secret: z.string().optional(),
});
export type WebhookEndpointInput = z.input<typeof endpointInputSchema>;

export const endpointPatchSchema = z.strictObject({
  url: endpointFields.url.optional(),
  description: z.string().max(1000).optional(),
  events: z.array(eventName).min(1, 'name at least one event type, or "*"').max(100).optional(),
  sessions: sessionFilterSchema.nullable().optional(),
  enabled: z.boolean().optional(),
});
export type WebhookEndpointUpdate = z.input<typeof endpointPatchSchema>;

export const rotateOptionsSchema = z
  .strictObject({
    /** How long the previous secret stays valid beside the new one. Default 24 h. */
    keepPreviousForMs: z.number().int().min(0).max(30 * 24 * 3_600_000).default(24 * 3_600_000),
    secret: z.string().optional(),
  })
  .default({ keepPreviousForMs: 24 * 3_600_000 });

export const deliveryQuerySchema = z
  .strictObject({
    status: z.enum(WEBHOOK_DELIVERY_STATUSES).optional(),
    since: z.number().int().min(0).optional(),
    until: z.number().int().min(0).optional(),
    limit: z.number().int().min(1).max(1000).default(100),
  })
  .default({ limit: 100 });

export const replayRangeSchema = z
  .strictObject({
    since: z.number().int().min(0),
    until: z.number().int().min(0).optional(),
    /** Only deliveries in this status (default: every finished one, `succeeded` and `failed`). */
    status: z.enum(['succeeded', 'failed']).optional(),
  })
  .refine((r) => r.until === undefined || r.until > r.since, { message: 'until must be after since', path: ['until'] });

export const sendSchema = z.strictObject({
  type: eventName.refine((t) => t !== '*', 'name the event type'),
  data: z.json(),
  sessionId: z.string().min(1).max(200).nullable().default(null),
  /** The event's id (deliveries of one event id to one endpoint are made once). Default: random. */
  eventId: z.string().min(1).max(200).optional(),
  at: z.number().int().min(0).optional(),
});

export const webhooksOptionsSchema = z.strictObject({
  storage: z.custom<object>((v) => !!v && typeof v === 'object', 'pass the storage driver that holds the endpoints (the manager\'s)'),
  manager: z.custom<object>((v) => !!v && typeof v === 'object' && typeof (v as { on?: unknown }).on === 'function', 'must be a SessionManager').optional(),
  /** The key that seals secrets and bodies at rest; default `MULTISESSION_SECRET_KEY` (required on a persistent store). */
  secretKey: z.string().optional(),
  clock: clockSchema.optional(),
  /** Allow loopback, private and link-local targets (tests, an intranet). Default false. */
  allowPrivateTargets: z.boolean().default(false),
  /** Delay before each retry after a failed attempt (the Standard Webhooks schedule by default); its length is the number of retries. */
  retryScheduleMs: z.array(z.number().int().min(0).max(7 * 24 * 3_600_000)).max(50).default([...STANDARD_RETRY_SCHEDULE_MS]),
  /** Each retry delay is moved at random by up to this fraction either way. Default 0.2. */
  jitter: z.number().min(0).max(1).default(0.2),
  /** `Retry-After` is honoured up to this long. Default 24 h. */
  maxRetryAfterMs: z.number().int().min(0).default(24 * 3_600_000),
  /** An endpoint failing every attempt for this long is disabled (`endpoint.disabled`). Default 5 days. */
  disableAfterMs: z.number().int().min(1).default(5 * 24 * 3_600_000),
  connectTimeoutMs: z.number().int().min(1).max(120_000).default(5_000),
  totalTimeoutMs: z.number().int().min(1).max(300_000).default(15_000),
  maxResponseBytes: z.number().int().min(0).max(10_000_000).default(64 * 1024),
  /** The lease of one attempt in the checkpoint; must exceed `totalTimeoutMs`. Default 60 s. */
  leaseMs: z.number().int().min(100).max(3_600_000).default(60_000),
  /** Attempts sent at once. Default 8. */
  concurrency: z.number().int().min(1).max(256).default(8),
  /** How often `start()` looks for due deliveries. Default 1 s. */
  pollMs: z.number().int().min(10).max(600_000).default(1000),
  /** The checkpoint stream of attempts. Default `multisession.webhooks`. */
  stream: z.string().min(1).max(200).default('multisession.webhooks'),
  /** This sender's name in leases (default: random). */
  owner: z.string().min(1).max(200).optional(),
  /** A source of randomness for jitter, in [0, 1). Default `Math.random`. */
  random: z.custom<() => number>((v) => typeof v === 'function', 'must be a function').optional(),
}).refine((o) => o.leaseMs > o.totalTimeoutMs, { message: 'leaseMs must exceed totalTimeoutMs (an attempt must end within its lease)', path: ['leaseMs'] });
export type WebhooksOptions = z.input<typeof webhooksOptionsSchema>;
