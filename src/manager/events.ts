import type { AuthKind, HealthStatus, SessionState } from '../lifecycle.js';
import type { SessionSnapshot } from './snapshot.js';
import type { JsonValue } from '../types.js';

/** The manager's typed events. Payloads never carry credentials. */
export interface SessionManagerEvents {
  'session.created': (event: { id: string; session: SessionSnapshot; at: number }) => void;
  'session.updated': (event: { id: string; session: SessionSnapshot; changed: string[]; at: number }) => void;
  'session.deleted': (event: { id: string; at: number }) => void;
  'session.state': (event: { id: string; from: SessionState; to: SessionState; reason: string; at: number }) => void;
  'session.auth': (event: { id: string; kind: AuthKind; data: JsonValue; expiresAt: number | null; at: number }) => void;
  'session.ready': (event: { id: string; at: number }) => void;
  'session.health': (event: { id: string; health: HealthStatus; previous: HealthStatus; detail?: string; failures: number; at: number }) => void;
  'session.message': (event: { id: string; direction: 'in' | 'out'; message: JsonValue; at: number }) => void;
  'session.error': (event: { id: string; error: Error; code: string; at: number }) => void;
  'manager.error': (event: { error: Error; at: number }) => void;
}

export type SessionManagerEventName = keyof SessionManagerEvents;
export type SessionManagerEventPayload<E extends SessionManagerEventName> = Parameters<SessionManagerEvents[E]>[0];

/** Every event name, for code that subscribes to all of them (an SSE stream, an audit tap). */
export const SESSION_MANAGER_EVENTS = [
  'session.created',
  'session.updated',
  'session.deleted',
  'session.state',
  'session.auth',
  'session.ready',
  'session.health',
  'session.message',
  'session.error',
  'manager.error',
] as const satisfies readonly SessionManagerEventName[];

// Compile-time check: the list names every event of SessionManagerEvents.
type MissingEvent = Exclude<SessionManagerEventName, (typeof SESSION_MANAGER_EVENTS)[number]>;
const _allEventsListed: [MissingEvent] extends [never] ? true : MissingEvent = true;
void _allEventsListed;
