import type { AuthInput } from '../adapters/contract.js';
import { AUTH_PREFIX, CONTEXT_PREFIX } from '../adapters/session-kv.js';
import { z } from 'zod';
import { parseAdapterInput, type Adapter } from '../adapters/contract.js';
import { DuplicateCredentialsError, InvalidTransitionError, MultisessionError, SessionNotFoundError, ValidationError, versionConflict } from '../errors.js';
import { keepRedactedProxy } from '../net/config.js';
import type { CredentialVault } from '../security/credential-vault.js';
import type { SealedKvStore } from '../security/sealed-kv.js';
import type { SessionPatch, SessionRecord, StorageDriver } from '../storage/contract.js';
import type { JsonObject } from '../types.js';
import type { AuditLog } from './audit-log.js';
import type { EventHub, SessionManagerEvents } from './events.js';
import type { ManagerCore } from './manager-core.js';
import { SessionRuntime } from './runtime/session-runtime.js';
import type { ParsedSessionInput, SessionUpdate } from './schemas.js';
import type { SessionRegistry } from './session-registry.js';

/**
 * The writes of a session's stored spec: create, update, delete and key rotation. Each keeps the
 * credential gate (no row sealed with an old key after a rotation read it), stores the audit entry
 * with the change (same transaction) and announces it.
 */

/** The schemas a session whose adapter is not registered is updated with (stored data, as is). */
const storedConfig = z.record(z.string(), z.json());
const anyCredentials = z.unknown();

const PLAIN_FIELDS = ['labels', 'metadata', 'priority', 'capacity', 'autoStart', 'idleTimeoutMs', 'allowSharedCredentials'] as const;

/** What an update changes: the patch to write (without credentials), the changed field names, new credentials. */
export interface UpdatePlan {
  changes: Omit<SessionPatch, 'updatedAt' | 'credentials' | 'credentialsFingerprint'>;
  changed: string[];
  /** The new credentials (checked by the adapter's schema), to seal inside the key gate; undefined when unchanged. */
  credentials?: unknown;
}

/**
 * Compares a validated update with the stored record: a config is merged into the stored one
 * and checked by the adapter's schema (a redacted proxy written back keeps the stored password),
 * credentials count as changed when their fingerprint differs, other fields when their JSON does.
 */
export function planUpdate(adapter: Adapter | null, current: SessionRecord, data: SessionUpdate, vault: CredentialVault): UpdatePlan {
  const plan: UpdatePlan = { changes: {}, changed: [] };
  if (data.config !== undefined) {
    if (data.config === null || typeof data.config !== 'object' || Array.isArray(data.config)) {
      throw new ValidationError('session update', [{ path: ['config'], message: 'must be an object of the settings to change' }]);
    }
    const merged: Record<string, unknown> = { ...current.config, ...(data.config as object) };
    if ('proxy' in merged) merged.proxy = keepRedactedProxy(merged.proxy, current.config.proxy);
    // Only the keys this update sends are checked for unknown fields (a stored key the adapter
    // no longer knows is dropped as before, not an error the caller cannot fix).
    const config = parseAdapterInput(adapter?.config ?? storedConfig, merged, 'session update', 'config', Object.keys(data.config as object)) as JsonObject;
    if (JSON.stringify(config) !== JSON.stringify(current.config)) {
      plan.changes.config = config;
      plan.changed.push('config');
    }
  }
  if (data.credentials !== undefined) {
    const credentials = parseAdapterInput(adapter?.credentials ?? anyCredentials, data.credentials, 'session update', 'credentials');
    if (vault.fingerprint(credentials) !== current.credentialsFingerprint) {
      plan.credentials = credentials;
      plan.changed.push('credentials');
    }
  }
  for (const key of PLAIN_FIELDS) {
    if (data[key] === undefined) continue;
    if (JSON.stringify(data[key]) === JSON.stringify(current[key])) continue;
    (plan.changes as Record<string, unknown>)[key] = data[key];
    plan.changed.push(key);
  }
  return plan;
}

const SETTLED = { settled: Promise.resolve() };

export class SessionWrites {
  readonly #core: ManagerCore;
  readonly #storage: StorageDriver;
  readonly #sessions: SessionRegistry;
  readonly #vault: CredentialVault;
  readonly #events: EventHub<SessionManagerEvents>;
  readonly #audit: AuditLog;
  /** The sealed KV (null when the store has no `kv` capability). */
  readonly #kv: () => SealedKvStore | null;

  constructor(deps: { core: ManagerCore; sessions: SessionRegistry; vault: CredentialVault; events: EventHub<SessionManagerEvents>; audit: AuditLog; kv: () => SealedKvStore | null }) {
    this.#core = deps.core;
    this.#storage = deps.core.storage;
    this.#sessions = deps.sessions;
    this.#vault = deps.vault;
    this.#events = deps.events;
    this.#audit = deps.audit;
    this.#kv = deps.kv;
  }

  /** Stores a new session (stopped) and registers its runtime; `config` and `credentials` are already checked by the adapter. */
  async create(adapter: Adapter, input: ParsedSessionInput, config: JsonObject, credentials: unknown, actor: string | undefined, fields: string[]): Promise<SessionRuntime> {
    const release = this.#sessions.reserve();
    const now = this.#core.clock.now();
    const { id, labels, metadata, priority, capacity, autoStart, idleTimeoutMs, allowSharedCredentials } = input;
    const audit = this.#audit.entry('create', id, actor, { fields }, now);
    // With other nodes on the store, the limit is the store's: counted there, atomically with the insert.
    const options = this.#storage.cluster ? { ...audit, maxSessions: this.#core.options.maxSessions } : audit;
    const runtime = await this.#vault
      .withKey(async () => {
        const sealed = this.#vault.seal(credentials);
        // One plain literal (spreads would make a slow-mode object on the create path).
        const record = await this.#storage.sessions.create({
          id,
          platform: adapter.name,
          config,
          labels,
          metadata,
          priority,
          capacity,
          autoStart,
          idleTimeoutMs,
          allowSharedCredentials,
          desiredState: 'stopped',
          credentials: sealed.credentials,
          credentialsFingerprint: sealed.fingerprint,
          state: 'stopped',
          health: 'unknown',
          lastError: null,
          lastActivityAt: null,
          createdAt: now,
          updatedAt: now,
        }, options);
        this.#vault.remember(id, sealed.credentials, credentials);
        // Registered inside the gate, so a key rotation that follows sees (and re-seals) it.
        const created = new SessionRuntime(this.#core, adapter, record, { fresh: true });
        this.#sessions.add(created);
        return created;
      })
      .catch((error: unknown) => this.#conflict(error, id, actor, 'create'))
      .finally(release);
    if (this.#events.count('session.created')) this.#events.emit('session.created', { id: runtime.id, session: runtime.snapshot(), at: now });
    return runtime;
  }

  /** Applies a validated update (inside the session's queue); a config or credentials change restarts a running session. */
  async update(rt: SessionRuntime, data: SessionUpdate, actor: string | undefined): Promise<{ settled: Promise<void> }> {
    const plan = planUpdate(rt.adapter, rt.record, data, this.#vault);
    if (plan.changed.length === 0) return SETTLED;
    const now = this.#core.clock.now();
    const { changed } = plan;
    const audit = this.#audit.entry('update', rt.id, actor, { fields: changed }, now);
    if (plan.credentials !== undefined) {
      await this.#vault.withKey(async () => {
        // Sealed inside the gate: a rotation may have changed the key meanwhile.
        const sealed = this.#vault.seal(plan.credentials);
        await rt.write({ ...plan.changes, credentials: sealed.credentials, credentialsFingerprint: sealed.fingerprint, updatedAt: now }, audit);
      }).catch((error: unknown) => this.#conflict(error, rt.id, actor, 'update'));
    } else {
      await rt.write({ ...plan.changes, updatedAt: now }, audit).catch((error: unknown) => this.#conflict(error, rt.id, actor, 'update'));
    }
    if (this.#events.count('session.updated')) this.#events.emit('session.updated', { id: rt.id, session: rt.snapshot(), changed, at: now });
    if (changed.includes('idleTimeoutMs')) rt.rescheduleIdle();
    if ((changed.includes('config') || changed.includes('credentials')) && rt.record.desiredState === 'running' && rt.state !== 'stopped') {
      const reason = changed.includes('credentials') ? 'credentials changed' : 'config changed';
      await rt.stop(reason);
      return rt.start(reason);
    }
    return SETTLED;
  }

  /** Delivers auth input; each submission is audited with its outcome (never the value). */
  async submitAuth(rt: SessionRuntime, data: AuthInput, actor: string | undefined, onError: (error: unknown) => void): Promise<void> {
    const entry = (outcome: string) => this.#audit.entry('auth', rt.id, actor, { kind: data.kind, outcome });
    try {
      await rt.submitAuth(data);
    } catch (error) {
      // The refusal is what the caller needs; an audit write that fails as well is reported.
      await this.#audit.append(entry(error instanceof MultisessionError ? error.code : 'ERROR')).catch(onError);
      throw error;
    }
    await this.#audit.append(entry('accepted'));
  }

  /** Drops the auth state (after a platform logout of a running session, which then starts again). */
  async logout(rt: SessionRuntime, actor: string | undefined): Promise<{ settled: Promise<void> }> {
    const wasRunning = rt.running;
    if (wasRunning) {
      await rt.platformLogout();
      await rt.stop('logout');
    }
    await this.#kv()?.clear(rt.id, { prefix: AUTH_PREFIX });
    await this.#audit.append(this.#audit.entry('logout', rt.id, actor, {}));
    return wasRunning ? rt.start('logout') : { settled: Promise.resolve() };
  }

  /** Drops the context data; returns how many entries. */
  async clearContext(rt: SessionRuntime, actor: string | undefined): Promise<number> {
    const removed = (await this.#kv()?.clear(rt.id, { prefix: CONTEXT_PREFIX })) ?? 0;
    await this.#audit.append(this.#audit.entry('clear', rt.id, actor, { removed }));
    return removed;
  }

  /**
   * Audits a write refused because another session holds the same credentials (`credentials-conflict`,
   * naming it), then rethrows: repeated conflicts are how someone guesses credentials.
   */
  async #conflict(error: unknown, id: string, actor: string | undefined, operation: 'create' | 'update'): Promise<never> {
    if (error instanceof DuplicateCredentialsError) {
      const otherSessionId = String(error.context.otherSessionId);
      await this.#audit.append(this.#audit.entry('credentials-conflict', id, actor, { operation, otherSessionId })).catch(() => undefined);
    }
    throw error;
  }

  /** Deletes a session (inside its queue); a running one only with `force`. */
  async remove(rt: SessionRuntime, force: boolean, actor: string | undefined): Promise<void> {
    if (rt.deleted) throw new SessionNotFoundError(rt.id);
    const state = rt.shownState; // as its owner stored it, when another node runs it
    if (state !== 'stopped' && state !== 'failed' && state !== 'expired' && !force) {
      throw new InvalidTransitionError(rt.id, state, 'deleted', { context: { hint: 'stop it first or pass { force: true }' } });
    }
    const audit = this.#audit.entry('delete', rt.id, actor, { force });
    // Gone already (another writer deleted the row): the entry of this call is written on its own.
    if (!(await rt.remove(audit))) await this.#audit.append(audit);
    this.#sessions.delete(rt.id);
    this.#vault.forget(rt.id);
    this.#events.emit('session.deleted', { id: rt.id, at: this.#core.clock.now() });
  }

  /** Re-seals every session's KV values (session by session), then its credentials in one transaction, with `newKey`. */
  async rotate(newKey: string, actor: string | undefined): Promise<{ rotated: number }> {
    const kv = this.#kv();
    const { records } = await this.#vault.rotate(
      newKey,
      () => this.#sessions.all().map((rt) => rt.record),
      () => this.#core.clock.now(),
      async (rows, keyId, values) => {
        const audit = this.#audit.entry('rotate-key', null, actor, { sessions: rows.length, values, keyId });
        return (await this.#storage.sessions.replaceCredentials(rows, audit)) ?? Promise.reject(await this.#lostRewrite(rows));
      },
      kv ? (next) => kv.reseal(this.#sessions.all().map((rt) => rt.id), next) : undefined,
    );
    for (const record of records) this.#sessions.find(record.id)?.adoptRecord(record);
    return { rotated: records.length };
  }

  /** Why a rotation's compare-and-swap was lost: the first session gone or changed meanwhile. Nothing was rewritten. */
  async #lostRewrite(rows: { id: string; expectedVersion: number }[]): Promise<Error> {
    for (const { id, expectedVersion } of rows) {
      const fresh = await this.#storage.sessions.get(id).catch(() => undefined);
      if (fresh === null) return new SessionNotFoundError(id);
      if (fresh?.version !== expectedVersion) return versionConflict(id, expectedVersion, fresh?.version ?? null, 'nothing was rewritten, read it again and retry');
    }
    return versionConflict(rows[0]!.id, rows[0]!.expectedVersion, null, 'nothing was rewritten, read it again and retry');
  }
}
