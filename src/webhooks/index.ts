/**
 * `multisession/webhooks`: signed (Standard Webhooks 1.0), durable webhooks of the manager's
 * events, with a delivery log, replay, and `verify()` for receivers.
 */
export { createWebhooks, Webhooks, type CreateWebhooksOptions, type WebhookDelivery, type WebhookEndpoint, type WebhooksEvents } from './webhooks.js';
export { generateWebhookSecret, sign, verify, type SignInput, type VerifyOptions } from './signing.js';
export { isPrivateAddress } from './targets.js';
export {
  STANDARD_RETRY_SCHEDULE_MS,
  WEBHOOK_EVENT_TYPES,
  endpointInputSchema,
  endpointPatchSchema,
  type WebhookEndpointInput,
  type WebhookEndpointUpdate,
  type WebhooksOptions,
} from './schemas.js';
export {
  WEBHOOK_DELIVERY_STATUSES,
  type WebhookDeliveryStatus,
  type WebhookSessionFilter,
  type WebhookStore,
  type WebhookEndpointRecord,
  type WebhookDeliveryRecord,
  type WebhookEndpointPatch,
  type WebhookDeliveryPatch,
  type WebhookDeliveryQuery,
} from '../storage/webhook-contract.js';
export { WebhookNotFoundError, WebhookVerificationError } from '../errors.js';
