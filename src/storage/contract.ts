import type { CheckpointBackend } from '../checkpoint/contract.js';
import type { ClusterStore } from './cluster-contract.js';
import type { WebhookStore } from './webhook-contract.js';
import type { UnitStore } from './units-contract.js';
import { UnsupportedError } from '../errors.js';
import type { DesiredState, HealthStatus, SessionState } from '../lifecycle.js';
import type { JsonObject, JsonValue } from '../types.js';

/**
 * The storage driver contract: one small required store of sessions, and optional capabilities
 * a driver declares by having them. Plain data in, plain data out, every method a promise.
 *
 * | member        | required | what |
 * | ------------- | -------- | ---- |
 * | `init`, `close`, `ping` | yes | lifecycle (see {@link StoreLifecycle}) |
 * | `sessions`    | yes | {@link SessionStore}: create, get, list, update, saveStatus, delete, replaceCredentials |
 * | `kv`          | no  | {@link KvStore}: the per-session key-value space (`ctx.kv`, `ctx.authState`, `manager.kv`) |
 * | `counters`    | no  | {@link CounterStore}: per-session counters (`manager.stats`) |
 * | `history`     | no  | {@link HistoryStore}: transition history that outlives the process |
 * | `audit`       | no  | {@link AuditStore}: the audit log (`manager.audit`) |
 * | `checkpoint`  | no  | the {@link CheckpointBackend} on the same store (`manager.checkpoint`) |
 * | `cluster`     | no  | {@link ClusterStore}: nodes and session ownership leases (several managers on one store) |
 * | `webhooks`    | no  | {@link WebhookStore}: webhook endpoints and the delivery log (`multisession/webhooks`) |
 * | `units`       | no  | {@link UnitStore}: work units assigned to sessions (`manager.units`) |
 *
 * Without a capability the manager still runs: transitions are kept in memory only, counters and
 * audit entries are not kept, and the calls that need it (`manager.kv`, `ctx.kv`, `manager.stats`,
 * `manager.audit`, `manager.checkpoint`) throw `UnsupportedError`; without `cluster` the manager
 * is the only node on its store.
 *
 * Invariants every driver keeps (checked by `storageConformanceSuite` in `multisession/testing`):
 * - Times are epoch milliseconds. Records returned are copies: mutating them changes nothing stored.
 * - **A lost compare-and-swap is an outcome, not an error**: `sessions.update` returns `null` when
 *   the session is missing or its `version` is not `expectedVersion`, `replaceCredentials` returns
 *   `null` when any row is (and writes none); the checkpoint returns `{ ok: false }` / `null` per
 *   lease. The caller (the manager, the `Checkpoint` facade) turns it into `ConflictError` or
 *   `LeaseLostError` with the context it knows. Faults (a dead connection, a bad input) throw.
 * - Every successful update adds 1 to `version`. `saveStatus` does not touch it.
 * - `sessions.create` throws `SessionExistsError` for a taken id. `create`, and an `update` whose
 *   patch sets `credentialsFingerprint` or `allowSharedCredentials` (see {@link touchesCredentials}),
 *   throw `DuplicateCredentialsError` when the written record has a fingerprint, does not allow
 *   sharing, and another session holds the same fingerprint; nothing is written then.
 * - `sessions.delete` removes the session's KV, counters and history with it (not the audit log).
 * - The audit entry a session write is given ({@link WriteOptions}) is stored in the same
 *   transaction as the change, exactly when the change is: not when the write throws, loses its
 *   compare-and-swap (`null`) or finds nothing to delete (`false`). Without the `audit` capability
 *   it is ignored.
 * - KV, counters and history are per session: no call for one session id reads another's.
 * - `kv.write` applies all its operations or none. Writing KV for a missing session throws
 *   `SessionNotFoundError`.
 * - `history.append` keeps at most `keepPerSession` newest entries per session.
 * - A stored row that cannot be read does not fail `sessions.list`: that record comes back with
 *   `readError` set (and safe defaults in the unreadable fields).
 * - A bad input is refused with `ValidationError` before anything is written.
 * - Errors a driver raises itself are `StorageError`s whose message starts with `[<kind>] `
 *   (see {@link storageError}), with the driver's own error as `cause`.
 */
export interface StorageDriver extends StoreLifecycle {
  readonly sessions: SessionStore;
  readonly kv?: KvStore;
  readonly counters?: CounterStore;
  readonly history?: HistoryStore;
  readonly audit?: AuditStore;
  readonly checkpoint?: CheckpointBackend;
  readonly cluster?: ClusterStore;
  readonly webhooks?: WebhookStore;
  readonly units?: UnitStore;
}

/**
 * The lifecycle every store has (storage drivers and stand-alone checkpoint stores). Drivers are
 * wrapped by one guard (`guardStore`, applied by every factory and by the manager), which makes
 * `init` idempotent (concurrent calls share one opening; a failed one may be retried), opens the
 * store lazily on the first call of any capability, refuses calls after `close()` until `init()`
 * opens it again, and calls the driver's own `close` once, only after a successful `init`. So a
 * driver's own `init` runs once per opening and never while the store is open.
 */
export interface StoreLifecycle {
  /** Short name for logs and error prefixes: `memory`, `sqlite`, `postgres`, … */
  readonly kind: string;
  /** True when data outlives the process. Persistent stores require a secret key for credentials. */
  readonly persistent: boolean;
  /** Opens the store and makes its tables (migrations); safe from two processes at once. */
  init(): Promise<void>;
  /** Releases what the driver opened (never a client passed in). */
  close(): Promise<void>;
  /** Throws when the store cannot be reached. */
  ping(): Promise<void>;
}

/**
 * A store that holds only the checkpoint (`sqliteCheckpoint`, `postgresCheckpoint`,
 * `memoryCheckpoint`): the same lifecycle, no session tables. A {@link StorageDriver} with the
 * `checkpoint` capability serves `createCheckpoint` just as well.
 */
export interface CheckpointStore extends StoreLifecycle {
  readonly checkpoint: CheckpointBackend;
}

/**
 * Options of the session writes the manager audits (`create`, `update`, `delete`,
 * `replaceCredentials`).
 */
export interface WriteOptions {
  /**
   * An entry of the audit log, written in the same transaction as the change (an acknowledged
   * change always has its entry; a write that does not happen leaves none). Checked before
   * anything is written; ignored by a driver without the `audit` capability.
   */
  audit?: AuditInput;
}

/** Options of `sessions.create`. */
export interface CreateOptions extends WriteOptions {
  /**
   * Refuse with `CapacityError`, writing nothing, when the store already holds this many sessions.
   * Counted atomically with the insert: two creates at once, from any processes, cannot both pass it.
   */
  maxSessions?: number;
}

/** The sessions themselves: the one capability every driver has. */
export interface SessionStore {
  create(record: NewSessionRecord, options?: CreateOptions): Promise<SessionRecord>;
  get(id: string): Promise<SessionRecord | null>;
  /** Every session, ordered by id. */
  list(): Promise<SessionRecord[]>;
  /** Compare-and-swap on `version`: the updated record, or `null` when missing or changed meanwhile. */
  update(id: string, patch: SessionPatch, expectedVersion: number, options?: WriteOptions): Promise<SessionRecord | null>;
  /** Runtime status of many sessions in one write; ids that no longer exist are skipped. */
  saveStatus(updates: StatusUpdate[]): Promise<void>;
  /** Returns false when there was nothing to delete. */
  delete(id: string, options?: WriteOptions): Promise<boolean>;
  /**
   * Rewrites the sealed credentials of several sessions in one transaction (key rotation): all or
   * nothing; `null` (and nothing written) when any row is missing or its version no longer matches.
   */
  replaceCredentials(rows: CredentialRewrite[], options?: WriteOptions): Promise<SessionRecord[] | null>;
}

/** The per-session key-value space. */
export interface KvStore {
  get(sessionId: string, key: string): Promise<JsonValue | undefined>;
  /** Entries ordered by key, optionally only those whose key starts with `prefix`. */
  list(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]>;
  /**
   * Applies every operation atomically. With `fence` (an ownership token, `cluster` stores only)
   * nothing is written and `OwnershipLostError` is thrown unless it is the session's current lease.
   */
  write(sessionId: string, ops: KvOperation[], options?: { fence?: number }): Promise<void>;
  /** Deletes the session's entries (those under `prefix` when given); returns how many. */
  clear(sessionId: string, options?: { prefix?: string }): Promise<number>;
}

/** Named per-session counters. */
export interface CounterStore {
  /** Adds deltas to named counters; creates counters on first use; missing sessions are skipped. */
  increment(deltas: StatDelta[]): Promise<void>;
  get(sessionId: string): Promise<Record<string, number>>;
}

/** Each session's newest transitions. */
export interface HistoryStore {
  append(entries: TransitionRecord[], keepPerSession: number): Promise<void>;
  /** The newest `limit` transitions of a session, oldest first. */
  list(sessionId: string, limit: number): Promise<TransitionRecord[]>;
}

/** The audit log. */
export interface AuditStore {
  append(entries: AuditInput[]): Promise<void>;
  /** Newest first. */
  list(query: AuditQuery): Promise<AuditEntry[]>;
  /**
   * Optional: deletes every entry with `at` before `before` (epoch ms) and returns how many.
   * The manager's `audit.retentionMs` needs it; the bundled drivers have it.
   */
  prune?(before: number): Promise<number>;
}

/** The optional capabilities, by name (for conformance groups and `UnsupportedError`). */
export const STORAGE_CAPABILITIES = ['kv', 'counters', 'history', 'audit', 'checkpoint', 'cluster', 'webhooks', 'units'] as const;
export type StorageCapability = (typeof STORAGE_CAPABILITIES)[number];

/** The store's `name` capability, or `UnsupportedError` when it lacks it. */
export function requireCapability<K extends StorageCapability>(storage: StorageDriver, name: K): NonNullable<StorageDriver[K]> {
  const capability = storage[name];
  if (!capability) throw new UnsupportedError(name, storage.kind);
  return capability as NonNullable<StorageDriver[K]>;
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
  /** Starts at 1; +1 on every `update`/`replaceCredentials`. */
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
  /** The writer's ownership token (`cluster` stores): skipped unless it is the session's current lease. */
  fence?: number;
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
  /** The writer's ownership token (`cluster` stores): skipped unless it is the session's current lease. */
  fence?: number;
}

export interface TransitionRecord {
  sessionId: string;
  from: SessionState;
  to: SessionState;
  reason: string;
  at: number;
  /** The writer's ownership token (`cluster` stores): skipped unless it is the session's current lease. */
  fence?: number;
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
