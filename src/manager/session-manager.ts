import { describeAdapter, parseAdapterInput, type Adapter, type AdapterInfo, type SessionKv } from '../adapters/contract.js';
import { CONTEXT_PREFIX, NamespacedKv } from '../adapters/session-kv.js';
import type { Checkpoint, CheckpointOptions } from '../checkpoint/checkpoint.js';
import { SessionNotFoundError, ValidationError } from '../errors.js';
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
import type { RemoteOp } from './cluster/commands.js';
import { makeOwnership } from './cluster/node-wiring.js';
import type { NodeInfo, Ownership } from './cluster/ownership.js';
import { EventHub, EventSubscriptions, type SessionManagerEvents } from './events.js';
import { adapterFor, adapterMap, buildCore, reportManagerError, type ManagerCore } from './manager-core.js';
import { Persister } from './persister.js';
import { ManagerLifecycle } from './manager-lifecycle.js';
import { SessionRuntime } from './runtime/session-runtime.js';
import { statisticsOf } from './runtime/views.js';
import { Scheduler } from './scheduler.js';
import type { ControlOptions, DeleteOptions, ParsedControlOptions, ResolvedManagerOptions, SessionInput, SessionListQuery, SessionManagerOptions, SessionUpdate } from './schemas.js';
import { parseSessionInput, auditQuerySchema, authInputSchema, parseControlOptions, deleteOptionsSchema, drainOptionsSchema, logsQuerySchema, managerOptionsSchema, refuseProtoKeys, sessionListQuerySchema, sessionPatchSchema } from './schemas.js';
import { decodeCursor, encodeCursor, SessionRegistry } from './session-registry.js';
import { SessionWrites } from './session-writes.js';
import type { LogEntry, SessionPage, SessionSnapshot, SessionStatistics, SessionStatus } from './snapshot.js';
import { Waits } from './wait-for.js';
import { managerCheckpoint, makeUnits, type UnitsRuntime, type WorkUnits, type WorkerStatus } from './manager-units.js';

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
  readonly #adapters: ReadonlyMap<string, Adapter>;
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
  readonly #ownership: Ownership;
  readonly #units: UnitsRuntime;
  /** Work units assigned to sessions by health, priority and capacity; moved in bulk, audited (docs/units.md). */
  readonly units: WorkUnits;

  constructor(options: SessionManagerOptions = {}) {
    const events = new EventHub<SessionManagerEvents>();
    super(events);
    this.#events = events;
    events.onListenerError = (error, event) => void (event !== 'manager.error' && this.#managerError(error));
    const opts = parseWith(managerOptionsSchema, options, 'SessionManager options');
    this.options = Object.freeze(opts);
    this.#storage = guardStore(opts.storage ?? memoryStorage());
    // With other nodes on the store, the store counts (atomically with each insert; see SessionWrites.create).
    this.#sessions = new SessionRegistry(this.#storage.cluster ? Infinity : opts.maxSessions);
    this.#clock = opts.clock ?? systemClock;
    this.#logger = opts.logger ?? silentLogger;
    this.#adapters = adapterMap(opts.adapters);
    this.#vault = new CredentialVault(opts.secretKey ?? process.env[SECRET_KEY_ENV] ?? undefined, this.#storage.persistent);
    this.#scheduler = new Scheduler(this.#clock, (error) => this.#managerError(error));
    const persist = { historySize: opts.historySize, flushMs: opts.persist.flushMs, clock: this.#clock };
    this.#persister = new Persister(this.#storage, { ...persist, onError: (error) => this.#managerError(error) });
    this.#waits = new Waits(this.#events, this.#scheduler, this.#clock);
    this.#core = buildCore({
      ...{ options: this.options, clock: this.#clock, storage: this.#storage, persister: this.#persister },
      ...{ scheduler: this.#scheduler, logger: this.#logger, vault: this.#vault, adapters: this.#adapters },
      emit: (event, payload) => void (this.#events.emit(event, payload), this.#ownership.relay(event, payload), this.#units.observe(event, payload)),
      emitAndWait: (event, payload) => (this.#ownership.relay(event, payload), this.#events.emitAndWait(event, payload)),
      stopForIdle: (id) => void this.stop(id, { reason: 'idle' }).catch((error: unknown) => this.#managerError(error)),
      unitsView: (id, signal) => this.#units.view(id, signal),
    });
    this.#units = makeUnits({ core: this.#core, sessions: this.#sessions, events, assertOpen: () => this.#assertOpen(), onError: (error) => this.#managerError(error) });
    this.units = this.#units.api;
    const audit = (this.#auditLog = new AuditLog(this.#storage, this.#clock));
    const onError = (error: unknown) => this.#managerError(error);
    const execute = (op: RemoteOp, id: string, args: JsonValue[]) =>
      op === 'drain' ? this.drain().then(() => null) : (this[op] as (id: string, ...rest: JsonValue[]) => Promise<JsonValue | undefined>)(id, ...args);
    this.#ownership = makeOwnership({ core: this.#core, sessions: this.#sessions, adapters: this.#adapters, values: this.#vault.values, isOpen: () => this.#life.isOpen, onError, execute, unitsChanged: (ids) => this.#units.changed(ids) });
    const opened = audit.retention(opts.audit.retentionMs, this.#scheduler, onError);
    this.#life = new ManagerLifecycle({ core: this.#core, sessions: this.#sessions, adapters: this.#adapters, waits: this.#waits, ownership: this.#ownership, onError, opened, loaded: () => this.#units.open() });
    this.#writes = new SessionWrites({ core: this.#core, sessions: this.#sessions, vault: this.#vault, events: this.#events, audit, kv: () => (this.#storage.kv ? this.#core.kvStore() : null) });
  }

  /** This manager's node id (`cluster.nodeId`, or a random one). */
  get nodeId(): string {
    return this.#ownership.nodeId;
  }

  /** The nodes sharing the store (just this one on a store without the `cluster` capability). */
  async nodes(): Promise<NodeInfo[]> {
    this.#assertOpen();
    return this.#ownership.nodes();
  }

  /**
   * Hands every session this node (or the node `nodeId`) runs to the other nodes at once (their
   * leases are released, so others take them without waiting for expiry); that node takes no new
   * ones. The sessions keep their desired state. `close()` drains first too.
   */
  async drain(options: { nodeId?: string } = {}): Promise<void> {
    this.#assertOpen();
    await this.#ownership.drain(parseWith(drainOptionsSchema, options, 'drain options').nodeId);
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
    const adapter = adapterFor(this.#adapters, data.platform);
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
    refuseProtoKeys((query as { labels?: unknown } | undefined)?.labels, 'session list query', ['labels']);
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
    refuseProtoKeys(patch, 'session update');
    const data = parseWith(sessionPatchSchema, patch, 'session update');
    return this.#control(id, options, async (rt, ctl) => (await this.#units.checkCapacity(id, data.capacity), this.#writes.update(rt, data, ctl.actor)));
  }

  /** Deletes a session with its KV, counters and history. A running one, or one with units (moved to the best other sessions first), needs `force: true`. */
  async delete(id: string, options: DeleteOptions = {}): Promise<void> {
    const rt = this.#runtime(id);
    const opts = parseWith(deleteOptionsSchema, options, 'delete options');
    await rt.enqueue(async () => (await this.#units.vacate(id, opts.force, opts.actor), this.#writes.remove(rt, opts.force, opts.actor)));
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
      const claimed = this.#ownership.claim(rt); // one node answers at once: no turn of the event loop
      if (claimed !== true && !(await claimed)) return SETTLED; // another node runs it, or will
      return rt.start(ctl.reason ?? 'start');
    });
  }

  /** Stops a session (desired state `stopped`, persisted). Resolves when it is `stopped`. */
  async stop(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    return this.#control(id, options, async (rt, ctl) => {
      await this.#setDesired(rt, 'stopped', this.#auditLog.entry('stop', id, ctl.actor, ctl.reason ? { reason: ctl.reason } : {}));
      await rt.stop(ctl.reason ?? 'stop');
      await this.#ownership.release(rt);
      return SETTLED;
    });
  }

  /** Stops and starts again (desired state `running`). Resolves like `start()`. */
  async restart(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    const remote = this.#remote<SessionSnapshot>(id, 'restart', options);
    if (remote) return remote;
    return this.#control(id, options, async (rt, ctl) => {
      const reason = ctl.reason ?? 'restart';
      await rt.stop(reason);
      await this.#setDesired(rt, 'running', this.#auditLog.entry('restart', id, ctl.actor, {}));
      const claimed = this.#ownership.claim(rt);
      if (claimed !== true && !(await claimed)) return SETTLED;
      rt.countRestart();
      return rt.start(reason);
    });
  }

  /**
   * Delivers a code, password or pairing code to a session that is `authenticating`. Each
   * submission is audited (`auth`: the kind and the outcome, never the value), refused ones too.
   */
  async submitAuth(id: string, input: { kind: 'code' | 'password' | 'pairing-code'; value: string }, options: ControlOptions = {}): Promise<void> {
    const rt = this.#runtime(id);
    const data = parseWith(authInputSchema, input, 'auth input');
    const ctl = parseControlOptions(options);
    if (rt.remote) return void (await this.#ownership.forward(rt, 'submitAuth', [data, ctl.actor ? { actor: ctl.actor } : {}]));
    await this.#writes.submitAuth(rt, data, ctl.actor, (e) => this.#managerError(e));
  }

  /**
   * Drops the session's stored auth state (platform session files, keys …) and keeps the
   * session. A running session is restarted, so it authenticates again.
   */
  async logout(id: string, options: ControlOptions = {}): Promise<SessionSnapshot> {
    const remote = this.#remote<SessionSnapshot>(id, 'logout', options);
    if (remote) return remote;
    return this.#control(id, options, (rt, ctl) => this.#writes.logout(rt, ctl.actor));
  }

  /** Drops the session's context data (history, topic maps …); keeps credentials, config and auth state. */
  async clear(id: string, options: ControlOptions = {}): Promise<number> {
    const rt = this.#runtime(id);
    const ctl = parseControlOptions(options);
    return rt.enqueue(async () => {
      this.#assertLive(rt);
      return this.#writes.clearContext(rt, ctl.actor);
    });
  }

  /** Performs a platform action; the session must be `ready` or `degraded` (`SessionNotReadyError`). */
  async send(id: string, action: JsonValue): Promise<JsonValue | undefined> {
    const rt = this.#runtime(id);
    return rt.remote ? this.#ownership.forward(rt, 'send', [action]) : rt.send(action);
  }

  /** Records activity (resets the idle timer). */
  async touch(id: string): Promise<void> {
    const rt = this.#runtime(id);
    if (rt.remote) await this.#ownership.forward(rt, 'touch', []);
    else rt.touch();
  }

  /** The session's context-data KV (the same space the adapter sees as `ctx.kv`, sealed the same way). */
  kv(id: string): SessionKv {
    this.#runtime(id);
    return new NamespacedKv(this.#core.kvStore(), id, CONTEXT_PREFIX);
  }

  // ------------------------------------------------------------------ observability

  async status(id: string): Promise<SessionStatus> {
    const rt = this.#runtime(id);
    return rt.remote ? ((await this.#ownership.forward(rt, 'status', [])) as unknown as SessionStatus) : rt.status();
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
    if (rt.remote) return (await this.#ownership.forward(rt, 'logs', [q as JsonObject])) as unknown as LogEntry[];
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

  /** Every session with its worker groups of units, its node and last activity. */
  async workerStatus(): Promise<WorkerStatus[]> {
    this.#assertOpen();
    return this.#units.workerStatus();
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
    return managerCheckpoint(this.#storage, this.#clock, stream, options);
  }

  /**
   * Re-encrypts every session's auth state and context data (session by session), then its
   * credentials in one transaction; from then on the manager uses the new key. Fails (and changes
   * nothing) when any stored credential or value cannot be decrypted with the current key. Values
   * stored unencrypted where they must not be (written before encryption at rest) are encrypted;
   * with the current key as `newKey`, that is all it changes. Interrupted, run it again.
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

  /** A control call run on the node that runs the session, when that is another node (else null). */
  #remote<T>(id: string, op: RemoteOp, options: ControlOptions): Promise<T> | null {
    const rt = this.#runtime(id);
    const { actor, reason } = parseControlOptions(options);
    return rt.remote ? (this.#ownership.forward(rt, op, [{ ...(actor ? { actor } : {}), ...(reason ? { reason } : {}) }]) as Promise<T>) : null;
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

  /** Persists the desired state with its audit entry; when it is unchanged, the entry is written on its own. */
  async #setDesired(rt: SessionRuntime, desired: 'running' | 'stopped', audit: WriteOptions | undefined): Promise<void> {
    if (!(await rt.setDesired(desired, audit))) await this.#auditLog.append(audit);
  }

  #managerError(error: unknown): void {
    reportManagerError(this.#logger, this.#events, this.#clock, error);
  }
}
