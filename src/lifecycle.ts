/**
 * The session lifecycle: every actual state and every allowed transition, in one table.
 * Any transition not listed here is refused with `InvalidTransitionError`.
 */
export const SESSION_STATES = [
  'stopped',
  'starting',
  'authenticating',
  'ready',
  'degraded',
  'backoff',
  'failed',
  'expired',
  'stopping',
] as const;
export type SessionState = (typeof SESSION_STATES)[number];

export const DESIRED_STATES = ['running', 'stopped'] as const;
export type DesiredState = (typeof DESIRED_STATES)[number];

export const HEALTH_STATUSES = ['healthy', 'unhealthy', 'expired', 'unauthorized', 'unknown'] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export const AUTH_KINDS = ['qr', 'code', 'password', 'pairing-code'] as const;
export type AuthKind = (typeof AUTH_KINDS)[number];

/** from → the states it may move to. */
export const TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = Object.freeze({
  // start() from rest; a stopped session never goes anywhere else by itself.
  stopped: ['starting'],
  // the adapter is connecting: it may ask for auth, come up, fail (→ backoff or failed),
  // find its credentials invalid, or be stopped.
  starting: ['authenticating', 'ready', 'backoff', 'failed', 'expired', 'stopping'],
  // waiting for a QR scan, a code or a password (a refreshed QR is an auth event, not a transition).
  authenticating: ['ready', 'backoff', 'failed', 'expired', 'stopping'],
  // up: health may fail (degraded), the platform may say the credentials are gone (expired),
  // the connection may drop (backoff; failed when restart.retries is 0), or a new auth step may be
  // needed (authenticating).
  ready: ['degraded', 'authenticating', 'backoff', 'expired', 'failed', 'stopping'],
  // still up but health failing: recover to ready, restart (backoff), or give up.
  degraded: ['ready', 'authenticating', 'backoff', 'expired', 'failed', 'stopping'],
  // waiting before the next start attempt.
  backoff: ['starting', 'stopping'],
  // gave up; start() tries again.
  failed: ['starting', 'stopping'],
  // credentials no longer valid: needs re-authentication (start) or a stop.
  expired: ['starting', 'stopping'],
  // stop in progress.
  stopping: ['stopped'],
});

/** States in which the session's connection is up and can send. */
export const ACTIVE_STATES: ReadonlySet<SessionState> = new Set(['ready', 'degraded']);

/** States in which a runtime (connection, timers) exists. */
export const RUNNING_STATES: ReadonlySet<SessionState> = new Set([
  'starting',
  'authenticating',
  'ready',
  'degraded',
  'backoff',
]);

export function canTransition(from: SessionState, to: SessionState): boolean {
  return TRANSITIONS[from].includes(to);
}
