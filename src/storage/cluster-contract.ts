import type { JsonObject } from '../types.js';

/**
 * The `cluster` capability of a storage driver: the nodes sharing one store and the ownership
 * leases that let exactly one of them run each session. The SQL drivers have it (PostgreSQL for
 * several machines, SQLite for several processes on one machine); the memory driver is one node
 * and has none.
 *
 * Every expiry is judged by the database's clock, never a node's: a node's `lastSeenAt` and a
 * lease's `expiresAt` are the database time of the write plus the TTL. Tokens come from one
 * sequence per store and only grow, so a lease taken again (by any node, or after the session was
 * deleted and created again) always carries a token no earlier lease had.
 *
 * Invariants (checked by the `cluster` group of `storageConformanceSuite`):
 * - `join` refuses a node id whose row is live (seen within its TTL) under another incarnation
 *   with `NodeIdInUseError`; a dead row of the same id is taken over.
 * - `acquire` is one atomic statement: two nodes acquiring at once never both get a session; it
 *   takes only sessions whose desired state is `running` and that have no live lease, highest
 *   priority first, then by id.
 * - `heartbeat` extends every lease the node holds in a constant number of statements and returns
 *   those it still holds; a lease that expired meanwhile, was released or taken over, or whose
 *   session was deleted, is not among them.
 * - A write that carries a fence (`StatusUpdate.fence`, `TransitionRecord.fence`,
 *   `StatDelta.fence`, `kv.write(..., { fence })`) lands only while that token is the session's
 *   current lease (expired or not: expiry only lets another node take it). Stale status,
 *   transition and counter writes are skipped; a stale KV write throws `OwnershipLostError` and
 *   writes nothing.
 */
export interface ClusterStore {
  /** Registers the node (again, after a restart) and returns the database clock. */
  join(node: NodeRegistration): Promise<{ now: number }>;
  /** Refreshes the node's row and extends all its leases by `ttlMs`; returns the leases still held. */
  heartbeat(beat: NodeHeartbeat): Promise<HeartbeatResult>;
  /**
   * Takes up to `limit` sessions that should run and have no live owner (only `ids`, when given),
   * highest priority first, then by id.
   */
  acquire(request: AcquireRequest): Promise<OwnershipLease[]>;
  /** Gives leases up at once (stop, drain, close): only those whose token still matches. */
  release(nodeId: string, leases: readonly LeaseRef[]): Promise<void>;
  /** Removes the node's row and releases every lease it holds. */
  leave(nodeId: string, incarnation: string): Promise<void>;
  /** Every registered node, by id, with the number of leases it holds and the database clock. */
  nodes(): Promise<{ now: number; nodes: NodeRecord[] }>;
  /** The live owners of sessions (all, or only `ids`). */
  owners(ids?: readonly string[]): Promise<OwnerRecord[]>;
  /** How many sessions have desired state `running` (placement's fair share). */
  countRunnable(): Promise<number>;
  /**
   * Sessions created, updated, deleted or whose owner changed after change `since` (0: from the
   * start), at most `limit` of them, in the order of the changes; `seq` is where to go on from.
   */
  changes(since: number, limit: number): Promise<ChangeBatch>;
  /**
   * Puts events of sessions this node runs in the feed, in order, for the other nodes to emit
   * (they come back from `changes` in `events`, not in `ids`).
   */
  publish(nodeId: string, events: readonly RelayedEvent[]): Promise<void>;
  /**
   * Optional: calls `onChange` soon after changes are committed to the feed (PostgreSQL LISTEN/
   * NOTIFY), so a node reads them at once instead of at its next poll. A hint only: a node still
   * reads the feed on its timer, which covers a lost listening connection (the store connects
   * again by itself and reports the loss to `onError`). Resolves to the function that stops it.
   */
  watch?(onChange: () => void, onError: (error: unknown) => void): Promise<() => Promise<void>>;
}

/** An event of a session relayed to the other nodes through the feed. */
export interface RelayedEvent {
  sessionId: string;
  /** The event as plain JSON (its name in `type`). */
  event: JsonObject;
}

export interface NodeRegistration {
  nodeId: string;
  /** Random per manager instance: tells a restarted process from a second live one. */
  incarnation: string;
  host: string;
  pid: number;
  maxRunning: number | null;
  ttlMs: number;
}

export interface NodeHeartbeat {
  nodeId: string;
  incarnation: string;
  running: number;
  draining: boolean;
  ttlMs: number;
}

export interface HeartbeatResult {
  /** The database clock. */
  now: number;
  /** False when the node's row was gone or taken by another incarnation: it must stop everything. */
  member: boolean;
  leases: OwnershipLease[];
}

export interface AcquireRequest {
  nodeId: string;
  incarnation: string;
  limit: number;
  ttlMs: number;
  ids?: readonly string[];
}

export interface LeaseRef {
  sessionId: string;
  token: number;
}

export interface OwnershipLease extends LeaseRef {
  expiresAt: number;
}

export interface NodeRecord {
  nodeId: string;
  incarnation: string;
  host: string;
  pid: number;
  startedAt: number;
  lastSeenAt: number;
  /** Seen within its TTL. */
  live: boolean;
  running: number;
  maxRunning: number | null;
  draining: boolean;
  /** Leases the node holds now. */
  leases: number;
}

export interface OwnerRecord {
  sessionId: string;
  nodeId: string;
  token: number;
  since: number;
  expiresAt: number;
}

export interface ChangeBatch {
  seq: number;
  /** Changed session ids, each once (look each up: a missing one was deleted). */
  ids: string[];
  /** Events other nodes published, in order, with the node that published each. */
  events: (RelayedEvent & { nodeId: string })[];
  /** True when more changes wait past `seq`. */
  more: boolean;
  /** True when changes after `since` are no longer kept (or `since` is from another store): read every session again. */
  reset: boolean;
}
