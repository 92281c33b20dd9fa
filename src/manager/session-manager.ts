import { HealthPacer } from './runtime/health-monitor.js';
import { describeAdapter, parseAdapterInput, type Adapter, type AdapterInfo, type SessionKv } from '../adapters/contract.js';
import { AUTH_PREFIX, CONTEXT_PREFIX, NamespacedKv } from '../adapters/session-kv.js';
import { createCheckpoint, type Checkpoint, type CheckpointOptions } from '../checkpoint/checkpoint.js';
import { AdapterNotFoundError, MultisessionError, SessionNotFoundError, ValidationError } from '../errors.js';
import type { SessionState } from '../lifecycle.js';
import { CredentialVault } from '../security/credential-vault.js';
import { SECRET_KEY_ENV } from '../security/credentials.js';
import { requireCapability, type AuditEntry, type StorageDriver, type WriteOptions } from '../storage/contract.js';
import { guardStore } from '../storage/guarded-storage.js';
import { memoryStorage } from '../storage/memory/memory-storage.js';
import { type Clock, type JsonObject, type JsonValue, type Logger, silentLogger, systemClock } from '../types.js';
import { parseWith } from '../validation.js';
import { untilAborted } from './abort.js';
import { AuditLog } from './audit-log.js';
import { EventHub, EventSubscriptions, type SessionManagerEvents } from './events.js';
import type { ManagerCore } from './manager-core.js';
import { Persister } from './persister.js';
import { ManagerLifecycle } from './manager-lifecycle.js';
import { SessionRuntime } from './runtime/session-runtime.js';
import { statisticsOf } from './runtime/views.js';
import { Scheduler } from './scheduler.js';
import type { ControlOptions, DeleteOptions, ParsedControlOptions, ResolvedManagerOptions, SessionInput, SessionListQuery, SessionManagerOptions, SessionUpdate } from './schemas.js';
import { parseSessionInput, auditQuerySchema, authInputSchema, parseControlOptions, deleteOptionsSchema, logsQuerySchema, managerOptionsSchema } from './schemas.js';
import { sessionListQuerySchema, sessionPatchSchema } from './schemas.js';
import { SessionRegistry } from './session-registry.js';
import { SessionWrites } from './session-writes.js';
import type { LogEntry, SessionPage, SessionSnapshot, SessionStatistics, SessionStatus } from './snapshot.js';
import { decodeCursor, encodeCursor } from './session-registry.js';
import { Waits } from './wait-for.js';

const SETTLED = { settled: Promise.resolve() };

/**
 * Runs many accounts' sessions at once: lifecycle, health and recovery, persistence and typed
 * events, over a storage driver (memory by default) and platform adapters. The facade validates
 * every input and hands the work to the session's runtime, the single guard of its state.
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
export class SessionManager extends EventSubscriptions<SessionManagerEvents> {
  readonly options: ResolvedManagerOptions;
  readonly #storage: StorageDriver;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #adapters = new Map<string, Adapter>();
  readonly #sessions: SessionRegistry;
  readonly #events: EventHub<SessionManagerEvents>;
  readonly #scheduler: Scheduler;
  readonly #persister: Persister;
  readonly #vault: CredentialVault;
  readonly #waits: Waits;
  readonly #writes: SessionWrites;
  readonly #core: ManagerCore;
  readonly #life: ManagerLifecycle;
  readonly #auditLog: AuditLog;

  constructor(options: SessionManagerOptions = {}) {
    const events = new EventHub<SessionManagerEvents>();
    super(events);
    this.#events = events;
    events.onListenerError = (error, event) => {
      if (event !== 'manager.error') this.#managerError(error);
    };
    const opts = parseWith(managerOptionsSchema, options, 'SessionManager options');
    this.options = Object.freeze(opts);
    this.#sessions = new SessionRegistry(opts.maxSessions);
    this.#storage = guardStore(opts.storage ?? memoryStorage());
    this.#clock = opts.clock ?? systemClock;
    this.#logger = opts.logger ?? silentLogger;
    for (const adapter of opts.adapters) {
      if (this.#adapters.has(adapter.name)) {
        throw new ValidationError('SessionManager options', [{ path: ['adapters'], message: `two adapters are named "${adapter.name}"` }]);
      }
      this.#adapters.set(adapter.name, adapter);
    }
    this.#vault = new CredentialVault(opts.secretKey ?? process.env[SECRET_KEY_ENV] ?? undefined, this.#storage.persistent);
    this.#scheduler = new Scheduler(this.#clock, (error) => this.#managerError(error));
    const persist = { historySize: opts.historySize, flushMs: opts.persist.flushMs, clock: this.#clock };
    this.#persister = new Persister(this.#storage, { ...persist, onError: (error) => this.#managerError(error) });
    this.#waits = new Waits(this.#events, this.#scheduler, this.#clock);
    this.#core = {
      options: this.options,
      clock: this.#clock,
      scheduler: this.#scheduler,
      persister: this.#persister,
      healthPacer: new HealthPacer(),
      storage: this.#storage,
      logger: this.#logger,
      emit: (event, payload) => void this.#events.emit(event, payload),
      emitAndWait: (event, payload) => this.#events.emitAndWait(event, payload),
      openCredentials: (record) => this.#vault.open(record, this.#adapters.get(record.platform)?.credentials ?? null),
      secretStringsOf: (record) => this.#vault.secretStringsOf(record),
      stopForIdle: (id) => void this.stop(id, { reason: 'idle' }).catch((error: unknown) => this.#managerError(error)),
      kvStore: () => requireCapability(this.#storage, 'kv'),
      adapterNames: () => [...this.#adapters.keys()],
    };
    const audit = (this.#auditLog = new AuditLog(this.#storage, this.#clock));
    const onError = (error: unknown) => this.#managerError(error);
    this.#life = new ManagerLifecycle({ core: this.#core, sessions: this.#sessions, adapters: this.#adapters, waits: this.#waits, onError });
    this.#writes = new SessionWrites({ core: this.#core, sessions: this.#sessions, vault: this.#vault, events: this.#events, audit });
  }

  /** Which store the manager keeps its sessions in (`memory`, `sqlite`, `postgres`, …). */
  get storageKind(): string {
    return this.#storage.kind;
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Prepares storage (migrations) and brings back every session whose desired state is
   * `running`, `restore.concurrency` at a time. A session whose stored row or credentials cannot
   * be read ends `failed` with `lastError`; every other session loads and runs.
   */
  open(): Promise<void> {
    return this.#life.open();
  }

  /**
   * Stops every session gracefully (their desired states are kept, so the next `open()` brings
   * them back), writes what is pending, and closes the storage driver. Leaves no timer open.
   */
  close(): Promise<void> {
    return this.#life.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------------ sessions

  /** The registered adapters with their credential and config JSON Schemas. */
  adapterInfo(): AdapterInfo[] {
    return [...this.#adapters.values()].map(describeAdapter);
  }

  /** Creates a session (stopped unless `autoStart`). Credentials are sealed before they are stored. */
  async create(input: SessionInput, options: ControlOptions = {}): Promise<SessionSnapshot> {
    this.#assertOpen();
    const data = parseSessionInput(input);
    const ctl = parseControlOptions(options);
    const adapter = this.#adapter(data.platform);
    const config = parseAdapterInput(adapter.config, data.config ?? {}, 'session input', 'config') as JsonObject;
    const credentials = parseAdapterInput(adapter.credentials, data.credentials, 'session input', 'credentials');
    const fields = Object.keys(input ?? {}).filter((k) => k !== 'id');
    const rt = await this.#writes.create(adapter, data, config, credentials, ctl.actor, fields);
    if (rt.record.autoStart) return this.start(rt.id, { actor: ctl.actor, reason: 'autoStart' });
    return rt.snapshot();
  }

  /** The session's snapshot. Throws `SessionNotFoundError`. */
  async get(id: string): Promise<SessionSnapshot> {
    const rt = this.#runtime(id);
    await rt.loadHistory();
    return rt.snapshot();
  }

  /**
   * Sessions matching every given filter, ordered by id: all of them, or a page of `limit` with the
   * `nextCursor` to pass for the next (`null` after the last page).
   *
   * @example
   * ```ts
   * let page = await manager.list({ platform: 'telegram', limit: 100 });
   * while (page.nextCursor) page = await manager.list({ platform: 'telegram', limit: 100, cursor: page.nextCursor });
   * ```
   */
  async list(query: SessionListQuery = {}): Promise<SessionPage> {
    this.#assertOpen();
    const { limit, cursor, ...filter } = parseWith(sessionListQuerySchema, query, 'session list query');
    const { items, more } = this.#sessions.page(filter, limit ?? Infinity, cursor === undefined ? null : decodeCursor(cursor));
    await Promise.all(items.map((rt) => rt.loadHistory()));
    const last = items.at(-1);
    return { items: items.map((rt) => rt.snapshot()), nextCursor: more && last ? encodeCursor(last.id) : null };
  }

  /**
   * Changes a session. A config or credentials change on a running session restarts it (the
   * state events carry the reason). A lost update (another writer changed it first) throws
   * `ConflictError`; the manager re-reads the record, so a retry can succeed.
   */
  async update(id: string, patch: SessionUpdate, options: ControlOptions = {}): Promise<SessionSnapshot> {
    const data = parseWith(sessionPatchSchema, patch, 'session update');
    return this.#control(id, options, (rt, ctl) => this.#writes.update(rt, data, ctl.actor));
  }

  /** Deletes a session with its KV, counters and history. A running one needs `force: true`. */
  async delete(id: string, options: DeleteOptions = {}): Promise<void> {
    const rt = this.#runtime(id);
    const opts = parseWith(deleteOptionsSchema, options, 'delete options');
    await rt.enqueue(() => this.#writes.remove(rt, opts.force, opts.actor));
  }

  // ------------------------------------------------------------------ control

  /**
   * Starts a session (desired state `running`, persisted). Resolves when the first attempt
   * settles: `ready`, `authenticating` (waiting for a QR scan or a code), `backoff`, `failed` or
   * `expired`. Starting a running session changes nothing.
   */
  async start(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    return this.#control(id, options, async (rt, ctl) => {
      if (rt.running) return rt.start(ctl.reason ?? 'start');
      await this.#setDesired(rt, 'running', this.#auditLog.entry('start', id, ctl.actor, {}));
      return rt.start(ctl.reason ?? 'start');
    });
  }

  /** Stops a session (desired state `stopped`, persisted). Resolves when it is `stopped`. */
  async stop(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    return this.#control(id, options, async (rt, ctl) => {
      await this.#setDesired(rt, 'stopped', this.#auditLog.entry('stop', id, ctl.actor, ctl.reason ? { reason: ctl.reason } : {}));
      await rt.stop(ctl.reason ?? 'stop');
      return SETTLED;
    });
  }

  /** Stops and starts again (desired state `running`). Resolves like `start()`. */
  async restart(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    return this.#control(id, options, async (rt, ctl) => {
      const reason = ctl.reason ?? 'restart';
      await rt.stop(reason);
      await this.#setDesired(rt, 'running', this.#auditLog.entry('restart', id, ctl.actor, {}));
      rt.countRestart();
      return rt.start(reason);
    });
  }

  /** Delivers a code, password or pairing code to a session that is `authenticating`. */
  async submitAuth(id: string, input: { kind: 'code' | 'password' | 'pairing-code'; value: string }): Promise<void> {
    const rt = this.#runtime(id);
    await rt.submitAuth(parseWith(authInputSchema, input, 'auth input'));
  }

  /**
   * Drops the session's stored auth state (platform session files, keys …) and keeps the
   * session. A running session is restarted, so it authenticates again.
   */
  async logout(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    return this.#control(id, options, async (rt, ctl) => {
      const wasRunning = rt.running;
      if (wasRunning) {
        await rt.platformLogout();
        await rt.stop('logout');
      }
      await this.#storage.kv?.clear(id, { prefix: AUTH_PREFIX });
      await this.#auditLog.append(this.#auditLog.entry('logout', id, ctl.actor, {}));
      return wasRunning ? rt.start('logout') : SETTLED;
    });
  }

  /** Drops the session's context data (history, topic maps …); keeps credentials, config and auth state. */
  async clear(id: string, options: ControlOptions = {}): Promise<number> {
    const rt = this.#runtime(id);
    const ctl = parseControlOptions(options);
    return rt.enqueue(async () => {
      this.#assertLive(rt);
      const removed = (await this.#storage.kv?.clear(id, { prefix: CONTEXT_PREFIX })) ?? 0;
      await this.#auditLog.append(this.#auditLog.entry('clear', id, ctl.actor, { removed }));
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
    return new NamespacedKv(requireCapability(this.#storage, 'kv'), id, CONTEXT_PREFIX);
  }

  // ------------------------------------------------------------------ observability

  async status(id: string): Promise<SessionStatus> {
    return this.#runtime(id).status();
  }

  async statuses(): Promise<SessionStatus[]> {
    this.#assertOpen();
    return this.#sessions.sorted().map((rt) => rt.status());
  }

  /** Built-in counters and the adapter's custom counters. */
  async stats(id: string): Promise<SessionStatistics> {
    this.#runtime(id);
    const counters = requireCapability(this.#storage, 'counters');
    await this.#persister.flush();
    return statisticsOf(id, await counters.get(id));
  }

  /** The session's newest log lines (oldest first) from its ring buffer. */
  async logs(id: string, query: { limit?: number; level?: LogEntry['level'] } = {}): Promise<LogEntry[]> {
    const rt = this.#runtime(id);
    const q = parseWith(logsQuerySchema, query, 'logs query');
    return rt.logs(q.limit, q.level);
  }

  /**
   * Resolves when the session is in one of `states` (at once if it already is). Rejects with
   * `TimeoutError` after `timeoutMs`, with the signal's reason (or `AbortedError`) when `signal`
   * aborts, `SessionNotFoundError` when the session is deleted, `ManagerClosedError` on close.
   */
  async waitFor(id: string, states: SessionState | SessionState[], options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<SessionSnapshot> {
    return this.#waits.wait(this.#runtime(id), states, options);
  }

  /** The audit log, newest first. */
  async audit(query: { sessionId?: string; action?: string; since?: number; limit?: number } = {}): Promise<AuditEntry[]> {
    this.#assertOpen();
    const audit = requireCapability(this.#storage, 'audit');
    const q = parseWith(auditQuerySchema, query, 'audit query');
    await this.#persister.flush(); // the entries are stored with their calls; status and history are written too, as documented
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
    // The store's lifecycle is the manager's: the checkpoint gets a view whose init() opens
    // nothing, so it cannot reopen the store after close() (its calls are refused then).
    const storage = { kind: this.#storage.kind, init: async () => {}, checkpoint: requireCapability(this.#storage, 'checkpoint') };
    return createCheckpoint({ clock: this.#clock, ...options, storage, stream } as CheckpointOptions);
  }

  /**
   * Re-encrypts every session's credentials with `newKey` in one transaction; from then on the
   * manager uses the new key. Fails (and changes nothing) when any stored credential cannot be
   * decrypted with the current key.
   */
  async rotateSecretKey(newKey: string, options: ControlOptions = {}): Promise<{ rotated: number }> {
    this.#assertOpen();
    if (typeof newKey !== 'string') throw new ValidationError('secret key', [{ path: ['secretKey'], message: 'must be a string' }]);
    const ctl = parseControlOptions(options);
    return this.#writes.rotate(newKey, ctl.actor);
  }

  // ------------------------------------------------------------------ internals

  /**
   * Runs a control call in the session's queue and resolves with its snapshot once what it
   * started has settled; the caller's signal only stops the wait (the operation goes on).
   */
  async #control(id: string, options: ControlOptions, task: (rt: SessionRuntime, ctl: ParsedControlOptions) => Promise<{ settled: Promise<void> }>): Promise<SessionSnapshot> {
    const rt = this.#runtime(id);
    const ctl = parseControlOptions(options);
    const queued = rt.enqueue(async () => {
      this.#assertLive(rt);
      return task(rt, ctl);
    });
    const { settled } = await untilAborted(queued, ctl.signal);
    await untilAborted(settled, ctl.signal);
    return rt.snapshot();
  }

  #assertOpen(): void {
    this.#life.assertOpen();
  }

  #assertLive(rt: SessionRuntime): void {
    this.#assertOpen();
    if (rt.deleted) throw new SessionNotFoundError(rt.id);
  }

  #runtime(id: string): SessionRuntime {
    this.#assertOpen();
    return this.#sessions.get(id);
  }

  #adapter(platform: string): Adapter {
    const adapter = this.#adapters.get(platform);
    if (adapter) return adapter;
    const err = new AdapterNotFoundError(platform, [...this.#adapters.keys()]);
    throw new ValidationError('session input', [{ path: ['platform'], message: err.message }]);
  }

  /** Persists the desired state with its audit entry; when it is unchanged, the entry is written on its own. */
  async #setDesired(rt: SessionRuntime, desired: 'running' | 'stopped', audit: WriteOptions | undefined): Promise<void> {
    if (!(await rt.setDesired(desired, audit))) await this.#auditLog.append(audit);
  }

  #managerError(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    try {
      this.#logger.error({ err: { message: err.message, code: (err as MultisessionError).code } }, 'multisession: manager error');
    } catch {
      // a throwing logger changes nothing
    }
    this.#events.emit('manager.error', { error: err, at: this.#clock.now() });
  }
}
