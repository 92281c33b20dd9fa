/**
 * The `webhooks` capability of a storage driver: webhook endpoints and the delivery log (the
 * outbox of `multisession/webhooks`). Plain data in and out; the driver never sees a secret in the
 * clear (`secrets` is sealed by the caller) nor judges what a delivery means.
 *
 * Invariants (checked by the `webhooks` group of `storageConformanceSuite`):
 * - `createEndpoint` throws `ValidationError` for a taken id; records returned are copies.
 * - `updateEndpoint` is a compare-and-swap on `version` (+1 on success; `null` when the endpoint
 *   is missing or its version moved on).
 * - `deleteEndpoint` removes the endpoint's deliveries with it.
 * - `enqueue` inserts only deliveries whose id is new (the first of repeated ids; an id already
 *   stored is left as it is) and returns how many it inserted: enqueueing twice is harmless.
 * - `recordAttempt` is a compare-and-swap on `attempts`: of two writers that read the same
 *   delivery, one records.
 * - `due` returns `pending` deliveries whose `nextAttemptAt` is at or before `now`, earliest
 *   first; `listDeliveries` returns newest first (`createdAt`, then id).
 */
export interface WebhookStore {
  createEndpoint(record: WebhookEndpointRecord): Promise<WebhookEndpointRecord>;
  getEndpoint(id: string): Promise<WebhookEndpointRecord | null>;
  /** Every endpoint, ordered by id. */
  listEndpoints(): Promise<WebhookEndpointRecord[]>;
  updateEndpoint(id: string, patch: WebhookEndpointPatch, expectedVersion: number): Promise<WebhookEndpointRecord | null>;
  /** Deletes the endpoint and its deliveries; false when there was nothing to delete. */
  deleteEndpoint(id: string): Promise<boolean>;
  /** Inserts deliveries whose id is new; returns how many were inserted. */
  enqueue(deliveries: WebhookDeliveryRecord[]): Promise<number>;
  getDelivery(id: string): Promise<WebhookDeliveryRecord | null>;
  listDeliveries(query: WebhookDeliveryQuery): Promise<WebhookDeliveryRecord[]>;
  /** Pending deliveries due at `now`, earliest first, at most `limit`. */
  due(now: number, limit: number): Promise<WebhookDeliveryRecord[]>;
  /** Applies `patch` when the delivery's `attempts` is still `expectedAttempts`; else `null`. */
  recordAttempt(id: string, expectedAttempts: number, patch: WebhookDeliveryPatch): Promise<WebhookDeliveryRecord | null>;
}

export const WEBHOOK_DELIVERY_STATUSES = ['pending', 'succeeded', 'failed'] as const;
/** `pending`: waiting for its next attempt; `succeeded`: a 2xx answer; `failed`: given up (replay sends it again). */
export type WebhookDeliveryStatus = (typeof WEBHOOK_DELIVERY_STATUSES)[number];

/** Which sessions an endpoint hears about: an id in `ids`, or every label of `labels` (an empty filter: none). */
export interface WebhookSessionFilter {
  ids: string[];
  labels: Record<string, string>;
}

export interface WebhookEndpointRecord {
  id: string;
  url: string;
  description: string;
  /** Event types, or `['*']` for every one. */
  events: string[];
  /** `null`: every session. */
  sessions: WebhookSessionFilter | null;
  /** The signing secrets, sealed by the caller (opaque to the driver). */
  secrets: string;
  enabled: boolean;
  /** Why it was disabled (`gone`, `failing`, `manual`), null while enabled. */
  disabledReason: string | null;
  /** When the current run of failed attempts began; null after a success. */
  failingSince: number | null;
  createdAt: number;
  updatedAt: number;
  /** Starts at 1; +1 on every update. */
  version: number;
}

export type WebhookEndpointPatch = Partial<
  Pick<WebhookEndpointRecord, 'url' | 'description' | 'events' | 'sessions' | 'secrets' | 'enabled' | 'disabledReason' | 'failingSince'>
> & { updatedAt: number };

export interface WebhookDeliveryRecord {
  /** The `webhook-id`: the same on every attempt and replay. */
  id: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  sessionId: string | null;
  /** The request body, sealed by the caller (opaque to the driver). */
  body: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  nextAttemptAt: number;
  /** The HTTP status of the last attempt, null when none answered. */
  responseStatus: number | null;
  /** Why the last attempt failed (never a secret), null after a success. */
  lastError: string | null;
  latencyMs: number | null;
  createdAt: number;
  updatedAt: number;
}

export type WebhookDeliveryPatch = Partial<
  Pick<WebhookDeliveryRecord, 'status' | 'attempts' | 'nextAttemptAt' | 'responseStatus' | 'lastError' | 'latencyMs'>
> & { updatedAt: number };

export interface WebhookDeliveryQuery {
  endpointId?: string;
  status?: WebhookDeliveryStatus;
  /** Only deliveries created at or after this time (epoch ms). */
  since?: number;
  /** Only deliveries created before this time (epoch ms). */
  until?: number;
  /** Default 100. */
  limit?: number;
}
