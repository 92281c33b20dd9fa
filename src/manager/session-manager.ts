import { EventEmitter } from 'eventemitter3';
import { z } from 'zod';
import { parseAdapterInput, type Adapter, type SessionKv } from '../adapters/contract.js';
import {
  AbortedError,
  AdapterNotFoundError,
  CapacityError,
  ConflictError,
  DecryptionError,
  InvalidTransitionError,
  ManagerClosedError,
  MultisessionError,
  SessionNotFoundError,
  StorageError,
  TimeoutError,
  ValidationError,
} from '../errors.js';
import { parseWith } from '../validation.js';
import { CredentialCodec, SECRET_KEY_ENV, parseSecretKey } from '../security/credentials.js';
import { secretStrings } from '../security/redact.js';
import { requireCapability, type AuditEntry, type SessionPatch, type SessionRecord, type StorageDriver } from '../storage/contract.js';
import { guardStore } from '../storage/guarded-storage.js';
import { memoryStorage } from '../storage/memory/memory-storage.js';
import { keepRedactedProxy } from '../net/config.js';
import { createCheckpoint, type Checkpoint, type CheckpointOptions } from '../checkpoint/checkpoint.js';
import { type Clock, type JsonObject, type JsonValue, type Logger, silentLogger, systemClock } from '../types.js';
import type { SessionManagerEventName, SessionManagerEventPayload, SessionManagerEvents } from './events.js';
import { SESSION_STATES, type SessionState } from '../lifecycle.js';
import type { ManagerCore } from './manager-core.js';
import { Persister } from './persister.js';
import { Scheduler } from './scheduler.js';
import {
  type ControlOptions,
  type DeleteOptions,
  type ResolvedManagerOptions,
  type SessionFilter,
  type SessionInput,
  type SessionManagerOptions,
  type SessionUpdate,
  authInputSchema,
  controlOptionsSchema,
  deleteOptionsSchema,
  logsQuerySchema,
  managerOptionsSchema,
  sessionFilterSchema,
  sessionIdSchema,
  sessionInputSchema,
  sessionPatchSchema,
} from './schemas.js';
import { AUTH_PREFIX, CONTEXT_PREFIX, NamespacedKv } from './session-kv.js';
import { BUILTIN_COUNTERS, CUSTOM_COUNTER_PREFIX, SessionRuntime } from './session-runtime.js';
import type { LogEntry, SessionSnapshot, SessionStatistics, SessionStatus } from './snapshot.js';

/** What `adapterInfo()` returns for each registered adapter (for forms and API docs). */
export interface AdapterInfo {
  name: string;
  description: string | null;
  credentialsSchema: JsonObject;
  configSchema: JsonObject;
}

const auditQuerySchema = z
  .strictObject({
    sessionId: sessionIdSchema.optional(),
    action: z.string().min(1).max(64).optional(),
    since: z.number().int().min(0).optional(),
    limit: z.number().int().positive().max(10_000).default(100),
  })
  .default({ limit: 100 });

const waitOptionsSchema = z
  .strictObject({
    timeoutMs: z.number().int().positive().optional(),
    signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'must be an AbortSignal').optional(),
  })
  .default({});

const stateListSchema = z.union([z.enum(SESSION_STATES), z.array(z.enum(SESSION_STATES)).min(1)]);

type Phase = 'new' | 'opening' | 'open' | 'closing' | 'closed';

interface ListenerRecord {
  fn: (payload: unknown) => void;
  context: unknown;
  once: boolean;
}

function toJsonSchema(schema: z.ZodType): JsonObject {
  try {
    return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonObject;
  } catch {
    return {};
  }
}

/**
 * Runs many accounts' sessions at once: lifecycle, health and recovery, persistence and typed
 * events, over a storage driver (memory by default) and platform adapters.
 *
 * @example
 * ```ts
 * import { SessionManager, defineAdapter } from 'multisession';
 * await using manager = new SessionManager({ adapters: [myAdapter] });
 * await manager.open();
 * manager.on('session.state', (e) => console.log(e.id, e.from, '→', e.to, e.reason));
 * await manager.create({ id: 'bot-1', platform: 'freelancer', credentials: { oauthToken } });
 * await manager.start('bot-1');
 * await manager.send('bot-1', { text: 'hello' });
 * ```
 */
export class SessionManager extends EventEmitter<SessionManagerEvents> {
  readonly options: ResolvedManagerOptions;
  readonly storage: StorageDriver;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #adapters = new Map<string, Adapter>();
  readonly #runtimes = new Map<string, SessionRuntime>();
  readonly #scheduler: Scheduler;
  readonly #persister: Persister;
  readonly #core: ManagerCore;
  #codec: CredentialCodec;
  #secretCache = new Map<string, { version: number; strings: string[] }>();
  #phase: Phase = 'new';
  #creating = 0;
  /** Credential writes in flight, and the key rotation that waits for them (a readers–writer gate). */
  #credentialWrites = 0;
  #credentialsDrained: (() => void) | null = null;
  #rotation: Promise<unknown> | null = null;
  /** Rejecters of pending waitFor() calls, settled with ManagerClosedError on close. */
  readonly #waiters = new Set<(error: Error) => void>();
  #opening: Promise<void> | null = null;
  #closing: Promise<void> | null = null;

  constructor(options: SessionManagerOptions = {}) {
    super();
    const opts = parseWith(managerOptionsSchema, options, 'SessionManager options');
    this.options = Object.freeze(opts);
    this.storage = guardStore(opts.storage ?? memoryStorage());
    this.#clock = opts.clock ?? systemClock;
    this.#logger = opts.logger ?? silentLogger;
    for (const adapter of opts.adapters) {
      if (this.#adapters.has(adapter.name)) {
        throw new ValidationError('SessionManager options', [{ path: ['adapters'], message: `two adapters are named "${adapter.name}"` }]);
      }
      this.#adapters.set(adapter.name, adapter);
    }
    const key = opts.secretKey ?? process.env[SECRET_KEY_ENV] ?? undefined;
    if (key !== undefined) parseSecretKey(key); // a bad key fails here, with a ValidationError
    this.#codec = new CredentialCodec(key || undefined, this.storage.persistent);
    this.#scheduler = new Scheduler(this.#clock, (error) => this.#managerError(error));
    this.#persister = new Persister(this.storage, opts.historySize, (error) => this.#managerError(error));
    this.#core = {
      options: this.options,
      clock: this.#clock,
      scheduler: this.#scheduler,
      persister: this.#persister,
      storage: this.storage,
      logger: this.#logger,
      emit: (event, payload) => this.#emit(event, payload),
      openCredentials: (record) => this.#openCredentials(record),
      secretStringsOf: (record) => this.#secretStringsOf(record),
      stopForIdle: (id) => {
        this.stop(id, { reason: 'idle' }).catch((error) => this.#managerError(error));
      },
    };
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Prepares storage (migrations) and brings back every session whose desired state is
   * `running`, `restore.concurrency` at a time. A session whose stored row or credentials cannot
   * be read ends `failed` with `lastError`; every other session loads and runs.
   */
  open(): Promise<void> {
    if (this.#phase === 'closing' || this.#phase === 'closed') return Promise.reject(new ManagerClosedError());
    this.#opening ??= this.#open();
    return this.#opening;
  }

  async #open(): Promise<void> {
    this.#phase = 'opening';
    try {
      await this.storage.init();
      const records = await this.storage.sessions.list();
      const toStart: SessionRuntime[] = [];
      for (const record of records) {
        const adapter = this.#adapters.get(record.platform);
        const runtime = new SessionRuntime(this.#core, adapter ?? this.#missingAdapter(record.platform), record, { fresh: false });
        this.#runtimes.set(record.id, runtime);
        if (record.readError || !adapter) await runtime.loadHistory().catch((error) => this.#managerError(error));
        if (record.readError) {
          runtime.markUnusable({ code: 'STORAGE', message: `Stored row could not be read: ${record.readError}`, at: this.#clock.now() });
        } else if (!adapter) {
          runtime.markUnusable({ code: 'ADAPTER_NOT_FOUND', message: new AdapterNotFoundError(record.platform, [...this.#adapters.keys()]).message, at: this.#clock.now() });
        } else if (record.desiredState === 'running') {
          toStart.push(runtime);
        }
      }
      if (this.#phase !== 'opening') return; // closed meanwhile
      this.#phase = 'open';
      await this.#restore(toStart);
    } catch (error) {
      if (this.#phase !== 'opening') return;
      this.#phase = 'new';
      this.#opening = null;
      throw error instanceof MultisessionError ? error : new StorageError(`Opening storage (${this.storage.kind}) failed: ${(error as Error)?.message ?? error}`, { cause: error });
    }
  }

  async #restore(runtimes: SessionRuntime[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < runtimes.length && this.#phase === 'open') {
        const rt = runtimes[next++]!;
        try {
          const { settled } = await rt.enqueue(async () => rt.start('restore'));
          await settled;
        } catch (error) {
          this.#managerError(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.restore.concurrency, runtimes.length) }, worker));
  }

  /**
   * Stops every session gracefully (their desired states are kept, so the next `open()` brings
   * them back), writes what is pending, and closes the storage driver. Leaves no timer open.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Closing first: a restore in progress starts no further session, and the sessions it has
    // started are stopped now instead of after the whole restore queue.
    this.#phase = 'closing';
    const stopAll = () =>
      Promise.all([...this.#runtimes.values()].map((rt) => rt.enqueue(() => rt.stop('manager closing')).catch((error) => this.#managerError(error))));
    if (this.#opening) {
      await stopAll();
      await this.#opening.catch(() => undefined);
    }
    await Promise.all(
      [...this.#runtimes.values()].map((rt) => rt.enqueue(() => rt.stop('manager closing')).catch((error) => this.#managerError(error))),
    );
    await this.#persister.close();
    for (const reject of [...this.#waiters]) reject(new ManagerClosedError());
    this.#scheduler.close();
    this.#runtimes.clear();
    this.#phase = 'closed';
    await this.storage.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------------ sessions

  /** The registered adapters with their credential and config JSON Schemas. */
  adapterInfo(): AdapterInfo[] {
    return [...this.#adapters.values()].map((a) => ({
      name: a.name,
      description: a.description ?? null,
      credentialsSchema: toJsonSchema(a.credentials),
      configSchema: toJsonSchema(a.config),
    }));
  }

  /** Creates a session (stopped unless `autoStart`). Credentials are sealed before they are stored. */
  async create(input: SessionInput, options: ControlOptions = {}): Promise<SessionSnapshot> {
    this.#assertOpen();
    const data = parseWith(sessionInputSchema, input, 'session input');
    const ctl = parseWith(controlOptionsSchema, options, 'options');
    const adapter = this.#adapter(data.platform);
    const config = parseAdapterInput(adapter.config, data.config ?? {}, 'session input', 'config') as JsonObject;
    const credentials = parseAdapterInput(adapter.credentials, data.credentials, 'session input', 'credentials');
    // Count creates in flight too, so concurrent creates cannot pass the limit together.
    if (this.#runtimes.size + this.#creating >= this.options.maxSessions) {
      throw new CapacityError(`The manager holds ${this.#runtimes.size} sessions, its maxSessions; delete one or raise maxSessions.`, {
        context: { maxSessions: this.options.maxSessions },
      });
    }
    const now = this.#clock.now();
    this.#creating++;
    const runtime = await this.#withCredentialKey(async () => {
      const sealed = this.#seal(credentials);
      const record = await this.storage.sessions.create({
      id: data.id,
      platform: adapter.name,
      config,
      labels: data.labels,
      metadata: data.metadata,
      priority: data.priority,
      capacity: data.capacity,
      autoStart: data.autoStart,
      idleTimeoutMs: data.idleTimeoutMs,
      allowSharedCredentials: data.allowSharedCredentials,
      desiredState: 'stopped',
      credentials: sealed.credentials,
      credentialsFingerprint: sealed.fingerprint,
      state: 'stopped',
      health: 'unknown',
      lastError: null,
      lastActivityAt: null,
      createdAt: now,
      updatedAt: now,
      });
      // Registered inside the gate, so a key rotation that follows sees (and re-seals) it.
      const created = new SessionRuntime(this.#core, adapter, record, { fresh: true });
      this.#runtimes.set(record.id, created);
      return created;
    }).finally(() => this.#creating--);
    const record = runtime.record;
    this.#audit('create', record.id, ctl.actor, { fields: Object.keys(input ?? {}).filter((k) => k !== 'id') });
    const snapshot = runtime.snapshot();
    this.#emit('session.created', { id: record.id, session: snapshot, at: now });
    if (record.autoStart) return this.start(record.id, { actor: ctl.actor, reason: 'autoStart' });
    return snapshot;
  }

  /** The session's snapshot. Throws `SessionNotFoundError`. */
  async get(id: string): Promise<SessionSnapshot> {
    const rt = this.#runtime(id);
    await rt.loadHistory();
    return rt.snapshot();
  }

  /** Sessions matching every given filter, ordered by id. */
  async list(filter: SessionFilter = {}): Promise<SessionSnapshot[]> {
    this.#assertOpen();
    const f = parseWith(sessionFilterSchema, filter, 'session filter');
    const states = f.state === undefined ? null : new Set(Array.isArray(f.state) ? f.state : [f.state]);
    const healths = f.health === undefined ? null : new Set(Array.isArray(f.health) ? f.health : [f.health]);
    const labels = f.labels ? Object.entries(f.labels) : [];
    await Promise.all([...this.#runtimes.values()].map((rt) => rt.loadHistory()));
    const out: SessionSnapshot[] = [];
    for (const rt of [...this.#runtimes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
      if (states && !states.has(rt.state)) continue;
      if (healths && !healths.has(rt.health)) continue;
      if (f.platform && rt.record.platform !== f.platform) continue;
      if (f.desiredState && rt.record.desiredState !== f.desiredState) continue;
      if (labels.some(([k, v]) => rt.record.labels[k] !== v)) continue;
      out.push(rt.snapshot());
    }
    return out;
  }

  /**
   * Changes a session. A config or credentials change on a running session restarts it (the
   * state events carry the reason). A lost update (another writer changed it first) throws
   * `ConflictError`; the manager re-reads the record, so a retry can succeed.
   */
  async update(id: string, patch: SessionUpdate, options: ControlOptions = {}): Promise<SessionSnapshot> {
    const rt = this.#runtime(id);
    const data = parseWith(sessionPatchSchema, patch, 'session update');
    const ctl = parseWith(controlOptionsSchema, options, 'options');
    const { settled } = await rt.enqueue(async () => {
      this.#assertLive(rt);
      const adapter = rt.adapter;
      const current = rt.record;
      const changes: Omit<SessionPatch, 'updatedAt'> = {};
      const changed: string[] = [];
      if (data.config !== undefined) {
        const merged: Record<string, unknown> = { ...current.config, ...(data.config as object) };
        // A snapshot's (redacted) proxy written back unchanged keeps the stored password.
        if ('proxy' in merged) merged.proxy = keepRedactedProxy(merged.proxy, current.config.proxy);
        const config = parseAdapterInput(adapter.config, merged, 'session update', 'config') as JsonObject;
        if (JSON.stringify(config) !== JSON.stringify(current.config)) {
          changes.config = config;
          changed.push('config');
        }
      }
      if ('credentials' in (patch as object) && data.credentials !== undefined) {
        const credentials = parseAdapterInput(adapter.credentials, data.credentials, 'session update', 'credentials');
        const sealed = this.#seal(credentials);
        if (sealed.fingerprint !== current.credentialsFingerprint) {
          changes.credentials = sealed.credentials;
          changes.credentialsFingerprint = sealed.fingerprint;
          changed.push('credentials');
        }
      }
      for (const key of ['labels', 'metadata', 'priority', 'capacity', 'autoStart', 'idleTimeoutMs', 'allowSharedCredentials'] as const) {
        if (data[key] === undefined) continue;
        if (JSON.stringify(data[key]) === JSON.stringify(current[key])) continue;
        (changes as Record<string, unknown>)[key] = data[key];
        changed.push(key);
      }
      if (changed.length === 0) return { settled: Promise.resolve() };
      const now = this.#clock.now();
      if (changed.includes('credentials')) {
        await this.#withCredentialKey(async () => {
          // Sealed again inside the gate: a rotation may have changed the key meanwhile.
          const sealed = this.#seal(parseAdapterInput(adapter.credentials, data.credentials, 'session update', 'credentials'));
          rt.record = await this.#write(rt, { ...changes, credentials: sealed.credentials, credentialsFingerprint: sealed.fingerprint, updatedAt: now });
        });
      } else {
        rt.record = await this.#write(rt, { ...changes, updatedAt: now });
      }
      this.#audit('update', id, ctl.actor, { fields: changed });
      this.#emit('session.updated', { id, session: rt.snapshot(), changed, at: now });
      if (changed.includes('idleTimeoutMs')) rt.rescheduleIdle();
      const needsRestart = changed.includes('config') || changed.includes('credentials');
      if (needsRestart && rt.record.desiredState === 'running' && rt.state !== 'stopped') {
        const reason = changed.includes('credentials') ? 'credentials changed' : 'config changed';
        await rt.stop(reason);
        return rt.start(reason);
      }
      return { settled: Promise.resolve() };
    });
    await this.#untilAborted(settled, ctl.signal);
    return rt.snapshot();
  }

  /** Deletes a session with its KV, counters and history. A running one needs `force: true`. */
  async delete(id: string, options: DeleteOptions = {}): Promise<void> {
    const rt = this.#runtime(id);
    const opts = parseWith(deleteOptionsSchema, options, 'delete options');
    await rt.enqueue(async () => {
      if (rt.deleted) throw new SessionNotFoundError(id);
      if (rt.state !== 'stopped' && rt.state !== 'failed' && rt.state !== 'expired' && !opts.force) {
        throw new InvalidTransitionError(id, rt.state, 'deleted', {
          context: { hint: 'stop it first or pass { force: true }' },
        });
      }
      if (rt.running || rt.state !== 'stopped') await rt.stop('deleted');
      rt.deleted = true;
      // Drop what is queued for it and wait for a write already under way, so nothing of this
      // session lands after the delete (on a new session that takes the same id).
      this.#persister.forget(id);
      await this.#persister.flush();
      await this.storage.sessions.delete(id);
      this.#runtimes.delete(id);
      this.#secretCache.delete(id);
      this.#audit('delete', id, opts.actor, { force: opts.force });
      this.#emit('session.deleted', { id, at: this.#clock.now() });
    });
  }

  // ------------------------------------------------------------------ control

  /**
   * Starts a session (desired state `running`, persisted). Resolves when the first attempt
   * settles: `ready`, `authenticating` (waiting for a QR scan or a code), `backoff`, `failed` or
   * `expired`. Starting a running session changes nothing.
   */
  async start(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    const rt = this.#runtime(id);
    const ctl = parseWith(controlOptionsSchema, options, 'options');
    const { settled } = await rt.enqueue(async () => {
      this.#assertLive(rt);
      if (rt.running) return rt.start(ctl.reason ?? 'start');
      await this.#setDesired(rt, 'running');
      this.#audit('start', id, ctl.actor, {});
      return rt.start(ctl.reason ?? 'start');
    });
    await this.#untilAborted(settled, ctl.signal);
    return rt.snapshot();
  }

  /** Stops a session (desired state `stopped`, persisted). Resolves when it is `stopped`. */
  async stop(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    const rt = this.#runtime(id);
    const ctl = parseWith(controlOptionsSchema, options, 'options');
    const stopped = rt.enqueue(async () => {
      this.#assertLive(rt);
      await this.#setDesired(rt, 'stopped');
      this.#audit('stop', id, ctl.actor, ctl.reason ? { reason: ctl.reason } : {});
      await rt.stop(ctl.reason ?? 'stop');
    });
    await this.#untilAborted(stopped, ctl.signal);
    return rt.snapshot();
  }

  /** Stops and starts again (desired state `running`). Resolves like `start()`. */
  async restart(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    const rt = this.#runtime(id);
    const ctl = parseWith(controlOptionsSchema, options, 'options');
    const { settled } = await rt.enqueue(async () => {
      this.#assertLive(rt);
      const reason = ctl.reason ?? 'restart';
      await rt.stop(reason);
      await this.#setDesired(rt, 'running');
      rt.restarts++;
      this.#persister.increment(id, 'restarts', 1);
      this.#audit('restart', id, ctl.actor, {});
      return rt.start(reason);
    });
    await this.#untilAborted(settled, ctl.signal);
    return rt.snapshot();
  }

  /** Delivers a code, password or pairing code to a session that is `authenticating`. */
  async submitAuth(id: string, input: { kind: 'code' | 'password' | 'pairing-code'; value: string }): Promise<void> {
    const rt = this.#runtime(id);
    const data = parseWith(authInputSchema, input, 'auth input');
    await rt.submitAuth(data);
  }

  /**
   * Drops the session's stored auth state (platform session files, keys …) and keeps the
   * session. A running session is restarted, so it authenticates again.
   */
  async logout(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    const rt = this.#runtime(id);
    const ctl = parseWith(controlOptionsSchema, options, 'options');
    const { settled } = await rt.enqueue(async () => {
      this.#assertLive(rt);
      const wasRunning = rt.running;
      if (wasRunning) {
        await rt.platformLogout();
        await rt.stop('logout');
      }
      await this.storage.kv?.clear(id, { prefix: AUTH_PREFIX });
      this.#audit('logout', id, ctl.actor, {});
      return wasRunning ? rt.start('logout') : { settled: Promise.resolve() };
    });
    await this.#untilAborted(settled, ctl.signal);
    return rt.snapshot();
  }

  /** Drops the session's context data (history, topic maps …); keeps credentials, config and auth state. */
  async clear(id: string, options: ControlOptions = {}): Promise<number> {
    const rt = this.#runtime(id);
    const ctl = parseWith(controlOptionsSchema, options, 'options');
    return rt.enqueue(async () => {
      this.#assertLive(rt);
      const removed = (await this.storage.kv?.clear(id, { prefix: CONTEXT_PREFIX })) ?? 0;
      this.#audit('clear', id, ctl.actor, { removed });
      return removed;
    });
  }

  /** Performs a platform action; the session must be `ready` or `degraded` (`SessionNotReadyError`). */
  async send(id: string, action: JsonValue): Promise<JsonValue | undefined> {
    return this.#runtime(id).send(action);
  }

  /** Records activity (resets the idle timer). */
  async touch(id: string): Promise<void> {
    this.#runtime(id).touch();
  }

  /** The session's context-data KV (the same space the adapter sees as `ctx.kv`). */
  kv(id: string): SessionKv {
    this.#runtime(id);
    return new NamespacedKv(requireCapability(this.storage, 'kv'), id, CONTEXT_PREFIX);
  }

  // ------------------------------------------------------------------ observability

  async status(id: string): Promise<SessionStatus> {
    return this.#runtime(id).status();
  }

  async statuses(): Promise<SessionStatus[]> {
    this.#assertOpen();
    return [...this.#runtimes.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((rt) => rt.status());
  }

  /** Built-in counters and the adapter's custom counters. */
  async stats(id: string): Promise<SessionStatistics> {
    this.#runtime(id);
    const counters = requireCapability(this.storage, 'counters');
    await this.#persister.flush();
    const raw = await counters.get(id);
    const stats: SessionStatistics = { id, starts: 0, restarts: 0, failures: 0, messagesIn: 0, messagesOut: 0, errors: 0, custom: {} };
    for (const [name, value] of Object.entries(raw)) {
      if (name.startsWith(CUSTOM_COUNTER_PREFIX)) stats.custom[name.slice(CUSTOM_COUNTER_PREFIX.length)] = value;
      else if ((BUILTIN_COUNTERS as readonly string[]).includes(name)) stats[name as (typeof BUILTIN_COUNTERS)[number]] = value;
    }
    return stats;
  }

  /** The session's newest log lines (oldest first) from its ring buffer. */
  async logs(id: string, query: { limit?: number; level?: LogEntry['level'] } = {}): Promise<LogEntry[]> {
    const rt = this.#runtime(id);
    const q = parseWith(logsQuerySchema, query, 'logs query');
    return rt.logs(q.limit, q.level);
  }

  /** Resolves when the session is in one of `states` (at once if it already is). */
  async waitFor(id: string, states: SessionState | SessionState[], options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<SessionSnapshot> {
    const rt = this.#runtime(id);
    const wanted = new Set(parseWith(stateListSchema, Array.isArray(states) ? states : [states], 'states'));
    const opts = parseWith(waitOptionsSchema, options, 'wait options');
    if (wanted.has(rt.state)) return rt.snapshot();
    if (opts.signal?.aborted) throw opts.signal.reason ?? new TimeoutError('aborted');
    return new Promise<SessionSnapshot>((resolve, reject) => {
      const fail = (error: Error) => {
        cleanup();
        reject(error);
      };
      const cleanup = () => {
        if (keepAlive) clearInterval(keepAlive);
        this.#waiters.delete(fail);
        this.off('session.state', onState);
        this.off('session.deleted', onDeleted);
        timer?.cancel();
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const onState = (e: { id: string; to: SessionState }) => {
        if (e.id !== id || !wanted.has(e.to)) return;
        cleanup();
        resolve(rt.snapshot());
      };
      const onDeleted = (e: { id: string }) => {
        if (e.id !== id) return;
        cleanup();
        reject(new SessionNotFoundError(id));
      };
      const onAbort = () => {
        cleanup();
        reject(opts.signal?.reason ?? new TimeoutError('aborted'));
      };
      const timer =
        opts.timeoutMs === undefined
          ? null
          : this.#scheduler.schedule(opts.timeoutMs, () => {
              cleanup();
              reject(new TimeoutError(`Session "${id}" did not reach ${[...wanted].join(' or ')} within ${opts.timeoutMs} ms (it is "${rt.state}").`));
            });
      // The manager's timers never keep the process alive, but someone awaiting a wait with a
      // timeout expects its answer: hold the event loop open until it settles (real clock only).
      const keepAlive = timer && this.#clock === systemClock ? setInterval(() => {}, 1 << 30) : null;
      this.#waiters.add(fail);
      this.on('session.state', onState);
      this.on('session.deleted', onDeleted);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** The audit log, newest first. */
  async audit(query: { sessionId?: string; action?: string; since?: number; limit?: number } = {}): Promise<AuditEntry[]> {
    this.#assertOpen();
    const audit = requireCapability(this.storage, 'audit');
    const q = parseWith(auditQuerySchema, query, 'audit query');
    await this.#persister.flush();
    return audit.list(q);
  }

  /**
   * The shared checkpoint for `stream` on this manager's storage: several sessions, processes or
   * machines split one stream of work under fenced leases (see docs/checkpoint.md).
   *
   * @example
   * ```ts
   * const cp = manager.checkpoint('messages');
   * const lease = await cp.claimKey(`msg:${msg.id}`, { owner: sessionId, leaseMs: 30_000 });
   * if (lease) { await forward(msg); await cp.complete(lease); }
   * ```
   */
  checkpoint(stream: string, options: Omit<CheckpointOptions, 'storage' | 'stream'> = {}): Checkpoint {
    this.#assertOpen();
    // The storage is open and its lifecycle is the manager's: the checkpoint must not reopen it
    // after close() (its calls are refused then), so it gets a view whose init() opens nothing.
    const storage = { kind: this.storage.kind, init: async () => {}, checkpoint: requireCapability(this.storage, 'checkpoint') };
    return createCheckpoint({ ...options, storage, stream } as CheckpointOptions);
  }

  // ------------------------------------------------------------------ secrets

  /**
   * Re-encrypts every session's credentials with `newKey` in one transaction; from then on the
   * manager uses the new key. Fails (and changes nothing) when any stored credential cannot be
   * decrypted with the current key.
   */
  async rotateSecretKey(newKey: string, options: ControlOptions = {}): Promise<{ rotated: number }> {
    this.#assertOpen();
    if (typeof newKey !== 'string') throw new ValidationError('secret key', [{ path: ['secretKey'], message: 'must be a string' }]);
    parseSecretKey(newKey);
    const ctl = parseWith(controlOptionsSchema, options, 'options');
    while (this.#rotation) await this.#rotation.catch(() => undefined);
    const rotation = this.#rotate(newKey, ctl.actor);
    this.#rotation = rotation;
    try {
      return await rotation;
    } finally {
      this.#rotation = null;
    }
  }

  async #rotate(newKey: string, actor: string | undefined): Promise<{ rotated: number }> {
    if (this.#credentialWrites > 0) await new Promise<void>((resolve) => (this.#credentialsDrained = resolve));
    this.#credentialsDrained = null;
    const next = this.#codec.withKey(newKey);
    const rts = [...this.#runtimes.values()].filter((rt) => rt.record.credentials !== null);
    const rows = rts.map((rt) => {
      let plain: JsonValue;
      try {
        plain = this.#codec.open(rt.record.credentials!);
      } catch (cause) {
        throw new DecryptionError(`Key rotation stopped: the credentials of session "${rt.id}" cannot be decrypted with the current key; set them again or delete the session first. Nothing was changed.`, { cause, context: { sessionId: rt.id } });
      }
      return { id: rt.id, credentials: next.seal(plain), credentialsFingerprint: next.fingerprint(plain), expectedVersion: rt.record.version, updatedAt: this.#clock.now() };
    });
    const records = await this.storage.sessions.replaceCredentials(rows);
    if (!records) throw await this.#lostRewrite(rows);
    for (const record of records) {
      const rt = this.#runtimes.get(record.id);
      if (rt) rt.record = record;
    }
    this.#codec = next;
    this.#secretCache.clear();
    this.#audit('rotate-key', null, actor, { sessions: rows.length, keyId: next.keyId });
    await this.#persister.flush();
    return { rotated: rows.length };
  }

  // ------------------------------------------------------------------ internals

  /** Waits for `work` unless `signal` aborts first (the work itself goes on). */
  #untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (!signal) return work;
    if (signal.aborted) {
      work.catch(() => undefined);
      return Promise.reject(signal.reason ?? new AbortedError());
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        work.catch(() => undefined);
        reject(signal.reason ?? new AbortedError());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(
        (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  #assertOpen(): void {
    if (this.#phase === 'open') return;
    if (this.#phase === 'closing' || this.#phase === 'closed') throw new ManagerClosedError();
    throw new MultisessionError('MANAGER_NOT_OPEN', 'The SessionManager is not open; call `await manager.open()` first.');
  }

  #assertLive(rt: SessionRuntime): void {
    this.#assertOpen();
    if (rt.deleted) throw new SessionNotFoundError(rt.id);
  }

  #runtime(id: string): SessionRuntime {
    this.#assertOpen();
    const checked = sessionIdSchema.safeParse(id);
    if (!checked.success) throw new ValidationError('session id', [{ path: ['id'], message: checked.error.issues[0]?.message ?? 'invalid' }]);
    const rt = this.#runtimes.get(id);
    if (!rt || rt.deleted) throw new SessionNotFoundError(id);
    return rt;
  }

  #adapter(platform: string): Adapter {
    const adapter = this.#adapters.get(platform);
    if (!adapter) {
      const err = new AdapterNotFoundError(platform, [...this.#adapters.keys()]);
      throw new ValidationError('session input', [{ path: ['platform'], message: err.message }]);
    }
    return adapter;
  }

  /** An adapter that fails every start: for stored sessions whose platform is not registered. */
  #missingAdapter(platform: string): Adapter {
    const known = [...this.#adapters.keys()];
    return {
      name: platform,
      credentials: z.unknown(),
      config: z.record(z.string(), z.json()),
      action: z.json(),
      connect() {
        throw new AdapterNotFoundError(platform, known);
      },
    } as unknown as Adapter;
  }

  async #setDesired(rt: SessionRuntime, desired: 'running' | 'stopped'): Promise<void> {
    if (rt.record.desiredState === desired) return;
    rt.record = await this.#write(rt, { desiredState: desired, updatedAt: this.#clock.now() });
  }

  /** Versioned write; on a lost update re-reads the record so the caller's retry can succeed. */
  async #write(rt: SessionRuntime, patch: SessionPatch): Promise<SessionRecord> {
    const expectedVersion = rt.record.version;
    const updated = await this.storage.sessions.update(rt.id, patch, expectedVersion);
    if (updated) return updated;
    const fresh = await this.storage.sessions.get(rt.id).catch(() => undefined);
    if (fresh === null) throw new SessionNotFoundError(rt.id);
    if (fresh && !fresh.readError) rt.record = fresh;
    throw conflictError(rt.id, expectedVersion, fresh?.version ?? null, 'read it again and retry');
  }

  /** Why a key rotation's compare-and-swap was lost: the first session gone or changed meanwhile. */
  async #lostRewrite(rows: { id: string; expectedVersion: number }[]): Promise<MultisessionError> {
    for (const { id, expectedVersion } of rows) {
      const fresh = await this.storage.sessions.get(id).catch(() => undefined);
      if (fresh === null) return new SessionNotFoundError(id);
      if (fresh?.version !== expectedVersion) return conflictError(id, expectedVersion, fresh?.version ?? null, 'nothing was rewritten, read it again and retry');
    }
    return conflictError(rows[0]!.id, rows[0]!.expectedVersion, null, 'nothing was rewritten, read it again and retry');
  }

  /**
   * Runs a write that seals credentials with the current key. Many may run at once; a key
   * rotation waits for them to finish and holds new ones back, so no row is sealed with the old
   * key after the rotation has read it.
   */
  async #withCredentialKey<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#rotation) await this.#rotation.catch(() => undefined);
    this.#credentialWrites++;
    try {
      return await fn();
    } finally {
      if (--this.#credentialWrites === 0) this.#credentialsDrained?.();
    }
  }

  #seal(credentials: unknown): { credentials: string | null; fingerprint: string | null } {
    if (credentials === undefined || credentials === null) return { credentials: null, fingerprint: null };
    const json = credentials as JsonValue;
    return { credentials: this.#codec.seal(json), fingerprint: this.#codec.fingerprint(json) };
  }

  #openCredentials(record: SessionRecord): unknown {
    const adapter = this.#adapters.get(record.platform);
    const plain = record.credentials === null ? undefined : this.#codec.open(record.credentials);
    if (!adapter) return plain;
    const parsed = adapter.credentials.safeParse(plain);
    if (!parsed.success) {
      throw new ValidationError('stored credentials', parsed.error.issues.map((i) => ({ path: ['credentials', ...(i.path as (string | number)[])], message: i.message })));
    }
    return parsed.data;
  }

  #secretStringsOf(record: SessionRecord): string[] {
    if (record.credentials === null) return [];
    const cached = this.#secretCache.get(record.id);
    if (cached && cached.version === record.version) return cached.strings;
    let strings: string[] = [];
    try {
      strings = secretStrings(this.#codec.open(record.credentials));
    } catch {
      strings = [];
    }
    this.#secretCache.set(record.id, { version: record.version, strings: strings.slice() });
    return strings;
  }

  #audit(action: string, sessionId: string | null, actor: string | undefined, details: JsonObject): void {
    this.#persister.audit({ at: this.#clock.now(), sessionId, action, actor: actor ?? null, details });
  }

  /**
   * Emits to every listener even when one throws (an app's bug must not starve the others, nor
   * the manager's own waiters); a throw is reported as `manager.error`.
   */
  #emit<E extends SessionManagerEventName>(event: E, payload: SessionManagerEventPayload<E>): void {
    if (this.listenerCount(event) === 0) return;
    // eventemitter3 keeps { fn, context, once } records; walking them keeps once() semantics.
    const key = EventEmitter.prefixed ? `${EventEmitter.prefixed}${event}` : event;
    const raw = (this as unknown as { _events: Record<string, ListenerRecord | ListenerRecord[]> })._events[key];
    if (!raw) return;
    for (const l of Array.isArray(raw) ? [...raw] : [raw]) {
      if (l.once) this.removeListener(event, l.fn as never, l.context, true);
      try {
        l.fn.call(l.context, payload);
      } catch (error) {
        if (event !== 'manager.error') this.#managerError(error);
      }
    }
  }

  #managerError(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    try {
      this.#logger.error({ err: { message: err.message, code: (err as MultisessionError).code } }, 'multisession: manager error');
    } catch {
      // a throwing logger changes nothing
    }
    this.#emit('manager.error', { error: err, at: this.#clock.now() });
  }
}

/** A lost compare-and-swap on a session's version, with the versions in `context`. */
function conflictError(sessionId: string, expectedVersion: number, actualVersion: number | null, advice: string): ConflictError {
  return new ConflictError(
    `Session "${sessionId}" was changed by someone else (expected version ${expectedVersion}${actualVersion === null ? '' : `, stored version ${actualVersion}`}); ${advice}.`,
    { context: { sessionId, expectedVersion, actualVersion } },
  );
}
