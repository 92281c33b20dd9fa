import { z } from 'zod';
import { parseWith } from '../validation.js';
import {
  WEBHOOK_DELIVERY_STATUSES,
  type WebhookDeliveryPatch,
  type WebhookDeliveryQuery,
  type WebhookDeliveryRecord,
  type WebhookEndpointPatch,
  type WebhookEndpointRecord,
} from './webhook-contract.js';

/**
 * Input checks of the `webhooks` capability, shared by every bundled driver: a malformed record
 * is refused with a `ValidationError` (naming the field) before anything is written.
 */

const id = z.string().min(1).max(200);
const millis = z.number().int().min(0);
const sessionFilter = z.strictObject({ ids: z.array(z.string().min(1).max(200)).max(1000), labels: z.record(z.string(), z.string()) });

const endpointFields = {
  url: z.string().min(1).max(2000),
  description: z.string().max(1000),
  events: z.array(z.string().min(1).max(200)).min(1).max(100),
  sessions: sessionFilter.nullable(),
  secrets: z.string().min(1),
  enabled: z.boolean(),
  disabledReason: z.string().max(200).nullable(),
  failingSince: millis.nullable(),
};

const endpointSchema = z.strictObject({ id, ...endpointFields, createdAt: millis, updatedAt: millis, version: z.number().int().min(1) });
const endpointPatchSchema = z.strictObject({ ...z.object(endpointFields).partial().shape, updatedAt: millis });

const deliveryFields = {
  status: z.enum(WEBHOOK_DELIVERY_STATUSES),
  attempts: z.number().int().min(0),
  nextAttemptAt: millis,
  responseStatus: z.number().int().min(100).max(599).nullable(),
  lastError: z.string().max(2000).nullable(),
  latencyMs: z.number().int().min(0).nullable(),
};
const deliverySchema = z.strictObject({
  id,
  endpointId: id,
  eventId: id,
  eventType: z.string().min(1).max(200),
  sessionId: id.nullable(),
  body: z.string(),
  ...deliveryFields,
  createdAt: millis,
  updatedAt: millis,
});
const deliveryPatchSchema = z.strictObject({ ...z.object(deliveryFields).partial().shape, updatedAt: millis });
const querySchema = z.strictObject({
  endpointId: id.optional(),
  status: z.enum(WEBHOOK_DELIVERY_STATUSES).optional(),
  since: millis.optional(),
  until: millis.optional(),
  limit: z.number().int().min(1).max(10_000).optional(),
});

export const checkWebhookId = (v: string): string => parseWith(id, v, 'webhook id');
export const checkEndpoint = (v: WebhookEndpointRecord): WebhookEndpointRecord => parseWith(endpointSchema, v, 'webhook endpoint record');
export const checkEndpointPatch = (v: WebhookEndpointPatch): WebhookEndpointPatch => parseWith(endpointPatchSchema, v, 'webhook endpoint patch');
export const checkDeliveries = (v: WebhookDeliveryRecord[]): WebhookDeliveryRecord[] =>
  parseWith(z.array(deliverySchema).max(10_000), v, 'webhook deliveries');
export const checkDeliveryPatch = (v: WebhookDeliveryPatch): WebhookDeliveryPatch => parseWith(deliveryPatchSchema, v, 'webhook delivery patch');
export const checkDeliveryQuery = (v: WebhookDeliveryQuery | undefined): WebhookDeliveryQuery => parseWith(querySchema, v ?? {}, 'webhook delivery query');
export const checkCount = (v: number, what: string): number => parseWith(z.number().int().min(0), v, what);
export const checkTime = (v: number, what: string): number => parseWith(millis, v, what);

/** Copies a record (drivers never hand out what they keep). */
export const copyEndpoint = (r: WebhookEndpointRecord): WebhookEndpointRecord => ({
  ...r,
  events: [...r.events],
  sessions: r.sessions ? { ids: [...r.sessions.ids], labels: { ...r.sessions.labels } } : null,
});
