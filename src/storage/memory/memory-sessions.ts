import { DuplicateCredentialsError, SessionExistsError } from '../../errors.js';
import { cloneJson, type JsonValue } from '../../types.js';
import {
  touchesCredentials,
  type AuditInput,
  type CredentialRewrite,
  type NewSessionRecord,
  type SessionPatch,
  type SessionRecord,
  type SessionStore,
  type StatusUpdate,
  type TransitionRecord,
  type CreateOptions,
  type WriteOptions,
} from '../contract.js';
import * as check from '../input-checks.js';
import type { MemoryUnitData } from './memory-units.js';

/** The data of one memory store, shared by its capabilities. */
export interface MemoryData {
  readonly sessions: Map<string, SessionRecord>;
  readonly kv: Map<string, Map<string, JsonValue>>;
  readonly stats: Map<string, Record<string, number>>;
  readonly transitions: Map<string, TransitionRecord[]>;
  readonly units: MemoryUnitData;
}

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

export const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** For {@link recordOf}: the new stored record shares the old one's values (never handed out, so never changed). */
const share = <T>(value: T): T => value;

/**
 * A stored record as one fixed-shape literal: every record shares one hidden class with all
 * fields in-object (a spread plus an added `version` would give each an extra property store).
 */
function recordOf(r: Omit<SessionRecord, 'readError' | 'version'>, version: number, copy: typeof cloneJson = cloneJson): SessionRecord {
  return {
    id: r.id,
    platform: r.platform,
    config: copy(r.config),
    labels: copy(r.labels),
    metadata: copy(r.metadata),
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
    lastError: r.lastError === null || copy === share ? r.lastError : { code: r.lastError.code, message: r.lastError.message, at: r.lastError.at },
    lastActivityAt: r.lastActivityAt,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    version,
  };
}

/**
 * The sessions of the memory store: O(1) reads and writes, `list` sorts. Records are deep copies
 * in and out; `update` and `replaceCredentials` are compare-and-swaps on `version` that return
 * `null` when lost; a fingerprint index keeps the duplicate-credential guard O(1). A write's audit
 * entry goes to `audit` in the same synchronous step as the change (nothing can come between).
 */
export class MemorySessions implements SessionStore {
  readonly #data: MemoryData;
  readonly #audit: (entry: AuditInput) => void;
  /** credentialsFingerprint → the id holding it, or a Set when shared (allowSharedCredentials). */
  readonly #fingerprints = new Map<string, string | Set<string>>();

  constructor(data: MemoryData, audit: (entry: AuditInput) => void) {
    this.#data = data;
    this.#audit = audit;
  }

  async create(record: NewSessionRecord, options?: CreateOptions): Promise<SessionRecord> {
    const input = check.checkNewRecord(record);
    const { audit, maxSessions } = check.checkCreateOptions(options);
    if (this.#data.sessions.has(input.id)) throw new SessionExistsError(input.id);
    if (maxSessions !== undefined && this.#data.sessions.size >= maxSessions) throw check.storeFull(maxSessions);
    const holder = this.#holderOf(input.credentialsFingerprint, input.allowSharedCredentials, input.id);
    if (holder !== undefined) throw new DuplicateCredentialsError(input.id, holder);
    const stored = recordOf(input, 1);
    this.#data.sessions.set(stored.id, stored);
    this.#index(stored.credentialsFingerprint, stored.id);
    if (audit) this.#audit(audit);
    return recordOf(stored, stored.version);
  }

  async get(sessionId: string): Promise<SessionRecord | null> {
    const stored = this.#data.sessions.get(check.checkId(sessionId));
    return stored ? recordOf(stored, stored.version) : null;
  }

  async list(): Promise<SessionRecord[]> {
    const sessions = this.#data.sessions;
    return [...sessions.keys()].sort(byKey).map((k) => {
      const r = sessions.get(k)!;
      return recordOf(r, r.version);
    });
  }

  async update(sessionId: string, patch: SessionPatch, expectedVersion: number, options?: WriteOptions): Promise<SessionRecord | null> {
    check.checkId(sessionId);
    const input = check.checkPatch(patch);
    check.checkVersion(expectedVersion);
    const audit = check.checkWriteOptions(options);
    const stored = this.#data.sessions.get(sessionId);
    if (!stored || stored.version !== expectedVersion) return null;
    // The stored record's own JSON values are never handed out, so the new one shares those the
    // patch leaves alone; only patched values are copied in.
    const next: SessionRecord = { ...stored };
    const writable = next as unknown as Record<string, unknown>;
    for (const field of PATCH_FIELDS) {
      if (input[field] !== undefined) writable[field] = cloneJson(input[field]);
    }
    next.updatedAt = input.updatedAt;
    next.version = stored.version + 1;
    const holder = touchesCredentials(input) ? this.#holderOf(next.credentialsFingerprint, next.allowSharedCredentials, sessionId) : undefined;
    if (holder !== undefined) throw new DuplicateCredentialsError(sessionId, holder);
    if (next.credentialsFingerprint !== stored.credentialsFingerprint) {
      this.#unindex(stored.credentialsFingerprint, sessionId);
      this.#index(next.credentialsFingerprint, sessionId);
    }
    const kept = recordOf(next, next.version, share);
    this.#data.sessions.set(sessionId, kept);
    if (audit) this.#audit(audit);
    return recordOf(kept, kept.version);
  }

  async saveStatus(updates: StatusUpdate[]): Promise<void> {
    const input = check.checkStatus(updates);
    for (const u of input) {
      const stored = this.#data.sessions.get(u.id);
      if (!stored) continue;
      if (u.state !== undefined) stored.state = u.state;
      if (u.health !== undefined) stored.health = u.health;
      if (u.lastError !== undefined) stored.lastError = u.lastError === null ? null : { ...u.lastError };
      if (u.lastActivityAt !== undefined) stored.lastActivityAt = u.lastActivityAt;
    }
  }

  async delete(sessionId: string, options?: WriteOptions): Promise<boolean> {
    check.checkId(sessionId);
    const audit = check.checkWriteOptions(options);
    const stored = this.#data.sessions.get(sessionId);
    if (!stored) return false;
    this.#data.sessions.delete(sessionId);
    this.#unindex(stored.credentialsFingerprint, sessionId);
    this.#data.kv.delete(sessionId);
    this.#data.stats.delete(sessionId);
    this.#data.transitions.delete(sessionId);
    this.#data.units.release(sessionId);
    if (audit) this.#audit(audit);
    return true;
  }

  async replaceCredentials(rows: CredentialRewrite[], options?: WriteOptions): Promise<SessionRecord[] | null> {
    const input = check.checkRewrites(rows); // also refuses an id listed twice
    const audit = check.checkWriteOptions(options);
    const sessions = this.#data.sessions;
    if (input.some((row) => sessions.get(row.id)?.version !== row.expectedVersion)) return null;
    if (audit) this.#audit(audit);
    return input.map((row) => {
      const stored = sessions.get(row.id)!;
      const next: SessionRecord = {
        ...stored,
        credentials: row.credentials,
        credentialsFingerprint: row.credentialsFingerprint,
        updatedAt: row.updatedAt,
        version: stored.version + 1,
      };
      this.#unindex(stored.credentialsFingerprint, row.id);
      this.#index(next.credentialsFingerprint, row.id);
      const kept = recordOf(next, next.version);
      sessions.set(row.id, kept);
      return recordOf(kept, kept.version);
    });
  }

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
}
