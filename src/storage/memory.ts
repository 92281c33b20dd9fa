import { z } from 'zod';
import {
  ConflictError,
  DuplicateCredentialsError,
  SessionExistsError,
  SessionNotFoundError,
  StorageError,
  ValidationError,
  parseWith,
  type ValidationIssue,
} from '../errors.js';
import type { CheckpointBackend } from '../checkpoint/contract.js';
import { createMemoryCheckpointBackend } from '../checkpoint/memory-backend.js';
import { DESIRED_STATES, HEALTH_STATUSES, SESSION_STATES } from '../manager/lifecycle.js';
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

// ---------------------------------------------------------------------------------------------
// Input checks shared by every method. Drivers take plain data from the manager; a malformed
// value is refused with a ValidationError before anything is written.
// ---------------------------------------------------------------------------------------------

const MAX_JSON_DEPTH = 256;

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Finds the first part of `value` that JSON cannot represent faithfully: `undefined`, functions,
 * symbols, bigints, non-finite numbers, class instances (Date, Map …), sparse arrays and cycles.
 * Returns null when `value` is a {@link JsonValue}.
 *
 * @example
 * ```ts
 * findJsonProblem({ a: [1, () => 2] }); // { path: ['a', 1], message: 'must be JSON … got function' }
 * findJsonProblem({ a: [1, 2] });       // null
 * ```
 */
export function findJsonProblem(value: unknown, path: (string | number)[] = []): ValidationIssue | null {
  const seen = new Set<object>();
  const walk = (v: unknown, at: (string | number)[], depth: number): ValidationIssue | null => {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return null;
      case 'number':
        return Number.isFinite(v) ? null : { path: at, message: `must be a finite number, got ${String(v)}` };
      case 'object': {
        if (v === null) return null;
        if (depth > MAX_JSON_DEPTH) return { path: at, message: `nests deeper than ${MAX_JSON_DEPTH} levels` };
        if (seen.has(v)) return { path: at, message: 'is circular; JSON values cannot refer to themselves' };
        seen.add(v);
        let problem: ValidationIssue | null = null;
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length && !problem; i++) {
            problem = i in v ? walk(v[i], [...at, i], depth + 1) : { path: [...at, i], message: 'is a hole in a sparse array' };
          }
        } else if (isPlainObject(v)) {
          for (const key of Object.keys(v)) {
            problem = walk((v as Record<string, unknown>)[key], [...at, key], depth + 1);
            if (problem) break;
          }
        } else {
          const name = (v as { constructor?: { name?: string } }).constructor?.name ?? 'object';
          problem = { path: at, message: `must be plain JSON (object, array, string, number, boolean or null), got a ${name}` };
        }
        seen.delete(v);
        return problem;
      }
      default:
        return { path: at, message: `must be JSON (object, array, string, number, boolean or null), got ${typeof v}` };
    }
  };
  return walk(value, path, 0);
}

/**
 * Checks a `kvWrite` batch: every operation is `set` with a string key and a JSON value, or
 * `delete` with a string key. Throws a {@link ValidationError} naming the bad operation.
 * Drivers call it before writing anything, so a bad batch changes nothing.
 *
 * @example
 * ```ts
 * assertKvOperations([{ op: 'set', key: 'a', value: () => 1 }]); // throws ValidationError at ops.0.value
 * ```
 */
export function assertKvOperations(ops: unknown): asserts ops is KvOperation[] {
  if (!Array.isArray(ops)) throw new ValidationError('KV operations', [{ path: ['ops'], message: 'must be an array' }]);
  const issues: ValidationIssue[] = [];
  ops.forEach((raw: unknown, i) => {
    const op = raw as Partial<{ op: unknown; key: unknown; value: unknown }> | null;
    if (!op || typeof op !== 'object') {
      issues.push({ path: ['ops', i], message: 'must be { op: "set", key, value } or { op: "delete", key }' });
      return;
    }
    if (typeof op.key !== 'string' || op.key.length === 0) {
      issues.push({ path: ['ops', i, 'key'], message: 'must be a non-empty string' });
    }
    if (op.op === 'set') {
      if (!('value' in op) || op.value === undefined) {
        issues.push({ path: ['ops', i, 'value'], message: 'is missing; use { op: "delete" } to remove a key' });
      } else {
        const problem = findJsonProblem(op.value, ['ops', i, 'value']);
        if (problem) issues.push(problem);
      }
    } else if (op.op !== 'delete') {
      issues.push({ path: ['ops', i, 'op'], message: 'must be "set" or "delete"' });
    }
  });
  if (issues.length) throw new ValidationError('KV operations', issues);
}

const jsonValue = z.custom<JsonValue>((v) => findJsonProblem(v) === null, 'must be a JSON value');
const jsonObject = z.custom<Record<string, JsonValue>>(
  (v) => !!v && typeof v === 'object' && !Array.isArray(v) && findJsonProblem(v) === null,
  'must be a JSON object',
);
const id = z.string().min(1, 'must be a non-empty string');
const time = z.number().finite();
const sessionErrorSchema = z.object({ code: z.string(), message: z.string(), at: time }).nullable();

const newRecordSchema = z.object({
  id,
  platform: z.string().min(1),
  config: jsonObject,
  labels: z.record(z.string(), z.string()),
  metadata: jsonValue,
  priority: z.number().finite(),
  capacity: z.number().finite().nullable(),
  autoStart: z.boolean(),
  idleTimeoutMs: z.number().finite().nullable(),
  allowSharedCredentials: z.boolean(),
  desiredState: z.enum(DESIRED_STATES),
  credentials: z.string().nullable(),
  credentialsFingerprint: z.string().nullable(),
  state: z.enum(SESSION_STATES),
  health: z.enum(HEALTH_STATUSES),
  lastError: sessionErrorSchema,
  lastActivityAt: time.nullable(),
  createdAt: time,
  updatedAt: time,
});

const patchSchema = newRecordSchema
  .pick({
    config: true,
    labels: true,
    metadata: true,
    priority: true,
    capacity: true,
    autoStart: true,
    idleTimeoutMs: true,
    allowSharedCredentials: true,
    desiredState: true,
    credentials: true,
    credentialsFingerprint: true,
  })
  .partial()
  .extend({ updatedAt: time });

const statusSchema = z.array(
  z.object({
    id,
    state: z.enum(SESSION_STATES).optional(),
    health: z.enum(HEALTH_STATUSES).optional(),
    lastError: sessionErrorSchema.optional(),
    lastActivityAt: time.nullable().optional(),
  }),
);

const rewriteSchema = z.array(
  z.object({
    id,
    credentials: z.string().nullable(),
    credentialsFingerprint: z.string().nullable(),
    expectedVersion: z.number().int(),
    updatedAt: time,
  }),
);

const deltasSchema = z.array(z.object({ sessionId: id, name: z.string().min(1), delta: z.number().finite() }));

const transitionsSchema = z.array(
  z.object({
    sessionId: id,
    from: z.enum(SESSION_STATES),
    to: z.enum(SESSION_STATES),
    reason: z.string(),
    at: time,
  }),
);

const auditInputsSchema = z.array(
  z.object({
    at: time,
    sessionId: id.nullable(),
    action: z.string().min(1),
    actor: z.string().nullable(),
    details: jsonObject,
  }),
);

const auditQuerySchema = z
  .object({
    sessionId: z.string().optional(),
    action: z.string().optional(),
    since: time.optional(),
    limit: z.number().int().positive().default(100),
  })
  .prefault({});

const positiveInt = z.number().int().positive();
const prefixOptions = z.object({ prefix: z.string().optional() }).optional();

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
    const input = parseWith(newRecordSchema, record, 'session record');
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
    const stored = this.#sessions.get(parseWith(id, sessionId, 'session id'));
    return stored ? recordOf(stored) : null;
  }

  async listSessions(): Promise<SessionRecord[]> {
    this.#check();
    return [...this.#sessions.keys()].sort(byKey).map((k) => recordOf(this.#sessions.get(k)!));
  }

  async updateSession(sessionId: string, patch: SessionPatch, expectedVersion: number): Promise<SessionRecord> {
    this.#check();
    parseWith(id, sessionId, 'session id');
    const input = parseWith(patchSchema, patch, 'session patch');
    parseWith(z.number().int(), expectedVersion, 'expected version');
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
    const holder = this.#holderOf(next.credentialsFingerprint, next.allowSharedCredentials, sessionId);
    if (holder !== undefined) throw new DuplicateCredentialsError(sessionId, holder);
    this.#unindex(stored.credentialsFingerprint, sessionId);
    this.#index(next.credentialsFingerprint, sessionId);
    const kept = recordOf(next);
    this.#sessions.set(sessionId, kept);
    return recordOf(kept);
  }

  async saveStatus(updates: StatusUpdate[]): Promise<void> {
    this.#check();
    const input = parseWith(statusSchema, updates, 'status updates');
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
    parseWith(id, sessionId, 'session id');
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
    const input = parseWith(rewriteSchema, rows, 'credential rewrites');
    const ids = new Set<string>();
    for (const row of input) {
      if (ids.has(row.id)) {
        throw new ValidationError('credential rewrites', [{ path: ['rows'], message: `session "${row.id}" is listed twice` }]);
      }
      ids.add(row.id);
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
    parseWith(id, sessionId, 'session id');
    parseWith(z.string(), key, 'KV key');
    const value = this.#kv.get(sessionId)?.get(key);
    return value === undefined ? undefined : cloneJson(value);
  }

  async kvList(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]> {
    this.#check();
    parseWith(id, sessionId, 'session id');
    const prefix = parseWith(prefixOptions, options, 'KV list options')?.prefix ?? '';
    const entries = this.#kv.get(sessionId);
    if (!entries) return [];
    const keys: string[] = [];
    for (const key of entries.keys()) if (key.startsWith(prefix)) keys.push(key);
    return keys.sort(byKey).map((key) => ({ key, value: cloneJson(entries.get(key)!) }));
  }

  async kvWrite(sessionId: string, ops: KvOperation[]): Promise<void> {
    this.#check();
    parseWith(id, sessionId, 'session id');
    assertKvOperations(ops);
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
    parseWith(id, sessionId, 'session id');
    const prefix = parseWith(prefixOptions, options, 'KV clear options')?.prefix;
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
    const input = parseWith(deltasSchema, deltas, 'stat deltas');
    for (const { sessionId, name, delta } of input) {
      if (!this.#sessions.has(sessionId)) continue;
      let counters = this.#stats.get(sessionId);
      if (!counters) this.#stats.set(sessionId, (counters = Object.create(null) as Record<string, number>));
      counters[name] = (counters[name] ?? 0) + delta;
    }
  }

  async getStats(sessionId: string): Promise<Record<string, number>> {
    this.#check();
    parseWith(id, sessionId, 'session id');
    return { ...this.#stats.get(sessionId) };
  }

  // --- history ------------------------------------------------------------------------------

  async appendTransitions(entries: TransitionRecord[], keepPerSession: number): Promise<void> {
    this.#check();
    const input = parseWith(transitionsSchema, entries, 'transitions');
    const keep = parseWith(positiveInt, keepPerSession, 'keepPerSession');
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
    parseWith(id, sessionId, 'session id');
    const n = parseWith(positiveInt, limit, 'transition limit');
    const list = this.#transitions.get(sessionId);
    if (!list) return [];
    return list.slice(Math.max(0, list.length - n)).map((t) => ({ ...t }));
  }

  // --- audit --------------------------------------------------------------------------------

  async appendAudit(entries: AuditInput[]): Promise<void> {
    this.#check();
    const input = parseWith(auditInputsSchema, entries, 'audit entries');
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
    const q = parseWith(auditQuerySchema, query, 'audit query');
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
