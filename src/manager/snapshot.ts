import type { AuthKind, DesiredState, HealthStatus, SessionState } from '../lifecycle.js';
import type { SessionError } from '../storage/contract.js';
import type { JsonObject, JsonValue } from '../types.js';

/** The pending authentication step while a session is `authenticating`. */
export interface SessionAuthInfo {
  kind: AuthKind;
  /** QR payload, phone hint … whatever the adapter shows the user. */
  data: JsonValue;
  expiresAt: number | null;
}

export interface TransitionInfo {
  from: SessionState;
  to: SessionState;
  reason: string;
  at: number;
}

/** What `create`, `get` and `list` return. Never the credentials: only `hasCredentials`. */
export interface SessionSnapshot {
  id: string;
  platform: string;
  config: JsonObject;
  hasCredentials: boolean;
  state: SessionState;
  desiredState: DesiredState;
  auth: SessionAuthInfo | null;
  health: HealthStatus;
  labels: Record<string, string>;
  metadata: JsonValue;
  priority: number;
  capacity: number | null;
  autoStart: boolean;
  idleTimeoutMs: number | null;
  allowSharedCredentials: boolean;
  createdAt: number;
  updatedAt: number;
  lastActivityAt: number | null;
  lastError: SessionError | null;
  /** The newest transitions, oldest first. */
  transitions: TransitionInfo[];
  version: number;
  /** The node that runs the session and since when (`manager.nodeId` on one node); null when none does. */
  owner: { nodeId: string; since: number } | null;
}

/** A page of `manager.list()`. */
export interface SessionPage {
  items: SessionSnapshot[];
  /** Pass as `cursor` for the next page; `null` when this is the last. */
  nextCursor: string | null;
}

/** Live status, cheaper than a full snapshot. */
export interface SessionStatus {
  id: string;
  platform: string;
  state: SessionState;
  desiredState: DesiredState;
  health: HealthStatus;
  auth: SessionAuthInfo | null;
  lastError: SessionError | null;
  lastActivityAt: number | null;
  /** Milliseconds since the session last became ready (null when not up). */
  uptimeMs: number | null;
  restarts: number;
}

export interface SessionStatistics {
  id: string;
  /** Built-in counters: starts, restarts, failures, messagesIn, messagesOut, errors. */
  starts: number;
  restarts: number;
  failures: number;
  messagesIn: number;
  messagesOut: number;
  errors: number;
  /** Counters the adapter raised with `ctx.stats.increment(name)`. */
  custom: Record<string, number>;
}

export interface LogEntry {
  at: number;
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  data?: Record<string, unknown>;
}
