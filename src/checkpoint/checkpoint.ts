import { EventEmitter } from 'eventemitter3';
import { z } from 'zod';
import { LeaseLostError, UnsupportedError, ValidationError } from '../errors.js';
import { parseWith } from '../validation.js';
import { findJsonProblem } from '../json.js';
import { systemClock, type Clock, type JsonValue } from '../types.js';
import {
  type CasResult,
  type CheckpointBackend,
  type ClaimRequest,
  type CheckpointHost,
  type CheckpointItem,
  type CheckpointStats,
  type CheckpointStatus,
  type Lease,
  type LeaseRef,
  type ListPage,
  type NewCheckpointItem,
} from './contract.js';
import type { ProcessOptions, ProcessSummary, WorkHandler } from './process.js';
import { runProcess } from './worker/process-runner.js';
import {
  checkpointOptionsSchema,
  claimKeySchema,
  claimSchema,
  failOptionsSchema,
  itemsSchema,
  jsonSchema,
  keySchema,
  leaseMsSchema,
  leaseSchema,
  listSchema,
  MAX_LEASE_MS,
  purgeSchema,
  wellFormedItems,
} from './schemas.js';
import { Coalescer } from './coalescer.js';

type CompletionRow = { lease: LeaseRef; result: JsonValue | null };

export type CheckpointOptions = z.input<typeof checkpointOptionsSchema> & {
  /**
   * The store that holds the stream: a storage driver with the `checkpoint` capability, or a
   * stand-alone checkpoint store (`memoryCheckpoint()`, `sqliteCheckpoint(…)`, `postgresCheckpoint(…)`).
   */
  storage: CheckpointHost;
};

/** A leased item as the `process()` handler sees it. */
export interface WorkItem {
  key: string;
  payload: JsonValue | null;
  priority: number;
  /** Failed attempts before this one. */
  attempts: number;
}

/** Outcome of one entry of {@link Checkpoint.completeMany}. */
export type CompleteOutcome = { lease: Lease; ok: true } | { lease: Lease; ok: false; error: LeaseLostError };

/** Typed events of a checkpoint (emitted by `process()`). */
export interface CheckpointEvents {
  'batch.claimed': (event: { stream: string; owner: string; leases: Lease[] }) => void;
  'item.completed': (event: { stream: string; owner: string; key: string; token: number }) => void;
  'item.failed': (event: { stream: string; owner: string; key: string; token: number; error: string; status: 'failed' | 'dead' }) => void;
  'lease.lost': (event: {
    stream: string;
    owner: string;
    key: string;
    token: number;
    phase: 'renew' | 'deadline' | 'complete' | 'fail' | 'release';
    error: LeaseLostError;
  }) => void;
  'process.progress': (event: ProcessSummary & { stream: string; owner: string; inFlight: number }) => void;
  'process.error': (event: { stream: string; owner: string; error: Error; operation: string }) => void;
}

/** The store's checkpoint backend: `ValidationError` for something that is no store, `UnsupportedError` for a store without one. */
function backendOf(storage: unknown): { store: CheckpointHost; backend: CheckpointBackend } {
  const s = storage as Partial<CheckpointHost> | null | undefined;
  if (!s || typeof s !== 'object' || typeof s.kind !== 'string' || typeof s.init !== 'function') {
    throw new ValidationError('checkpoint options', [
      {
        path: ['storage'],
        message: 'pass a store: a storage driver (memoryStorage(), sqliteStorage(…), postgresStorage(…)) or a checkpoint store (memoryCheckpoint(), sqliteCheckpoint(…), postgresCheckpoint(…))',
      },
    ]);
  }
  if (!s.checkpoint || typeof s.checkpoint.claim !== 'function') throw new UnsupportedError('checkpoint', s.kind);
  return { store: s as CheckpointHost, backend: s.checkpoint };
}

export function errorMessage(error: unknown): string {
  const text =
    error instanceof Error ? error.message || error.name : typeof error === 'string' ? error : (() => {
      try {
        return JSON.stringify(error) ?? String(error);
      } catch {
        return String(error);
      }
    })();
  return text.length > 2000 ? `${text.slice(0, 1997)}...` : text;
}

/**
 * A stream of work items split between workers under fenced leases. Make one with
 * {@link createCheckpoint} (or `manager.checkpoint(stream)`).
 *
 * @example
 * ```ts
 * const cp = createCheckpoint({ storage: memoryStorage(), stream: 'messages' });
 * await cp.add([{ key: 'msg-100', payload: { text: 'hi' } }]);
 * const lease = await cp.claimKey('msg-100', { owner: 'session-1', leaseMs: 30_000 });
 * if (lease) { await forward(lease.payload, lease.token); await cp.complete(lease); }
 * ```
 */
export class Checkpoint extends EventEmitter<CheckpointEvents> {
  readonly stream: string;
  readonly maxAttempts: number;
  readonly backoff: Readonly<{ minMs: number; maxMs: number; factor: number }>;
  readonly #host: CheckpointHost;
  readonly #backend: CheckpointBackend;
  readonly #clock: Clock;
  #ready: Promise<void> | null = null;
  /** The store answered init(): calls go to the backend without waiting. */
  #open = false;
  /** Concurrent claims and completions of this checkpoint go to the store together (group commit). */
  readonly #claims = new Coalescer<ClaimRequest, Lease[]>({
    run: (requests) => {
      const backend = this.#backendNow();
      return backend instanceof Promise
        ? backend.then((b) => b.claim(this.stream, requests, this.maxAttempts))
        : backend.claim(this.stream, requests, this.maxAttempts);
    },
    maxGroup: 1000,
    size: (r) => r.limit,
  });
  readonly #completions = new Coalescer<CompletionRow[], CasResult[]>({
    run: (calls) => {
      const backend = this.#backendNow();
      return backend instanceof Promise ? backend.then((b) => this.#completeGroup(b, calls)) : this.#completeGroup(backend, calls);
    },
    maxGroup: 1000,
    size: (rows) => rows.length,
  });

  constructor(options: CheckpointOptions) {
    super();
    const parsed = parseWith(checkpointOptionsSchema, { ...options, storage: undefined }, 'checkpoint options');
    ({ store: this.#host, backend: this.#backend } = backendOf(options.storage));
    this.stream = parsed.stream;
    this.maxAttempts = parsed.maxAttempts;
    this.backoff = Object.freeze({ ...parsed.backoff });
    this.#clock = parsed.clock ?? systemClock;
  }

  /** The backend kind: `memory`, `sqlite` or `postgres`. */
  get kind(): string {
    return this.#backend.kind;
  }

  /** The backend, once its tables exist. */
  async #store(): Promise<CheckpointBackend> {
    if (this.#open) return this.#backend;
    if (!this.#ready) {
      this.#ready = this.#host.init().catch((err: unknown) => {
        this.#ready = null;
        throw err;
      });
    }
    await this.#ready;
    this.#open = true;
    return this.#backend;
  }

  /**
   * The backend for a hot call: itself once the store is open (no await on the way), else a
   * promise of it.
   */
  #backendNow(): CheckpointBackend | Promise<CheckpointBackend> {
    return this.#open ? this.#backend : this.#store();
  }

  /** One store call for a group of completion calls; each gets its own results back. */
  async #completeGroup(backend: CheckpointBackend, calls: CompletionRow[][]): Promise<CasResult[][]> {
    if (calls.length === 1) return [await backend.complete(this.stream, calls[0]!)];
    const results = await backend.complete(this.stream, calls.flat());
    let at = 0;
    return calls.map((c) => results.slice(at, (at += c.length)));
  }

  /** Adds items whose key is new (idempotent by key); returns how many were new. */
  async add(items: NewCheckpointItem[]): Promise<number> {
    // Passed on as they are: the store keeps the first of repeated keys (ON CONFLICT DO NOTHING).
    const list: NewCheckpointItem[] = wellFormedItems(items) ? items : parseWith(itemsSchema, items, 'checkpoint items');
    if (!list.length) return 0;
    return (await this.#store()).add(this.stream, list);
  }

  /**
   * Leases up to `limit` claimable items (pending and due, failed and due, or processing with an
   * expired lease) by priority then age, in one atomic step. Each lease carries a new fencing token.
   */
  async claim(options: { owner: string; limit?: number; leaseMs?: number }): Promise<Lease[]> {
    const { owner, limit = 1, leaseMs = 30_000 } = (options ?? {}) as { owner?: unknown; limit?: unknown; leaseMs?: unknown };
    const plain =
      typeof owner === 'string' && owner.length > 0 && owner.length <= 200 &&
      Number.isInteger(limit) && (limit as number) >= 1 && (limit as number) <= 10_000 &&
      Number.isInteger(leaseMs) && (leaseMs as number) >= 1 && (leaseMs as number) <= MAX_LEASE_MS;
    const o = plain
      ? { owner: owner as string, limit: limit as number, leaseMs: leaseMs as number }
      : parseWith(claimSchema, options, 'claim options');
    return this.#claims.call(o);
  }

  /**
   * Locks one known item (a message id), creating it when absent. `null` when it is done or dead,
   * another worker holds a live lease on it, or it waits for its retry time.
   */
  async claimKey(key: string, options: { owner: string; leaseMs?: number; payload?: JsonValue }): Promise<Lease | null> {
    const k = parseWith(keySchema, key, 'item key');
    const o = parseWith(claimKeySchema, options, 'claimKey options');
    return (await this.#store()).claimKey(this.stream, k, {
      owner: o.owner,
      leaseMs: o.leaseMs,
      payload: (o.payload as JsonValue | undefined) ?? null,
      maxAttempts: this.maxAttempts,
    });
  }

  #ref(lease: Lease, what: string | (() => string) = 'lease'): LeaseRef {
    // Fast path for a well-formed lease of this stream (the common case, once per item).
    const { key, owner, token, stream } = (lease ?? {}) as Partial<Lease>;
    if (
      stream === this.stream &&
      typeof key === 'string' &&
      key.length > 0 &&
      key.length <= 1000 &&
      typeof owner === 'string' &&
      owner.length > 0 &&
      owner.length <= 200 &&
      Number.isSafeInteger(token) &&
      (token as number) >= 0
    ) {
      return { key, token: token as number, owner };
    }
    const label = typeof what === 'function' ? what() : what;
    const l = parseWith(leaseSchema, lease, label);
    if (l.stream !== this.stream) {
      throw new ValidationError(label, [
        { path: ['stream'], message: `this lease belongs to stream "${l.stream}", not "${this.stream}"; use that stream's checkpoint` },
      ]);
    }
    return { key: l.key, token: l.token, owner: l.owner };
  }

  #lost(ref: LeaseRef, operation: string): LeaseLostError {
    return new LeaseLostError(
      `Cannot ${operation} "${ref.key}" in stream "${this.stream}": the lease (token ${ref.token}, owner "${ref.owner}") is no longer held — it expired, was taken over, or was already completed, failed or released. Nothing was changed; claim the item again if it still needs work.`,
      { context: { stream: this.stream, key: ref.key, token: ref.token, owner: ref.owner, operation } },
    );
  }

  /** Extends a live lease by `leaseMs` from now; returns the lease with its new expiry. */
  async renew(lease: Lease, leaseMs = 30_000): Promise<Lease> {
    const ref = this.#ref(lease);
    const ms = parseWith(leaseMsSchema, leaseMs, 'leaseMs');
    const [expiresAt] = await (await this.#store()).renew(this.stream, [ref], ms);
    if (expiresAt === null || expiresAt === undefined) throw this.#lost(ref, 'renew');
    return { ...lease, expiresAt };
  }

  /** Marks the item done. Throws `LeaseLostError` (and changes nothing) when the lease is stale. */
  async complete(lease: Lease, result?: JsonValue): Promise<void> {
    const ref = this.#ref(lease);
    const row = { lease: ref, result: result === undefined ? null : this.#result(result, 'result') };
    const [outcome] = await this.#completions.call([row]);
    if (!outcome?.ok) throw this.#lost(ref, 'complete');
  }

  /**
   * Completes many leases in one compare-and-swap statement. Each lost lease gets its own
   * `LeaseLostError` in the outcome; the others are done.
   */
  async completeMany(entries: { lease: Lease; result?: JsonValue }[]): Promise<CompleteOutcome[]> {
    if (!Array.isArray(entries)) throw new ValidationError('completeMany entries', [{ path: [], message: 'pass an array of { lease, result? }' }]);
    const refs = new Array<LeaseRef>(entries.length);
    const rows = new Array<{ lease: LeaseRef; result: JsonValue | null }>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      refs[i] = this.#ref(e?.lease as Lease, () => `completeMany entries[${i}].lease`);
      const r = e!.result;
      const result = r === undefined ? null : this.#result(r, `completeMany entries[${i}].result`);
      rows[i] = { lease: refs[i]!, result };
    }
    if (!entries.length) return [];
    const out = await this.#completions.call(rows);
    const outcomes = new Array<CompleteOutcome>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const lease = entries[i]!.lease;
      outcomes[i] = out[i]?.ok ? { lease, ok: true } : { lease, ok: false, error: this.#lost(refs[i]!, 'complete') };
    }
    return outcomes;
  }

  /** A result to store: JSON as it is (checked without a schema walk), else the schema's ValidationError. */
  #result(r: unknown, what: string): JsonValue {
    return findJsonProblem(r) === null ? (r as JsonValue) : (parseWith(jsonSchema, r, what) as JsonValue);
  }

  /** Retry delay after a lease that had `attempts` earlier failures fails again. */
  retryDelay(attempts: number): number {
    const { minMs, maxMs, factor } = this.backoff;
    return Math.round(Math.min(maxMs, minMs * factor ** Math.max(0, attempts)));
  }

  /**
   * Records a failure: attempts + 1; the item is retried after the back-off (or `retryInMs`), or
   * goes `dead` once it has failed `maxAttempts` times.
   */
  async fail(lease: Lease, error: unknown, options: { retryInMs?: number } = {}): Promise<{ status: 'failed' | 'dead'; attempts: number; retryInMs: number }> {
    const ref = this.#ref(lease);
    const o = parseWith(failOptionsSchema, options, 'fail options');
    const attempts = Number.isInteger(lease.attempts) && lease.attempts >= 0 ? lease.attempts : 0;
    const dead = attempts + 1 >= this.maxAttempts;
    const retryInMs = dead ? 0 : (o.retryInMs ?? this.retryDelay(attempts));
    const status = dead ? 'dead' : 'failed';
    const res = await (await this.#store()).fail(this.stream, ref, { error: errorMessage(error), status, retryInMs });
    if (!res.ok) throw this.#lost(ref, 'fail');
    return { status, attempts: attempts + 1, retryInMs };
  }

  /** Gives the item back (pending, no attempt counted). */
  async release(lease: Lease): Promise<void> {
    const ref = this.#ref(lease);
    const [res] = await (await this.#store()).release(this.stream, [ref]);
    if (!res?.ok) throw this.#lost(ref, 'release');
  }

  async get(key: string): Promise<CheckpointItem | null> {
    return (await this.#store()).get(this.stream, parseWith(keySchema, key, 'item key'));
  }

  /** Items ordered by key, a page at a time. */
  async list(query: { status?: CheckpointStatus; limit?: number; cursor?: string | null } = {}): Promise<ListPage> {
    const q = parseWith(listSchema, query, 'list query');
    return (await this.#store()).list(this.stream, { status: q.status, limit: q.limit, cursor: q.cursor ?? null });
  }

  async stats(): Promise<CheckpointStats> {
    return (await this.#store()).stats(this.stream);
  }

  /** Dead items back to pending with their attempts reset; returns how many. */
  async retryDead(): Promise<number> {
    return (await this.#store()).retryDead(this.stream);
  }

  /** Deletes finished items (default status `done`) last changed at least `olderThanMs` ago. */
  async purge(options: { status?: Exclude<CheckpointStatus, 'processing'> | Exclude<CheckpointStatus, 'processing'>[]; olderThanMs?: number } = {}): Promise<number> {
    const o = parseWith(purgeSchema, options, 'purge options');
    const statuses = Array.isArray(o.status) ? o.status : [o.status];
    return (await this.#store()).purge(this.stream, { statuses: [...new Set(statuses)], olderThanMs: o.olderThanMs });
  }

  /**
   * Runs `handler` over the stream: claims ahead in batches, renews every held lease at a third
   * of the lease, aborts a handler's signal when its lease is lost or its deadline passes (and
   * then does not complete it), completes in batches within a short flush window, fails items
   * whose handler throws. Resolves with a summary when drained (`until: 'drained'`, the default)
   * or when `signal` aborts.
   */
  process(handler: WorkHandler, options: ProcessOptions): Promise<ProcessSummary> {
    return runProcess(
      {
        stream: this.stream,
        maxAttempts: this.maxAttempts,
        clock: this.#clock,
        backend: () => this.#store(),
        claim: (request) => this.#claims.call(request),
        complete: (rows) => this.#completions.call(rows),
        retryDelay: (attempts) => this.retryDelay(attempts),
        lost: (ref, operation) => this.#lost(ref, operation),
        // The host's emit is typed per event already; widen the map so the generic call checks.
        emit: (event, payload) => void (this as EventEmitter<Record<keyof CheckpointEvents, (payload: unknown) => void>>).emit(event, payload),
        listens: (event) => this.listenerCount(event) > 0,
      },
      handler,
      options,
    );
  }
}

/**
 * Makes a checkpoint over a store (a storage driver or a checkpoint store) for one stream.
 *
 * @example
 * ```ts
 * import { createCheckpoint, memoryStorage } from 'multisession';
 * const cp = createCheckpoint({ storage: memoryStorage(), stream: 'jobs', maxAttempts: 3 });
 * ```
 */
export function createCheckpoint(options: CheckpointOptions): Checkpoint {
  return new Checkpoint(options);
}
