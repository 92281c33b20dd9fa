import type { Adapter, AuthInput } from '../../adapters/contract.js';
import { AbortedError, AdapterError, InvalidTransitionError, MultisessionError, SessionNotFoundError, versionConflict } from '../../errors.js';
import { canTransition, type DesiredState, type HealthStatus, type SessionState } from '../../lifecycle.js';
import { SessionRateLimiter } from '../../net/session-limiter.js';
import type { TokenBucket } from '../../net/token-bucket.js';
import { redact, scrubDeep, scrubError, scrubText } from '../../security/redact.js';
import type { SessionError, SessionPatch, SessionRecord, WriteOptions } from '../../storage/contract.js';
import type { JsonValue } from '../../types.js';
import type { SessionManagerEventName, SessionManagerEventPayload } from '../events.js';
import type { ManagerCore } from '../manager-core.js';
import type { LogEntry, SessionAuthInfo, SessionSnapshot, SessionStatus, TransitionInfo } from '../snapshot.js';
import { Run } from './attempt.js';
import { submitAuth } from './auth-flow.js';
import { rescheduleIdle } from './idle-timer.js';
import { CUSTOM_COUNTER_PREFIX, type BuiltinCounter } from './counters.js';
import { LogRing } from './log-ring.js';
import { platformLogout, send } from './sender.js';
import { supervise } from './supervisor.js';
import { snapshotOf, statusOf } from './views.js';

/** Who runs a session: a node id, since when, and whether that node is this one. */
export interface SessionOwner {
  nodeId: string;
  since: number;
  local: boolean;
}

const noop = () => undefined;
const RESOLVED = Promise.resolve();


/**
 * The runtime of one session: the single guard of its state. Its state is private; the manager
 * and the runtime's parts (supervisor, health monitor, idle timer, auth flow, sender) read it
 * through getters and change it only through the methods below, which keep the transition table,
 * persist the status and announce every change. Control calls are serialised through `enqueue`;
 * the supervisor (attempt loop with back-off) runs beside the queue and is stopped through its
 * cancellation, so a stop never waits behind a start that hangs on a QR.
 */
export class SessionRuntime {
  #record: SessionRecord;
  #state: SessionState = 'stopped'; // a fresh runtime has no connection, whatever was stored
  #health: HealthStatus = 'unknown';
  #auth: SessionAuthInfo | null = null;
  #lastError: SessionError | null;
  #lastActivityAt: number | null;
  #readyAt: number | null = null;
  #restarts = 0;
  #deleted = false;
  #transitions: TransitionInfo[] = [];
  #logs: LogRing | null = null;
  /** true once the stored history is merged in; the pending load while it runs. */
  #history: true | Promise<void> | null;
  /** The end of the control queue; null when nothing is queued. */
  #queue: Promise<unknown> | null = null;
  #run: Run | null = null;
  /** The session's outbound rate limit (`config.rateLimit`), made when first needed; outlives attempts. */
  #limiter: SessionRateLimiter | null = null;
  /** The node that runs the session (this one or another), as last known; null when none does. */
  #owner: SessionOwner | null = null;
  /**
   * This node's ownership token for the session while it holds (or last held) the lease; every
   * write the runtime makes carries it. `null` with a fencing store: the runtime writes nothing.
   */
  #lease: number | null = null;
  readonly #core: ManagerCore;
  readonly #adapter: Adapter | null;

  /** `adapter` is null when no adapter of the session's platform is registered (it cannot start). */
  constructor(core: ManagerCore, adapter: Adapter | null, record: SessionRecord, options: { fresh: boolean }) {
    this.#core = core;
    this.#adapter = adapter;
    this.#record = record;
    this.#lastError = record.lastError;
    this.#lastActivityAt = record.lastActivityAt;
    this.#history = options.fresh ? true : null;
  }

  // ---------------------------------------------------------------- reads

  get id(): string {
    return this.#record.id;
  }
  get core(): ManagerCore {
    return this.#core;
  }
  get adapter(): Adapter | null {
    return this.#adapter;
  }
  get record(): SessionRecord {
    return this.#record;
  }
  get state(): SessionState {
    return this.#state;
  }
  get health(): HealthStatus {
    return this.#health;
  }
  get auth(): SessionAuthInfo | null {
    return this.#auth;
  }
  get lastError(): SessionError | null {
    return this.#lastError;
  }
  get lastActivityAt(): number | null {
    return this.#lastActivityAt;
  }
  get readyAt(): number | null {
    return this.#readyAt;
  }
  get restarts(): number {
    return this.#restarts;
  }
  get deleted(): boolean {
    return this.#deleted;
  }
  get transitions(): readonly TransitionInfo[] {
    return this.#transitions;
  }
  /** The current supervision, if the session is running. */
  get run(): Run | null {
    return this.#run;
  }
  get running(): boolean {
    return this.#run !== null;
  }
  get owner(): SessionOwner | null {
    return this.#owner;
  }
  /** Owned by another node: what callers see is what that node stored. */
  get remote(): boolean {
    return this.#owner !== null && !this.#owner.local && this.#run === null;
  }
  get lease(): number | null {
    return this.#lease;
  }
  /** The state and health callers see: this node's own, or those the node that runs it stored. */
  get shownState(): SessionState { return this.remote ? this.#record.state : this.#state; }
  get shownHealth(): HealthStatus { return this.remote ? this.#record.health : this.#health; }

  snapshot(): SessionSnapshot {
    return snapshotOf(this);
  }

  status(): SessionStatus {
    return statusOf(this);
  }

  logs(limit: number, level?: LogEntry['level']): LogEntry[] {
    return this.#logs ? this.#logs.read(limit, level) : [];
  }

  // ---------------------------------------------------------------- the control queue

  /**
   * Loads the stored transition history once (a runtime made by `open()` starts without it), so
   * history survives restarts. Runs before the first transition and before the first read.
   */
  loadHistory(): Promise<void> {
    if (this.#history === true) return Promise.resolve();
    // Without the history capability, transitions are kept in memory only.
    this.#history ??= (this.#core.storage.history?.list(this.id, this.#core.options.historySize) ?? Promise.resolve([])).then(
      (stored) => {
        const keep = this.#core.options.historySize;
        this.#transitions = stored.map((t) => ({ from: t.from, to: t.to, reason: t.reason, at: t.at })).concat(this.#transitions).slice(-keep);
        this.#history = true;
      },
      (error) => {
        this.#history = null; // try again next time
        throw error;
      },
    );
    return this.#history;
  }

  /** Serialises control calls on this session (after its history is loaded). */
  enqueue<T>(task: () => Promise<T>): Promise<T> {
    const fn = () => this.loadHistory().then(task);
    const next = (this.#queue ?? RESOLVED).then(fn, fn);
    const tail = next.then(noop, noop); // keeps neither the result nor the error alive
    this.#queue = tail;
    // An idle session holds no promise at all.
    void tail.then(() => {
      if (this.#queue === tail) this.#queue = null;
    });
    return next;
  }

  // ---------------------------------------------------------------- control (call inside enqueue)

  /**
   * Begins supervision if not running. Returns (wrapped, so the control queue never waits on it)
   * a promise that resolves when the first attempt settles.
   */
  start(reason: string): { settled: Promise<void> } {
    if (this.#run) return { settled: this.#run.settled };
    const run = new Run();
    this.#run = run;
    void supervise(this, run, reason);
    return { settled: run.settled };
  }

  /** Stops supervision and the connection; the session ends `stopped`. */
  async stop(reason: string): Promise<void> {
    const run = this.#run;
    if (!run && this.#state === 'stopped') return;
    this.transition('stopping', reason);
    if (run) {
      run.abort(new AbortedError(`Session "${this.id}" was stopped (${reason}).`));
      run.attempt?.end({ kind: 'aborted' });
      await run.done;
    }
    this.#health = 'unknown'; // no connection: nothing to vouch for
    this.transition('stopped', reason);
  }

  /**
   * Versioned write of the stored record (with its audit entry, if given, in the same
   * transaction); on a lost update the record is read again, so a retry can succeed.
   */
  async write(patch: SessionPatch, options?: WriteOptions): Promise<SessionRecord> {
    const sessions = this.#core.storage.sessions;
    const expected = this.#record.version;
    const updated = await sessions.update(this.id, patch, expected, options);
    if (updated) return (this.#record = updated);
    // Lost: read the record again (so a retry can succeed) and say why.
    const fresh = await sessions.get(this.id).catch(() => undefined);
    if (fresh === null) throw new SessionNotFoundError(this.id);
    if (fresh && !fresh.readError) this.#record = fresh;
    throw versionConflict(this.id, expected, fresh?.version ?? null, 'read it again and retry');
  }

  /** Persists the desired state with `options`' audit entry; false (nothing written) when it is already `desired`. */
  async setDesired(desired: DesiredState, options?: WriteOptions): Promise<boolean> {
    if (this.#record.desiredState === desired) return false;
    await this.write({ desiredState: desired, updatedAt: this.#core.clock.now() }, options);
    return true;
  }

  /** A record written by someone else for this session (key rotation, another node). */
  adoptRecord(record: SessionRecord): void {
    if (record.id === this.id) this.#record = record;
  }

  /** Who runs the session now (set by the ownership of the manager); a change is announced with its reason. */
  setOwner(owner: SessionOwner | null, reason: string | null): void {
    const from = this.#owner?.nodeId ?? null;
    this.#owner = owner;
    const to = owner?.nodeId ?? null;
    if (reason !== null && from !== to) this.emit('session.owner', { id: this.id, from, to, reason, at: this.#core.clock.now() });
  }

  /** This node's lease token (null: none, and with a fencing store nothing is written). */
  setLease(token: number | null): void {
    this.#lease = token;
  }

  /** The fence of this runtime's writes: undefined without fencing, false when it must not write. */
  fence(): number | undefined | false {
    if (!this.#core.fencing) return undefined;
    return this.#lease ?? false;
  }

  /**
   * Deletes the session: stops it, then removes it from storage. Nothing of it lands after the
   * delete (on a new session that takes the same id): queued writes are dropped and a write
   * already under way is awaited first. False when the stored row was gone already (then
   * `options`' audit entry was not written either).
   */
  async remove(options?: WriteOptions): Promise<boolean> {
    if (this.#deleted) throw new SessionNotFoundError(this.id);
    if (this.running || this.#state !== 'stopped') await this.stop('deleted');
    this.#deleted = true;
    this.#core.persister.forget(this.id);
    await this.#core.persister.flush();
    return this.#core.storage.sessions.delete(this.id, options);
  }

  /** Marks a session whose stored row, credentials or adapter cannot be used: `failed`, not started. */
  markUnusable(error: SessionError): void {
    this.#lastError = error;
    if (this.#state === 'stopped') {
      this.transition('starting', 'restore');
      this.transition('failed', error.message);
    }
  }

  submitAuth(input: AuthInput): Promise<void> {
    return submitAuth(this, input);
  }

  send(action: JsonValue): Promise<JsonValue | undefined> {
    return send(this, action);
  }

  /** Asks a live connection to log out on the platform (best effort, bounded like stop()). */
  platformLogout(): Promise<void> {
    return platformLogout(this);
  }

  /** The idle timeout changed: re-plan the live attempt's idle check. */
  rescheduleIdle(): void {
    rescheduleIdle(this);
  }

  // ---------------------------------------------------------------- changes (the runtime's parts)

  /** Moves to `to` by the transition table. A superseded supervisor (`run` not current) changes nothing. */
  transition(to: SessionState, reason: string, run?: Run | null): void {
    if (run && (run.aborted || this.#run !== run)) return;
    const from = this.#state;
    if (!canTransition(from, to)) throw new InvalidTransitionError(this.id, from, to);
    const at = this.#core.clock.now();
    this.#state = to;
    const t: TransitionInfo = { from, to, reason, at };
    // Exact-size copies: a pushed-to array reserves 16 slots, ten thousand sessions × 2 arrays.
    const keep = this.#core.options.historySize;
    const list = this.#transitions;
    this.#transitions = (list.length >= keep ? list.slice(list.length - keep + 1) : list).concat([t]);
    const fence = this.fence();
    if (fence !== false) this.#core.persister.transition(fence === undefined ? { sessionId: this.id, from, to, reason, at } : { sessionId: this.id, from, to, reason, at, fence });
    this.persistStatus();
    this.emit('session.state', { id: this.id, from, to, reason, at });
  }

  setHealth(health: HealthStatus): void {
    this.#health = health;
  }

  setAuth(info: SessionAuthInfo | null): void {
    this.#auth = info;
  }

  setLastError(error: SessionError | null): void {
    this.#lastError = error;
  }

  /** The connection came up (`at`) or went down (`null`). */
  setReadyAt(at: number | null): void {
    this.#readyAt = at;
  }

  /** The supervision `run` is over (called by the supervisor once, when it ends). */
  runEnded(run: Run): void {
    if (this.#run === run) this.#run = null;
  }

  countRestart(): void {
    this.#restarts++;
    this.count('restarts');
  }

  /** The session's rate limiter, made when first asked for (it outlives attempts). */
  limiter(): SessionRateLimiter {
    return (this.#limiter ??= new SessionRateLimiter(this.#core.clock));
  }

  /** The session's rate-limit bucket, or null when its config has no `rateLimit`. */
  rateLimitBucket(): TokenBucket | null {
    if (!this.#limiter && (this.#record.config as { rateLimit?: unknown } | null)?.rateLimit == null) return null;
    return this.limiter().bucket(this.#record.config);
  }

  /**
   * The limiter outbound traffic must pass (`manager.send`, `ctx.fetch`), or null when the
   * session has neither a `rateLimit` nor ever was paused (no limiter is made for it).
   */
  outboundLimiter(): SessionRateLimiter | null {
    if (this.#limiter) return this.#limiter;
    return (this.#record.config as { rateLimit?: unknown } | null)?.rateLimit == null ? null : this.limiter();
  }

  touch(): void {
    this.#lastActivityAt = this.#core.clock.now();
    const fence = this.fence();
    if (fence !== false) this.#core.persister.status({ id: this.id, lastActivityAt: this.#lastActivityAt, ...(fence === undefined ? {} : { fence }) });
  }

  persistStatus(): void {
    const fence = this.fence();
    if (fence === false) return;
    this.#core.persister.status({ id: this.id, state: this.#state, health: this.#health, lastError: this.#lastError, ...(fence === undefined ? {} : { fence }) });
  }

  emit<E extends SessionManagerEventName>(event: E, payload: SessionManagerEventPayload<E>): void {
    this.#core.emit(event, payload);
  }

  /** Emits; resolves once the promises the listeners returned have settled. */
  emitAndWait<E extends SessionManagerEventName>(event: E, payload: SessionManagerEventPayload<E>): Promise<void> {
    return this.#core.emitAndWait(event, payload);
  }

  count(name: BuiltinCounter): void {
    const fence = this.fence();
    if (fence !== false) this.#core.persister.increment(this.id, name, 1, fence);
  }

  /** A custom counter raised by the adapter (`ctx.stats.increment`). */
  increment(name: string, by: number): void {
    const fence = this.fence();
    if (fence !== false) this.#core.persister.increment(this.id, CUSTOM_COUNTER_PREFIX + name, by, fence);
  }

  log(level: LogEntry['level'], msg: string, data?: Record<string, unknown>): void {
    const secrets = this.secrets();
    const safe = data ? scrubDeep(redact(data), secrets) : undefined;
    if (secrets.length) msg = scrubText(msg, secrets);
    const at = this.#core.clock.now();
    const entry: LogEntry = safe ? { at, level, msg, data: safe } : { at, level, msg };
    if (this.#core.options.logBufferSize > 0) (this.#logs ??= new LogRing(this.#core.options.logBufferSize)).push(entry);
    try {
      this.#core.logger[level]({ sessionId: this.id, platform: this.#record.platform, ...safe }, msg);
    } catch {
      // A logger that throws must never change an outcome; the line is in the ring buffer.
    }
  }

  // ---------------------------------------------------------------- errors without secrets

  /** The string values of the session's credentials (to scrub from messages). */
  secrets(): string[] {
    return this.#core.secretStringsOf(this.#record);
  }

  scrub(cause: unknown): string {
    return scrubText(cause instanceof Error ? cause.message : String(cause), this.secrets());
  }

  adapterError(operation: string, cause: unknown): AdapterError {
    // The cause is kept for debugging, but never with a credential inside (loggers print causes).
    const secrets = this.secrets();
    const error = new AdapterError(this.id, operation, scrubError(cause, secrets));
    if (secrets.length) {
      Object.defineProperty(error, 'message', { value: scrubText(error.message, secrets) });
      if (error.stack) Object.defineProperty(error, 'stack', { value: scrubText(error.stack, secrets) });
    }
    return error;
  }

  errorInfo(error: Error): SessionError {
    return { code: error instanceof MultisessionError ? error.code : 'ERROR', message: scrubText(error.message, this.secrets()), at: this.#core.clock.now() };
  }

  reportError(error: Error): void {
    this.log('error', error.message);
    this.count('errors');
    this.emit('session.error', { id: this.id, error, code: error instanceof MultisessionError ? error.code : 'ERROR', at: this.#core.clock.now() });
  }
}
