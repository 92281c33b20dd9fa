import type { CheckpointBackend } from '../checkpoint/contract.js';
import type { DesiredState, HealthStatus, SessionState } from '../lifecycle.js';
import type { JsonObject, JsonValue } from '../types.js';

/**
 * The storage driver contract: plain data in, plain data out, every method a promise.
 *
 * | group        | methods |
 * | ------------ | ------- |
 * | lifecycle    | `init`, `close`, `ping` |
 * | sessions     | `createSession`, `getSession`, `listSessions`, `updateSession`, `saveStatus`, `deleteSession`, `replaceCredentials` |
 * | per-session KV | `kvGet`, `kvList`, `kvWrite`, `kvClear` |
 * | counters     | `incrementStats`, `getStats` |
 * | history      | `appendTransitions`, `listTransitions` |
 * | audit        | `appendAudit`, `listAudit` |
 * | optional     | `checkpoint()` (the distributed-lock checkpoint on the same store) |
 *
 * Invariants every driver keeps (checked by `storageConformanceSuite` in `multisession/testing`):
 * - Times are epoch milliseconds. Records returned are copies: mutating them changes nothing stored.
 * - `updateSession` is a compare-and-swap on `version`; a lost update throws `ConflictError` and
 *   changes nothing. Every successful update adds 1 to `version`. `saveStatus` does not touch it.
 * - `createSession` throws `SessionExistsError` for a taken id. `createSession`, and an
 *   `updateSession` whose patch sets `credentialsFingerprint` or `allowSharedCredentials` (see
 *   {@link touchesCredentials}), throw `DuplicateCredentialsError` when the written record has a
 *   fingerprint, does not allow sharing, and another session holds the same fingerprint; nothing
 *   is written then. Other updates (desired state, labels …) never trip the guard.
 * - `init()` after `close()` opens the store again. `checkpoint()` is synchronous: a driver
 *   may open its store lazily on the backend's first use.
 * - `deleteSession` removes the session's KV, counters and history with it (not the audit log).
 * - KV, counters and history are per session: no call for one session id reads another's.
 * - `kvWrite` applies all its operations or none. Writing KV for a missing session throws
 *   `SessionNotFoundError`.
 * - `appendTransitions` keeps at most `keepPerSession` newest entries per session.
 * - A stored row that cannot be read does not fail `listSessions`: that record comes back with
 *   `readError` set (and safe defaults in the unreadable fields).
 * - `init` is idempotent and safe to run from two processes at once; `close` is idempotent.
 */
export interface StorageDriver {
  /** Short name for logs: `memory`, `sqlite`, `postgres`, … */
  readonly kind: string;
  /** True when data outlives the process. Persistent drivers require a secret key for credentials. */
  readonly persistent: boolean;

  init(): Promise<void>;
  close(): Promise<void>;
  /** Throws when the store cannot be reached. */
  ping(): Promise<void>;

  createSession(record: NewSessionRecord): Promise<SessionRecord>;
  getSession(id: string): Promise<SessionRecord | null>;
  /** Every session, ordered by id. */
  listSessions(): Promise<SessionRecord[]>;
  updateSession(id: string, patch: SessionPatch, expectedVersion: number): Promise<SessionRecord>;
  /** Runtime status of many sessions in one write; ids that no longer exist are skipped. */
  saveStatus(updates: StatusUpdate[]): Promise<void>;
  /** Returns false when there was nothing to delete. */
  deleteSession(id: string): Promise<boolean>;
  /**
   * Rewrites the sealed credentials of several sessions in one transaction (key rotation):
   * all or nothing; `ConflictError` if any `expectedVersion` no longer matches.
   */
  replaceCredentials(rows: CredentialRewrite[]): Promise<SessionRecord[]>;

  kvGet(sessionId: string, key: string): Promise<JsonValue | undefined>;
  /** Entries ordered by key, optionally only those whose key starts with `prefix`. */
  kvList(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]>;
  /** Applies every operation atomically. */
  kvWrite(sessionId: string, ops: KvOperation[]): Promise<void>;
  /** Deletes the session's entries (those under `prefix` when given); returns how many. */
  kvClear(sessionId: string, options?: { prefix?: string }): Promise<number>;

  /** Adds deltas to named counters; creates counters on first use; missing sessions are skipped. */
  incrementStats(deltas: StatDelta[]): Promise<void>;
  getStats(sessionId: string): Promise<Record<string, number>>;

  appendTransitions(entries: TransitionRecord[], keepPerSession: number): Promise<void>;
  /** The newest `limit` transitions of a session, oldest first. */
  listTransitions(sessionId: string, limit: number): Promise<TransitionRecord[]>;

  appendAudit(entries: AuditInput[]): Promise<void>;
  /** Newest first. */
  listAudit(query: AuditQuery): Promise<AuditEntry[]>;

  /** Optional capability: the checkpoint backend on this same store. */
  checkpoint?(): CheckpointBackend;
}

/** Whether an update patch changes what the duplicate-credential guard judges. */
export function touchesCredentials(patch: Partial<Pick<SessionRecord, 'credentialsFingerprint' | 'allowSharedCredentials'>>): boolean {
  return patch.credentialsFingerprint !== undefined || patch.allowSharedCredentials !== undefined;
}

export interface SessionError {
  code: string;
  message: string;
  at: number;
}

/** A session as stored. `credentials` is sealed (opaque to drivers) and never leaves the manager. */
export interface SessionRecord {
  id: string;
  platform: string;
  config: JsonObject;
  labels: Record<string, string>;
  metadata: JsonValue;
  priority: number;
  capacity: number | null;
  autoStart: boolean;
  idleTimeoutMs: number | null;
  allowSharedCredentials: boolean;
  desiredState: DesiredState;
  /** Sealed credentials made by the manager's credential codec, or null when none are set. */
  credentials: string | null;
  /** Keyed fingerprint of the plain credentials, for the duplicate-credential guard. */
  credentialsFingerprint: string | null;
  /** Runtime status, written by `saveStatus` (last writer wins, not versioned). */
  state: SessionState;
  health: HealthStatus;
  lastError: SessionError | null;
  lastActivityAt: number | null;
  createdAt: number;
  updatedAt: number;
  /** Starts at 1; +1 on every `updateSession`/`replaceCredentials`. */
  version: number;
  /** Set only when the stored row could not be read; the rest of the record holds defaults. */
  readError?: string;
}

export type NewSessionRecord = Omit<SessionRecord, 'version' | 'readError'>;

/** Fields an update may change. `updatedAt` is required so the clock stays the manager's. */
export type SessionPatch = Partial<
  Pick<
    SessionRecord,
    | 'config'
    | 'labels'
    | 'metadata'
    | 'priority'
    | 'capacity'
    | 'autoStart'
    | 'idleTimeoutMs'
    | 'allowSharedCredentials'
    | 'desiredState'
    | 'credentials'
    | 'credentialsFingerprint'
  >
> & { updatedAt: number };

export interface StatusUpdate {
  id: string;
  state?: SessionState;
  health?: HealthStatus;
  lastError?: SessionError | null;
  lastActivityAt?: number | null;
}

export interface CredentialRewrite {
  id: string;
  credentials: string | null;
  credentialsFingerprint: string | null;
  expectedVersion: number;
  updatedAt: number;
}

export interface KvEntry {
  key: string;
  value: JsonValue;
}

export type KvOperation = { op: 'set'; key: string; value: JsonValue } | { op: 'delete'; key: string };

export interface StatDelta {
  sessionId: string;
  name: string;
  delta: number;
}

export interface TransitionRecord {
  sessionId: string;
  from: SessionState;
  to: SessionState;
  reason: string;
  at: number;
}

export interface AuditInput {
  at: number;
  sessionId: string | null;
  action: string;
  actor: string | null;
  /** Changed field names and other non-secret details. Never secret values. */
  details: JsonObject;
}

export interface AuditEntry extends AuditInput {
  /** Grows with every entry. */
  id: number;
}

export interface AuditQuery {
  sessionId?: string;
  action?: string;
  /** Only entries at or after this time (epoch ms). */
  since?: number;
  /** Default 100. */
  limit?: number;
}
