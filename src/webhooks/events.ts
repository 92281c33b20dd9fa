import { createHash } from 'node:crypto';
import type { SessionManagerEventName } from '../manager/events.js';
import type { JsonValue } from '../types.js';

/**
 * Manager events as webhook events: the payload `data` (plain JSON, never a credential, a QR or
 * pairing code, or an error's stack) and a content-derived event id, so every node of a cluster
 * that emits the same event gives it the same id (and the outbox makes one delivery of it).
 */

export interface WebhookEvent {
  id: string;
  type: string;
  /** Epoch ms. */
  at: number;
  sessionId: string | null;
  data: JsonValue;
}

/** JSON with sorted keys, so equal content hashes equally on every node. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

const digest = (text: string): string => createHash('sha256').update(text).digest('base64url').slice(0, 32);

/** The event id of `type` with `data`: `evt_` + a hash of both. */
export const eventIdOf = (type: string, data: JsonValue): string => `evt_${digest(`${type}\n${canonical(data)}`)}`;

/** The delivery id (`webhook-id`) of an event to an endpoint: the same on every retry and replay. */
export const deliveryIdOf = (endpointId: string, eventId: string): string => `msg_${digest(`${endpointId}\n${eventId}`)}`;

const plain = (value: unknown): JsonValue => JSON.parse(JSON.stringify(value ?? null)) as JsonValue;

/**
 * The part of an event that is the same on every node of a cluster, where the payload is not: a
 * session's creation by its `createdAt`, an update by the record's `version` (each node emits
 * these with its own `at`), a message by its platform id (delivered again, it keeps its id).
 */
function stableKey(name: SessionManagerEventName, payload: Record<string, unknown>, sessionId: string | null): JsonValue | null {
  const session = payload.session as { createdAt?: unknown; version?: unknown } | undefined;
  if (name === 'session.created' && typeof session?.createdAt === 'number') return { session: sessionId, createdAt: session.createdAt };
  if (name === 'session.updated' && typeof session?.version === 'number') return { session: sessionId, version: session.version };
  const messageId = (payload.message as { id?: unknown } | null | undefined)?.id;
  if (name === 'session.message' && typeof messageId === 'string') return { session: sessionId, direction: plain(payload.direction), message: messageId };
  return null;
}

/**
 * The webhook event of a manager event, or null for one that is not sent: `manager.error`, and a
 * `session.state` a node emits for a session another node runs (its reason `on node …`: the node
 * that runs it sends the transition itself).
 */
export function fromManagerEvent(name: SessionManagerEventName, payload: Record<string, unknown>): WebhookEvent | null {
  if (name === 'manager.error') return null;
  if (name === 'session.state' && typeof payload.reason === 'string' && payload.reason.startsWith('on node ')) return null;
  const sessionId = typeof payload.id === 'string' ? payload.id : null;
  let data: JsonValue;
  if (name === 'session.error') {
    const error = payload.error as Error | undefined;
    data = { id: sessionId, code: plain(payload.code), message: error?.message ?? '', at: plain(payload.at) };
  } else if (name === 'session.auth') {
    // The QR or pairing data logs the account in: it stays in the process.
    data = { id: sessionId, kind: plain(payload.kind), expiresAt: plain(payload.expiresAt), at: plain(payload.at) };
  } else {
    data = plain(payload);
  }
  const at = typeof payload.at === 'number' ? payload.at : Date.now();
  const key = stableKey(name, payload, sessionId);
  return { id: eventIdOf(name, key ?? data), type: name, at, sessionId, data };
}

/** The request body: `{ type, timestamp, data }` with the timestamp as an ISO 8601 string. */
export const bodyOf = (event: Pick<WebhookEvent, 'type' | 'at' | 'data'>): string =>
  JSON.stringify({ type: event.type, timestamp: new Date(event.at).toISOString(), data: event.data });
