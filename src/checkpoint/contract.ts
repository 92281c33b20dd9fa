import type { JsonValue } from '../types.js';

/**
 * The checkpoint contract: distributed-lock work claiming with fencing tokens.
 *
 * A stream holds items keyed by a string. A worker claims items under a **lease** (owner, expiry,
 * fencing token). Every claim gives the item a token larger than any token the stream issued
 * before, so a downstream resource can refuse writes carrying an older token. `complete`, `fail`,
 * `renew` and `release` are compare-and-swaps on (stream, key, token, owner, status = processing,
 * lease not expired): a stale lease changes nothing and is reported as lost.
 *
 * Backends (`memory`, `sqlite`, `postgres`) implement {@link CheckpointBackend}; users work with the
 * {@link Checkpoint} facade made by `createCheckpoint`, which validates every input, raises
 * `LeaseLostError` and runs `process()`.
 *
 * Invariants every backend keeps (checked by `checkpointConformanceSuite` in `multisession/testing`):
 * - Claims are atomic: no item is leased to two workers at once; expired leases are taken back in
 *   the claim itself (no sweeper needed). Claim order: priority (high first), then due time (ties
 *   in insertion order; SQLite breaks ties by status first, so its claim scans one covering index).
 * - A lease's token is larger than every token issued before it in the stream (per key:
 *   strictly growing in commit order).
 * - Expiry is judged by one clock: the database's (`now()` on PostgreSQL; the machine's on SQLite).
 * - A reclaimed expired lease counts as one attempt; when that reaches `maxAttempts` the item goes
 *   `dead` instead of being leased again.
 * - Each stale change returns `false`/`null` per lease and changes nothing.
 */

/** Item states. `failed` waits for its retry time; `dead` gave up after `maxAttempts`. */
export const CHECKPOINT_STATUSES = ['pending', 'processing', 'done', 'failed', 'dead'] as const;
export type CheckpointStatus = (typeof CHECKPOINT_STATUSES)[number];

/** An item as stored. Times are epoch milliseconds on the backend's clock. */
export interface CheckpointItem {
  key: string;
  status: CheckpointStatus;
  payload: JsonValue | null;
  priority: number;
  attempts: number;
  /** When the item is (or was) due: `runAt` for pending/failed items. */
  runAt: number;
  /** Holder of the current or last lease, null when never claimed or after release/dead. */
  owner: string | null;
  /** Fencing token of the current or last lease (0 when never claimed). */
  token: number;
  /** Lease expiry while `processing`, otherwise null. */
  leaseExpiresAt: number | null;
  result: JsonValue | null;
  /** Message of the last failure. */
  error: string | null;
  createdAt: number;
  updatedAt: number;
  completedAt: number | null;
}

/**
 * A lease on one item. Pass it back unchanged to `renew`, `complete`, `fail` or `release`.
 * Plain data: it may be serialised and used by another process of the same owner.
 */
export interface Lease {
  stream: string;
  key: string;
  owner: string;
  /** Fencing token: larger than every token issued before it in the stream. */
  token: number;
  /** Lease expiry on the backend's clock (epoch ms). */
  expiresAt: number;
  /** Failed attempts before this lease (expired leases count as failures). */
  attempts: number;
  payload: JsonValue | null;
  priority: number;
}

/** Input of `add`. */
export interface NewCheckpointItem {
  key: string;
  payload?: JsonValue;
  /** Higher runs first. Default 0. */
  priority?: number;
  /** Not claimable before this time (epoch ms or Date). Default: now. */
  runAt?: number | Date;
}

/** One caller's claim, as the backend sees it. */
export interface ClaimRequest {
  owner: string;
  limit: number;
  leaseMs: number;
}

/** One lease to change, as the backend sees it. */
export interface LeaseRef {
  key: string;
  token: number;
  owner: string;
}

/** Counts by status and the age of the oldest pending item. */
export interface CheckpointStats {
  pending: number;
  processing: number;
  done: number;
  failed: number;
  dead: number;
  total: number;
  /** Milliseconds since the oldest `pending` item was added; null when none is pending. */
  oldestPendingAgeMs: number | null;
}

export interface ListQuery {
  status?: CheckpointStatus;
  limit: number;
  /** The `cursor` of the previous page. */
  cursor?: string | null;
}

export interface ListPage {
  items: CheckpointItem[];
  /** Pass to the next `list` call; null when this was the last page. */
  cursor: string | null;
}

/** What happens to a failed lease, decided by the facade from attempts, maxAttempts and back-off. */
export interface FailChange {
  error: string;
  /** `failed` (retry after `retryInMs`) or `dead`. */
  status: 'failed' | 'dead';
  retryInMs: number;
}

/** Result of one compare-and-swap in a batch. */
export type CasResult = { ok: true } | { ok: false };

/**
 * What a checkpoint backend implements: the `checkpoint` capability of a store. All methods take
 * the stream name first; every change of a leased item is a compare-and-swap on (key, token,
 * owner, status = processing, not expired). The backend has no lifecycle of its own: the store it
 * belongs to opens it (its tables come with the store's migrations) and closes it.
 */
export interface CheckpointBackend {
  /** Short name for logs: `memory`, `sqlite`, `postgres`. */
  readonly kind: string;
  /** Inserts items whose key is new in the stream (of keys repeated in `items`, the first); returns how many were inserted. */
  add(stream: string, items: NewCheckpointItem[]): Promise<number>;
  /**
   * Leases claimable items for each request (up to its `limit`, under its owner) in one atomic
   * step: one statement and one commit for the whole group; `result[i]` is what request `i` got.
   * Concurrent `claim()` calls of one checkpoint arrive here together (group commit).
   */
  claim(stream: string, requests: readonly ClaimRequest[], maxAttempts: number): Promise<Lease[][]>;
  /** Leases one item by key, creating it when absent; null when not claimable. */
  claimKey(
    stream: string,
    key: string,
    options: { owner: string; leaseMs: number; payload: JsonValue | null; maxAttempts: number },
  ): Promise<Lease | null>;
  /** Extends live leases; returns the new expiry per lease, or null when the lease is lost. */
  renew(stream: string, leases: LeaseRef[], leaseMs: number): Promise<(number | null)[]>;
  /**
   * Marks items done (one statement for the whole batch, a compare-and-swap per item, each lease
   * with its own owner); `ok: false` per lost lease. Concurrent `complete()` calls arrive together.
   */
  complete(stream: string, entries: { lease: LeaseRef; result: JsonValue | null }[]): Promise<CasResult[]>;
  /** Records a failure: attempts + 1, then `failed` until `retryInMs` or `dead`. */
  fail(stream: string, lease: LeaseRef, change: FailChange): Promise<CasResult>;
  /** Puts items back to pending without counting an attempt. */
  release(stream: string, leases: LeaseRef[]): Promise<CasResult[]>;
  get(stream: string, key: string): Promise<CheckpointItem | null>;
  /** Items ordered by key. */
  list(stream: string, query: ListQuery): Promise<ListPage>;
  stats(stream: string): Promise<CheckpointStats>;
  /** Dead items back to pending with attempts reset; returns how many. */
  retryDead(stream: string): Promise<number>;
  /** Deletes items in the given statuses last changed at least `olderThanMs` ago; returns how many. */
  purge(stream: string, options: { statuses: CheckpointStatus[]; olderThanMs: number }): Promise<number>;
}

/**
 * What `createCheckpoint({ storage })` takes, typed by shape: a store with a name, an `init()` that
 * opens it (idempotent: the stores of `multisession` are guarded) and, when it has the capability,
 * its `checkpoint` backend. A storage driver (`memoryStorage()`, `sqliteStorage(…)`,
 * `postgresStorage(…)`) and a stand-alone checkpoint store (`memoryCheckpoint()`,
 * `sqliteCheckpoint(…)`, `postgresCheckpoint(…)`) both fit.
 */
export interface CheckpointHost {
  readonly kind: string;
  init(): Promise<void>;
  readonly checkpoint?: CheckpointBackend;
}
