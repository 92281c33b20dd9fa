import { z } from 'zod';
import { SessionNotFoundError } from '../../errors.js';
import type { CheckpointBackend } from '../../checkpoint/contract.js';
import { parseWith } from '../../validation.js';
import { cloneJson, systemClock, type Clock, type JsonValue } from '../../types.js';
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  AuditStore,
  CounterStore,
  HistoryStore,
  KvEntry,
  KvOperation,
  KvStore,
  StatDelta,
  StorageDriver,
  TransitionRecord,
} from '../contract.js';
import { guardStore } from '../guarded-storage.js';
import * as check from '../input-checks.js';
import { clockSchema, memoryCheckpointBackend } from './memory-checkpoint.js';
import { byKey, MemorySessions, type MemoryData } from './memory-sessions.js';
import { MemoryWebhooks } from './memory-webhooks.js';
import type { WebhookStore } from '../webhook-contract.js';
import { MemoryUnitData, MemoryUnits } from './memory-units.js';
import type { UnitStore } from '../units-contract.js';

/** Options of {@link memoryStorage}. */
export interface MemoryStorageOptions {
  /**
   * Most audit entries kept; the oldest are dropped beyond it so a long-running process does not
   * grow without bound. Default 10,000.
   */
  maxAuditEntries?: number;
  /** The clock of the store's checkpoint (lease expiry, retry times). Default the system clock. */
  clock?: Clock;
}

const optionsSchema = z.strictObject({
  maxAuditEntries: z.number().int().positive().default(10_000),
  clock: clockSchema.optional(),
});

/**
 * The in-memory storage driver: every session, KV entry, counter, transition, audit entry and
 * checkpoint item in Maps inside this process. Nothing outlives the process (`persistent: false`),
 * so the manager needs no secret key with it. It has every capability of the
 * {@link StorageDriver} contract and keeps its invariants: records are deep copies in and out,
 * `sessions.update` is a compare-and-swap on `version`, `kv.write` applies all or nothing,
 * deleting a session drops its KV, counters and history.
 *
 * Session operations are O(1); `sessions.list` sorts, `audit.list` scans from the newest entry.
 * `close()` keeps the data: a later `init()` opens the same store again (handy to simulate a
 * process restart in tests); calls between `close()` and `init()` throw `StorageError`.
 *
 * @example
 * ```ts
 * import { SessionManager, memoryStorage } from 'multisession';
 * const storage = memoryStorage();
 * const manager = new SessionManager({ storage, adapters: [myAdapter] });
 * await manager.open();
 * ```
 */
export function memoryStorage(options: MemoryStorageOptions = {}): StorageDriver {
  const { maxAuditEntries, clock } = parseWith(optionsSchema, options, 'memoryStorage options');
  return guardStore(new MemoryStorage(maxAuditEntries, clock ?? systemClock));
}

class MemoryStorage implements StorageDriver {
  readonly kind = 'memory';
  readonly persistent = false;
  readonly sessions: MemorySessions;
  readonly kv: KvStore;
  readonly counters: CounterStore;
  readonly history: HistoryStore;
  readonly audit: AuditStore;
  /** The checkpoint in this same process memory: one backend per driver (see docs/checkpoint.md). */
  readonly checkpoint: CheckpointBackend;
  /** Webhook endpoints and deliveries (`multisession/webhooks`). */
  readonly webhooks: WebhookStore = new MemoryWebhooks();
  /** Work units (`manager.units`). */
  readonly units: UnitStore;

  constructor(maxAudit: number, clock: Clock) {
    const data: MemoryData = { sessions: new Map(), kv: new Map(), stats: new Map(), transitions: new Map(), units: new MemoryUnitData() };
    const log = new AuditLog(maxAudit);
    this.sessions = new MemorySessions(data, (entry) => log.add(entry));
    this.kv = new MemoryKv(data);
    this.counters = new MemoryCounters(data);
    this.history = new MemoryHistory(data);
    this.audit = new MemoryAudit(log);
    this.checkpoint = memoryCheckpointBackend(clock);
    this.units = new MemoryUnits(data.units, data.sessions, (entry) => log.add(entry));
  }

  // Nothing to open or release: the data lives as long as this object (the guard refuses calls while closed).
  async init(): Promise<void> {}
  async close(): Promise<void> {}
  async ping(): Promise<void> {}
}

class MemoryKv implements KvStore {
  readonly #data: MemoryData;
  constructor(data: MemoryData) {
    this.#data = data;
  }

  async get(sessionId: string, key: string): Promise<JsonValue | undefined> {
    check.checkId(sessionId);
    check.checkKey(key);
    const value = this.#data.kv.get(sessionId)?.get(key);
    return value === undefined ? undefined : cloneJson(value);
  }

  async list(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]> {
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV list options') ?? '';
    const entries = this.#data.kv.get(sessionId);
    if (!entries) return [];
    const keys: string[] = [];
    for (const key of entries.keys()) if (key.startsWith(prefix)) keys.push(key);
    return keys.sort(byKey).map((key) => ({ key, value: cloneJson(entries.get(key)!) }));
  }

  async write(sessionId: string, ops: KvOperation[]): Promise<void> {
    check.checkId(sessionId);
    check.assertKvOperations(ops);
    if (!this.#data.sessions.has(sessionId)) throw new SessionNotFoundError(sessionId);
    const copies = ops.map((op) => (op.op === 'set' ? { ...op, value: cloneJson(op.value) } : op));
    let entries = this.#data.kv.get(sessionId);
    if (!entries) this.#data.kv.set(sessionId, (entries = new Map()));
    for (const op of copies) {
      if (op.op === 'set') entries.set(op.key, op.value);
      else entries.delete(op.key);
    }
    if (entries.size === 0) this.#data.kv.delete(sessionId);
  }

  async clear(sessionId: string, options?: { prefix?: string }): Promise<number> {
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV clear options');
    const entries = this.#data.kv.get(sessionId);
    if (!entries) return 0;
    if (!prefix) {
      this.#data.kv.delete(sessionId);
      return entries.size;
    }
    let removed = 0;
    for (const key of [...entries.keys()]) {
      if (key.startsWith(prefix)) {
        entries.delete(key);
        removed++;
      }
    }
    if (entries.size === 0) this.#data.kv.delete(sessionId);
    return removed;
  }
}

class MemoryCounters implements CounterStore {
  readonly #data: MemoryData;
  constructor(data: MemoryData) {
    this.#data = data;
  }

  async increment(deltas: StatDelta[]): Promise<void> {
    const input = check.checkDeltas(deltas);
    for (const { sessionId, name, delta } of input) {
      if (!this.#data.sessions.has(sessionId)) continue;
      let counters = this.#data.stats.get(sessionId);
      if (!counters) this.#data.stats.set(sessionId, (counters = Object.create(null) as Record<string, number>));
      counters[name] = (counters[name] ?? 0) + delta;
    }
  }

  async get(sessionId: string): Promise<Record<string, number>> {
    check.checkId(sessionId);
    return { ...this.#data.stats.get(sessionId) };
  }
}

class MemoryHistory implements HistoryStore {
  readonly #data: MemoryData;
  constructor(data: MemoryData) {
    this.#data = data;
  }

  async append(entries: TransitionRecord[], keepPerSession: number): Promise<void> {
    const input = check.checkTransitions(entries);
    const keep = check.checkPositive(keepPerSession, 'keepPerSession');
    const added = new Map<string, TransitionRecord[]>();
    for (const e of input) {
      if (!this.#data.sessions.has(e.sessionId)) continue;
      const t = { sessionId: e.sessionId, from: e.from, to: e.to, reason: e.reason, at: e.at };
      const batch = added.get(e.sessionId);
      if (batch) batch.push(t);
      else added.set(e.sessionId, [t]);
    }
    // Exact-size arrays (concat/slice): a pushed-to array reserves 16 slots, per session.
    for (const [sessionId, batch] of added) {
      const list = (this.#data.transitions.get(sessionId) ?? []).concat(batch);
      this.#data.transitions.set(sessionId, list.length > keep ? list.slice(list.length - keep) : list);
    }
  }

  async list(sessionId: string, limit: number): Promise<TransitionRecord[]> {
    check.checkId(sessionId);
    const n = check.checkPositive(limit, 'transition limit');
    const list = this.#data.transitions.get(sessionId);
    if (!list) return [];
    return list.slice(Math.max(0, list.length - n)).map((t) => ({ ...t }));
  }
}

/** The entries of the audit log, shared by the `audit` capability and the sessions store's writes. */
class AuditLog {
  readonly #max: number;
  /** Oldest first; entries before #start are dropped (compacted now and then). */
  #entries: AuditEntry[] = [];
  #start = 0;
  #seq = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** Appends one checked entry at once. */
  add(e: AuditInput): void {
    // A literal of fixed shape: tens of thousands of entries share one hidden class.
    this.#entries.push({ id: ++this.#seq, at: e.at, sessionId: e.sessionId, action: e.action, actor: e.actor, details: cloneJson(e.details) });
    const excess = this.#entries.length - this.#start - this.#max;
    if (excess > 0) this.#start += excess;
    if (this.#start > 1024 && this.#start * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#start);
      this.#start = 0;
    }
  }

  /** Drops the entries older than `before`; returns how many. */
  prune(before: number): number {
    const kept = this.#entries.slice(this.#start).filter((e) => e.at >= before);
    const removed = this.#entries.length - this.#start - kept.length;
    this.#entries = kept;
    this.#start = 0;
    return removed;
  }

  list(query: AuditQuery): AuditEntry[] {
    const q = check.checkAuditQuery(query);
    const out: AuditEntry[] = [];
    for (let i = this.#entries.length - 1; i >= this.#start && out.length < q.limit; i--) {
      const entry = this.#entries[i]!;
      if (q.since !== undefined && entry.at < q.since) continue;
      if (q.sessionId !== undefined && entry.sessionId !== q.sessionId) continue;
      if (q.action !== undefined && entry.action !== q.action) continue;
      out.push(cloneJson(entry));
    }
    return out;
  }
}

class MemoryAudit implements AuditStore {
  readonly #log: AuditLog;
  constructor(log: AuditLog) {
    this.#log = log;
  }

  async append(entries: AuditInput[]): Promise<void> {
    for (const e of check.checkAuditInputs(entries)) this.#log.add(e);
  }

  async list(query: AuditQuery): Promise<AuditEntry[]> {
    return this.#log.list(query);
  }

  async prune(before: number): Promise<number> {
    return this.#log.prune(check.checkTime(before, 'before'));
  }
}
