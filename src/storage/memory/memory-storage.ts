import { z } from 'zod';
import {
  ConflictError,
  DuplicateCredentialsError,
  SessionExistsError,
  SessionNotFoundError,
  StorageError,
} from '../errors.js';
import { parseWith } from '../validation.js';
import type { CheckpointBackend } from '../checkpoint/contract.js';
import { createMemoryCheckpointBackend } from '../checkpoint/memory-backend.js';
import { cloneJson, type JsonValue } from '../types.js';
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  CredentialRewrite,
  KvEntry,
  KvOperation,
  NewSessionRecord,
  SessionPatch,
  SessionRecord,
  StatDelta,
  StatusUpdate,
  StorageDriver,
  TransitionRecord,
} from './driver.js';
import { touchesCredentials } from './driver.js';
import * as check from './input-checks.js';

/** Options of {@link memoryStorage}. */
export interface MemoryStorageOptions {
  /**
   * Most audit entries kept; the oldest are dropped beyond it so a long-running process does not
   * grow without bound. Default 100,000.
   */
  maxAuditEntries?: number;
}

const optionsSchema = z.strictObject({
  maxAuditEntries: z.number().int().positive().default(10_000),
});

const PATCH_FIELDS = [
  'config',
  'labels',
  'metadata',
  'priority',
  'capacity',
  'autoStart',
  'idleTimeoutMs',
  'allowSharedCredentials',
  'desiredState',
  'credentials',
  'credentialsFingerprint',
] as const satisfies readonly (keyof SessionPatch)[];

const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A stored record as one fixed-shape literal: every record shares one hidden class with all
 * fields in-object (a spread plus an added `version` would give each an extra property store).
 */
function recordOf(r: Omit<SessionRecord, 'readError'>): SessionRecord {
  return {
    id: r.id,
    platform: r.platform,
    config: cloneJson(r.config),
    labels: cloneJson(r.labels),
    metadata: cloneJson(r.metadata),
    priority: r.priority,
    capacity: r.capacity,
    autoStart: r.autoStart,
    idleTimeoutMs: r.idleTimeoutMs,
    allowSharedCredentials: r.allowSharedCredentials,
    desiredState: r.desiredState,
    credentials: r.credentials,
    credentialsFingerprint: r.credentialsFingerprint,
    state: r.state,
    health: r.health,
    lastError: r.lastError === null ? null : { code: r.lastError.code, message: r.lastError.message, at: r.lastError.at },
    lastActivityAt: r.lastActivityAt,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    version: r.version,
  };
}

/**
 * The in-memory storage driver: every session, KV entry, counter, transition and audit entry in
 * Maps inside this process. Nothing outlives the process (`persistent: false`), so the manager
 * needs no secret key with it. It keeps every invariant of the {@link StorageDriver} contract:
 * records are deep copies in and out, `updateSession` is a compare-and-swap on `version`,
 * `kvWrite` applies all or nothing, deleting a session drops its KV, counters and history.
 *
 * Session operations are O(1); `listSessions` sorts, `listAudit` scans from the newest entry.
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
  const { maxAuditEntries } = parseWith(optionsSchema, options, 'memoryStorage options');
  return new MemoryStorage(maxAuditEntries);
}

class MemoryStorage implements StorageDriver {
  readonly kind = 'memory';
  readonly persistent = false;

  readonly #maxAudit: number;
  #open = false;
  readonly #sessions = new Map<string, SessionRecord>();
  /** credentialsFingerprint → the id holding it, or a Set when shared (allowSharedCredentials). */
  readonly #fingerprints = new Map<string, string | Set<string>>();
  readonly #kv = new Map<string, Map<string, JsonValue>>();
  readonly #stats = new Map<string, Record<string, number>>();
  readonly #transitions = new Map<string, TransitionRecord[]>();
  /** Oldest first; entries before #auditStart are dropped (compacted now and then). */
  #audit: AuditEntry[] = [];
  #auditStart = 0;
  #auditSeq = 0;

  constructor(maxAudit: number) {
    this.#maxAudit = maxAudit;
  }

  #check(): void {
    if (!this.#open) throw new StorageError('[multisession] [memory] the store is not open; call init() first.');
  }

  async init(): Promise<void> {
    this.#open = true;
  }

  async close(): Promise<void> {
    this.#open = false;
  }

  async ping(): Promise<void> {
    this.#check();
  }

  #checkpoint: CheckpointBackend | null = null;

  /** The checkpoint in this same process memory: one backend per driver (see docs/checkpoint.md). */
  checkpoint(): CheckpointBackend {
    this.#checkpoint ??= createMemoryCheckpointBackend();
    return this.#checkpoint;
  }

  // --- sessions -----------------------------------------------------------------------------

  #holderOf(fingerprint: string | null, allowShared: boolean, self: string): string | undefined {
    if (fingerprint === null || allowShared) return undefined;
    const holders = this.#fingerprints.get(fingerprint);
    if (holders === undefined) return undefined;
    if (typeof holders === 'string') return holders === self ? undefined : holders;
    for (const other of holders) if (other !== self) return other;
    return undefined;
  }

  #index(fingerprint: string | null, sessionId: string): void {
    if (fingerprint === null) return;
    const holders = this.#fingerprints.get(fingerprint);
    if (holders === undefined) this.#fingerprints.set(fingerprint, sessionId);
    else if (typeof holders === 'string') {
      if (holders !== sessionId) this.#fingerprints.set(fingerprint, new Set([holders, sessionId]));
    } else holders.add(sessionId);
  }

  #unindex(fingerprint: string | null, sessionId: string): void {
    if (fingerprint === null) return;
    const holders = this.#fingerprints.get(fingerprint);
    if (holders === undefined) return;
    if (typeof holders === 'string') {
      if (holders === sessionId) this.#fingerprints.delete(fingerprint);
      return;
    }
    holders.delete(sessionId);
    if (holders.size === 1) this.#fingerprints.set(fingerprint, holders.values().next().value!);
    else if (holders.size === 0) this.#fingerprints.delete(fingerprint);
  }

  async createSession(record: NewSessionRecord): Promise<SessionRecord> {
    this.#check();
    const input = check.checkNewRecord(record);
    if (this.#sessions.has(input.id)) throw new SessionExistsError(input.id);
    const holder = this.#holderOf(input.credentialsFingerprint, input.allowSharedCredentials, input.id);
    if (holder !== undefined) throw new DuplicateCredentialsError(input.id, holder);
    const stored = recordOf({ ...input, version: 1 });
    this.#sessions.set(stored.id, stored);
    this.#index(stored.credentialsFingerprint, stored.id);
    return recordOf(stored);
  }

  async getSession(sessionId: string): Promise<SessionRecord | null> {
    this.#check();
    const stored = this.#sessions.get(check.checkId(sessionId));
    return stored ? recordOf(stored) : null;
  }

  async listSessions(): Promise<SessionRecord[]> {
    this.#check();
    return [...this.#sessions.keys()].sort(byKey).map((k) => recordOf(this.#sessions.get(k)!));
  }

  async updateSession(sessionId: string, patch: SessionPatch, expectedVersion: number): Promise<SessionRecord> {
    this.#check();
    check.checkId(sessionId);
    const input = check.checkPatch(patch);
    check.checkVersion(expectedVersion);
    const stored = this.#sessions.get(sessionId);
    if (!stored) throw new SessionNotFoundError(sessionId);
    if (stored.version !== expectedVersion) {
      throw new ConflictError(
        `Session "${sessionId}" is at version ${stored.version}, not ${expectedVersion}: it changed meanwhile; read it again and retry.`,
        { context: { sessionId, expectedVersion, actualVersion: stored.version } },
      );
    }
    const next: SessionRecord = { ...stored };
    const writable = next as unknown as Record<string, unknown>;
    for (const field of PATCH_FIELDS) {
      if (input[field] !== undefined) writable[field] = cloneJson(input[field]);
    }
    next.updatedAt = input.updatedAt;
    next.version = stored.version + 1;
    const holder = touchesCredentials(input) ? this.#holderOf(next.credentialsFingerprint, next.allowSharedCredentials, sessionId) : undefined;
    if (holder !== undefined) throw new DuplicateCredentialsError(sessionId, holder);
    this.#unindex(stored.credentialsFingerprint, sessionId);
    this.#index(next.credentialsFingerprint, sessionId);
    const kept = recordOf(next);
    this.#sessions.set(sessionId, kept);
    return recordOf(kept);
  }

  async saveStatus(updates: StatusUpdate[]): Promise<void> {
    this.#check();
    const input = check.checkStatus(updates);
    for (const u of input) {
      const stored = this.#sessions.get(u.id);
      if (!stored) continue;
      if (u.state !== undefined) stored.state = u.state;
      if (u.health !== undefined) stored.health = u.health;
      if (u.lastError !== undefined) stored.lastError = u.lastError === null ? null : { ...u.lastError };
      if (u.lastActivityAt !== undefined) stored.lastActivityAt = u.lastActivityAt;
    }
  }

  async deleteSession(sessionId: string): Promise<boolean> {
    this.#check();
    check.checkId(sessionId);
    const stored = this.#sessions.get(sessionId);
    if (!stored) return false;
    this.#sessions.delete(sessionId);
    this.#unindex(stored.credentialsFingerprint, sessionId);
    this.#kv.delete(sessionId);
    this.#stats.delete(sessionId);
    this.#transitions.delete(sessionId);
    return true;
  }

  async replaceCredentials(rows: CredentialRewrite[]): Promise<SessionRecord[]> {
    this.#check();
    const input = check.checkRewrites(rows); // also refuses an id listed twice
    for (const row of input) {
      const stored = this.#sessions.get(row.id);
      if (!stored) throw new SessionNotFoundError(row.id);
      if (stored.version !== row.expectedVersion) {
        throw new ConflictError(
          `Session "${row.id}" is at version ${stored.version}, not ${row.expectedVersion}: it changed meanwhile; nothing was rewritten, read it again and retry.`,
          { context: { sessionId: row.id, expectedVersion: row.expectedVersion, actualVersion: stored.version } },
        );
      }
    }
    return input.map((row) => {
      const stored = this.#sessions.get(row.id)!;
      const next: SessionRecord = {
        ...stored,
        credentials: row.credentials,
        credentialsFingerprint: row.credentialsFingerprint,
        updatedAt: row.updatedAt,
        version: stored.version + 1,
      };
      this.#unindex(stored.credentialsFingerprint, row.id);
      this.#index(next.credentialsFingerprint, row.id);
      const kept = recordOf(next);
      this.#sessions.set(row.id, kept);
      return recordOf(kept);
    });
  }

  // --- per-session KV -----------------------------------------------------------------------

  async kvGet(sessionId: string, key: string): Promise<JsonValue | undefined> {
    this.#check();
    check.checkId(sessionId);
    check.checkKey(key);
    const value = this.#kv.get(sessionId)?.get(key);
    return value === undefined ? undefined : cloneJson(value);
  }

  async kvList(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]> {
    this.#check();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV list options') ?? '';
    const entries = this.#kv.get(sessionId);
    if (!entries) return [];
    const keys: string[] = [];
    for (const key of entries.keys()) if (key.startsWith(prefix)) keys.push(key);
    return keys.sort(byKey).map((key) => ({ key, value: cloneJson(entries.get(key)!) }));
  }

  async kvWrite(sessionId: string, ops: KvOperation[]): Promise<void> {
    this.#check();
    check.checkId(sessionId);
    check.assertKvOperations(ops);
    if (!this.#sessions.has(sessionId)) throw new SessionNotFoundError(sessionId);
    const copies = ops.map((op) => (op.op === 'set' ? { ...op, value: cloneJson(op.value) } : op));
    let entries = this.#kv.get(sessionId);
    if (!entries) this.#kv.set(sessionId, (entries = new Map()));
    for (const op of copies) {
      if (op.op === 'set') entries.set(op.key, op.value);
      else entries.delete(op.key);
    }
    if (entries.size === 0) this.#kv.delete(sessionId);
  }

  async kvClear(sessionId: string, options?: { prefix?: string }): Promise<number> {
    this.#check();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV clear options');
    const entries = this.#kv.get(sessionId);
    if (!entries) return 0;
    if (!prefix) {
      this.#kv.delete(sessionId);
      return entries.size;
    }
    let removed = 0;
    for (const key of [...entries.keys()]) {
      if (key.startsWith(prefix)) {
        entries.delete(key);
        removed++;
      }
    }
    if (entries.size === 0) this.#kv.delete(sessionId);
    return removed;
  }

  // --- counters -----------------------------------------------------------------------------

  async incrementStats(deltas: StatDelta[]): Promise<void> {
    this.#check();
    const input = check.checkDeltas(deltas);
    for (const { sessionId, name, delta } of input) {
      if (!this.#sessions.has(sessionId)) continue;
      let counters = this.#stats.get(sessionId);
      if (!counters) this.#stats.set(sessionId, (counters = Object.create(null) as Record<string, number>));
      counters[name] = (counters[name] ?? 0) + delta;
    }
  }

  async getStats(sessionId: string): Promise<Record<string, number>> {
    this.#check();
    check.checkId(sessionId);
    return { ...this.#stats.get(sessionId) };
  }

  // --- history ------------------------------------------------------------------------------

  async appendTransitions(entries: TransitionRecord[], keepPerSession: number): Promise<void> {
    this.#check();
    const input = check.checkTransitions(entries);
    const keep = check.checkPositive(keepPerSession, 'keepPerSession');
    const added = new Map<string, TransitionRecord[]>();
    for (const e of input) {
      if (!this.#sessions.has(e.sessionId)) continue;
      const t = { sessionId: e.sessionId, from: e.from, to: e.to, reason: e.reason, at: e.at };
      const batch = added.get(e.sessionId);
      if (batch) batch.push(t);
      else added.set(e.sessionId, [t]);
    }
    // Exact-size arrays (concat/slice): a pushed-to array reserves 16 slots, per session.
    for (const [sessionId, batch] of added) {
      const list = (this.#transitions.get(sessionId) ?? []).concat(batch);
      this.#transitions.set(sessionId, list.length > keep ? list.slice(list.length - keep) : list);
    }
  }

  async listTransitions(sessionId: string, limit: number): Promise<TransitionRecord[]> {
    this.#check();
    check.checkId(sessionId);
    const n = check.checkPositive(limit, 'transition limit');
    const list = this.#transitions.get(sessionId);
    if (!list) return [];
    return list.slice(Math.max(0, list.length - n)).map((t) => ({ ...t }));
  }

  // --- audit --------------------------------------------------------------------------------

  async appendAudit(entries: AuditInput[]): Promise<void> {
    this.#check();
    const input = check.checkAuditInputs(entries);
    for (const e of input) {
      // A literal of fixed shape: tens of thousands of entries share one hidden class.
      this.#audit.push({ id: ++this.#auditSeq, at: e.at, sessionId: e.sessionId, action: e.action, actor: e.actor, details: cloneJson(e.details) });
    }
    const excess = this.#audit.length - this.#auditStart - this.#maxAudit;
    if (excess > 0) this.#auditStart += excess;
    if (this.#auditStart > 1024 && this.#auditStart * 2 > this.#audit.length) {
      this.#audit = this.#audit.slice(this.#auditStart);
      this.#auditStart = 0;
    }
  }

  async listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    this.#check();
    const q = check.checkAuditQuery(query);
    const out: AuditEntry[] = [];
    for (let i = this.#audit.length - 1; i >= this.#auditStart && out.length < q.limit; i--) {
      const entry = this.#audit[i]!;
      if (q.since !== undefined && entry.at < q.since) continue;
      if (q.sessionId !== undefined && entry.sessionId !== q.sessionId) continue;
      if (q.action !== undefined && entry.action !== q.action) continue;
      out.push(cloneJson(entry));
    }
    return out;
  }
}
