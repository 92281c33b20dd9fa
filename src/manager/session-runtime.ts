import pRetry from 'p-retry';
import type { Adapter, AdapterContext, AuthInput, HealthReport, PlatformConnection, SessionAuth, SessionLog, SessionStats } from '../adapters/contract.js';
import {
  AbortedError,
  AdapterError,
  AuthNotPendingError,
  AuthTimeoutError,
  InvalidTransitionError,
  MultisessionError,
  SessionNotReadyError,
  ValidationError,
} from '../errors.js';
import { redact, scrubDeep, scrubError, scrubText } from '../security/redact.js';
import { requireCapability, type SessionError, type SessionRecord } from '../storage/contract.js';
import { createSessionFetch, type SessionFetch, type SessionFetchHandle } from '../net/session-fetch.js';
import { SessionRateLimiter } from '../net/session-limiter.js';
import type { TokenBucket } from '../net/token-bucket.js';
import { cloneJson, deepFreeze, type JsonValue } from '../types.js';
import { ACTIVE_STATES, HEALTH_STATUSES, canTransition, type AuthKind, type HealthStatus, type SessionState } from '../lifecycle.js';
import { Cancellation } from './cancellation.js';
import { LogRing } from './log-ring.js';
import { redactNetworkSecrets } from '../net/config.js';
import type { ManagerCore } from './manager-core.js';
import type { ScheduledTask } from './scheduler.js';
import { AUTH_PREFIX, CONTEXT_PREFIX, NamespacedKv } from './session-kv.js';
import type { LogEntry, SessionAuthInfo, SessionSnapshot, SessionStatus, TransitionInfo } from './snapshot.js';

/** Why a live attempt ended. */
type Down =
  | { kind: 'failed'; error: Error }
  | { kind: 'expired'; reason: string; health: HealthStatus }
  | { kind: 'aborted' };

/** The platform said the credentials are no longer valid: not retried. */
class ExpiredSignal extends Error {
  constructor(readonly reason: string, readonly health: HealthStatus) {
    super(reason);
  }
}

/** One supervision of a running session: from start() until stop(), failed or expired. */
class Run {
  readonly cancel = new Cancellation();
  attempt: Attempt | null = null;
  // Both promises are made only when somebody waits, and dropped once they are resolved: a
  // session that runs for days holds neither.
  #settled: Promise<void> | null = null;
  #settle: (() => void) | null = null;
  #isSettled = false;
  #done: Promise<void> | null = null;
  #finish: (() => void) | null = null;
  #isDone = false;

  /** Resolves when the first attempt settles (ready, authenticating, backoff, failed, expired). */
  get settled(): Promise<void> {
    if (this.#isSettled) return RESOLVED;
    return (this.#settled ??= new Promise<void>((r) => (this.#settle = r)));
  }

  /** Resolves when supervision has ended (the connection is torn down). */
  get done(): Promise<void> {
    if (this.#isDone) return RESOLVED;
    return (this.#done ??= new Promise<void>((r) => (this.#finish = r)));
  }

  settle(): void {
    if (this.#isSettled) return;
    this.#isSettled = true;
    this.#settle?.();
    this.#settle = null;
    this.#settled = null;
  }

  finish(): void {
    this.settle();
    if (this.#isDone) return;
    this.#isDone = true;
    this.#finish?.();
    this.#finish = null;
    this.#done = null;
  }
}

const RESOLVED = Promise.resolve();

/** One connection attempt: connect, start, live, teardown. */
class Attempt {
  constructor(readonly runtime: unknown) {
    this.down = new Promise<Down>((r) => (this.#resolveDown = r));
  }

  /** Made on first use of `ctx.signal` (an AbortSignal costs ~0.8 KB once touched). */
  #controller: AbortController | null = null;
  #aborted: unknown = undefined;
  connection: PlatformConnection<JsonValue> | null = null;
  ended = false;
  /** stop() has returned (or timed out): from now on the connection's ctx refuses writes. */
  closed = false;
  live = false;
  /** An auth step (QR, code …) was shown and not yet answered: the start watchdog waits. */
  awaitingAuth = false;
  healthFailures = 0;
  checking = false;
  healthTask: ScheduledTask | null = null;
  /** The health tick is armed (the task object itself lives as long as the attempt). */
  tickPending = false;
  idleTask: ScheduledTask | null = null;
  watchdog: ScheduledTask | null = null;
  authTimer: ScheduledTask | null = null;
  healthTimeout: ScheduledTask | null = null;
  pending: { kind: Exclude<AuthKind, 'qr'>; resolve(value: string): void; reject(error: Error): void } | null = null;
  /** Numbers health checks, so a late answer is matched to its own check. */
  checkSeq = 0;
  /** `ctx.fetch` of this attempt, made on first use; its proxy dispatcher is destroyed at teardown. */
  net: SessionFetchHandle | null = null;
  readonly down: Promise<Down>;
  #resolveDown!: (d: Down) => void;
  #downed = false;

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted !== undefined) this.#controller.abort(this.#aborted);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted !== undefined) return;
    this.#aborted = reason;
    this.#controller?.abort(reason);
  }

  end(d: Down): void {
    if (this.#downed) return;
    this.#downed = true;
    this.#resolveDown(d);
  }

  cancelTimers(): void {
    this.healthTask?.cancel();
    this.idleTask?.cancel();
    this.watchdog?.cancel();
    this.authTimer?.cancel();
    this.healthTimeout?.cancel();
    this.healthTask = this.idleTask = this.watchdog = this.authTimer = this.healthTimeout = null;
  }
}

const noop = () => undefined;

const BUILTIN_COUNTERS = ['starts', 'restarts', 'failures', 'messagesIn', 'messagesOut', 'errors'] as const;
export type BuiltinCounter = (typeof BUILTIN_COUNTERS)[number];
export const CUSTOM_COUNTER_PREFIX = 'custom:';
export { BUILTIN_COUNTERS };

/**
 * The runtime of one session: the single guard for its state. Control calls are serialised
 * through `enqueue`; the supervisor (attempt loop with back-off) runs beside the queue and is
 * stopped through its AbortController, so a stop never waits behind a start that hangs on a QR.
 */
export class SessionRuntime {
  record: SessionRecord;
  state: SessionState;
  health: HealthStatus;
  auth: SessionAuthInfo | null = null;
  lastError: SessionError | null;
  lastActivityAt: number | null;
  readyAt: number | null = null;
  restarts = 0;
  deleted = false;
  transitions: TransitionInfo[] = [];
  #logs: LogRing | null = null;
  /** true once the stored history is merged in; the pending load while it runs. */
  #history: true | Promise<void> | null;
  #queue: Promise<unknown> = Promise.resolve();
  #run: Run | null = null;
  /** The session's outbound rate limit (`config.rateLimit`), made when first needed; outlives attempts. */
  #limiter: SessionRateLimiter | null = null;
  readonly #core: ManagerCore;
  readonly #adapter: Adapter;

  constructor(core: ManagerCore, adapter: Adapter, record: SessionRecord, options: { fresh: boolean }) {
    this.#core = core;
    this.#adapter = adapter;
    this.record = record;
    // A fresh runtime has no connection: whatever state was stored, it is stopped now.
    this.state = 'stopped';
    this.health = 'unknown';
    this.lastError = record.lastError;
    this.lastActivityAt = record.lastActivityAt;
    this.#history = options.fresh ? true : null;
  }

  get id(): string {
    return this.record.id;
  }

  get adapter(): Adapter {
    return this.#adapter;
  }

  get running(): boolean {
    return this.#run !== null;
  }

  /**
   * Loads the stored transition history once (a runtime made by `open()` starts without it), so
   * history survives restarts. Runs before the first transition and before the first read.
   */
  loadHistory(): Promise<void> {
    if (this.#history === true) return Promise.resolve();
    this.#history ??= (this.#core.storage.history?.list(this.id, this.#core.options.historySize) ?? Promise.resolve([])).then(
      (stored) => {
        this.transitions = stored.map((t) => ({ from: t.from, to: t.to, reason: t.reason, at: t.at })).concat(this.transitions).slice(-this.#core.options.historySize);
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
    const next = this.#queue.then(fn, fn);
    this.#queue = next.then(noop, noop); // keeps neither the result nor the error alive
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
    void this.#supervise(run, reason);
    return { settled: run.settled };
  }

  /** Stops supervision and the connection; the session ends `stopped`. */
  async stop(reason: string): Promise<void> {
    const run = this.#run;
    if (!run && this.state === 'stopped') return;
    this.#transition('stopping', reason);
    if (run) {
      run.cancel.abort(new AbortedError(`Session "${this.id}" was stopped (${reason}).`));
      run.attempt?.end({ kind: 'aborted' });
      await run.done;
    }
    this.health = 'unknown'; // no connection: nothing to vouch for
    this.#transition('stopped', reason);
  }

  // ---------------------------------------------------------------- calls from the manager

  async submitAuth(input: AuthInput): Promise<void> {
    const attempt = this.#run?.attempt;
    if (this.state !== 'authenticating' || !attempt || attempt.ended) {
      throw new AuthNotPendingError(this.id, `Session "${this.id}" is "${this.state}" and is not waiting for authentication.`);
    }
    const conn = attempt.connection;
    const pending = attempt.pending;
    if (pending && pending.kind !== input.kind && !conn?.submitAuth) {
      throw new AuthNotPendingError(this.id, `Session "${this.id}" waits for a ${pending.kind}, not a ${input.kind}.`);
    }
    if (!pending && !conn?.submitAuth) {
      throw new AuthNotPendingError(this.id, `Session "${this.id}" waits for a ${this.auth?.kind ?? 'scan'}; its adapter takes no typed input for that.`);
    }
    this.touch();
    if (conn?.submitAuth) {
      try {
        await this.#untilEnded(attempt, conn.submitAuth(input), 'submitAuth');
      } catch (cause) {
        throw this.#adapterError('submitAuth', cause);
      }
    }
    if (pending && pending.kind === input.kind && attempt.pending === pending) {
      attempt.pending = null;
      pending.resolve(input.value);
    }
    if (attempt.ended || attempt.pending) return;
    attempt.awaitingAuth = false;
    attempt.authTimer?.cancel();
    attempt.authTimer = null;
    if (attempt.live) {
      // Re-authentication of a session that was already up: back to ready.
      this.auth = null;
      if (this.state === 'authenticating') this.#transition('ready', 'authenticated', this.#run);
    } else {
      this.#armWatchdog(attempt);
    }
  }

  async send(action: JsonValue): Promise<JsonValue | undefined> {
    const attempt = this.#run?.attempt;
    if (!ACTIVE_STATES.has(this.state) || !attempt?.connection || !attempt.live) {
      throw new SessionNotReadyError(this.id, this.state, 'send');
    }
    const parsed = this.#adapter.action.safeParse(action);
    if (!parsed.success) {
      throw new ValidationError(
        'action',
        parsed.error.issues.map((i) => ({ path: ['action', ...i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))] as (string | number)[], message: i.message })),
      );
    }
    if (this.#limiter || (this.record.config as { rateLimit?: unknown } | null)?.rateLimit != null) {
      // Waits for this session's own token (or throws RateLimitError past rateLimit.maxWaitMs).
      const limiter = (this.#limiter ??= new SessionRateLimiter(this.#core.clock));
      const turn = limiter.acquireForSend(this.record.config, this.id, attempt.signal);
      if (turn) {
        await turn;
        if (attempt.ended || !attempt.live || !ACTIVE_STATES.has(this.state)) throw new SessionNotReadyError(this.id, this.state, 'send');
      }
    }
    this.touch();
    try {
      const result = await this.#untilEnded(attempt, attempt.connection.send(parsed.data as JsonValue), 'send');
      this.#count('messagesOut');
      this.#core.emit('session.message', { id: this.id, direction: 'out', message: action, at: this.#core.clock.now() });
      return result === undefined ? undefined : result;
    } catch (cause) {
      const error = this.#adapterError('send', cause);
      this.#reportError(error);
      throw error;
    }
  }

  /** Asks a live connection to log out on the platform (best effort). */
  async platformLogout(): Promise<void> {
    const attempt = this.#run?.attempt;
    const conn = attempt?.connection;
    if (!attempt || !conn?.logout) return;
    const ms = this.#core.options.stopTimeoutMs;
    let timer: ScheduledTask | null = null;
    try {
      // Best effort, bounded like stop(): a logout the platform never answers is abandoned.
      await Promise.race([
        this.#untilEnded(attempt, Promise.resolve().then(() => conn.logout!()), 'logout'),
        new Promise<void>((_, reject) => {
          timer = this.#core.scheduler.schedule(ms, () => reject(new Error(`logout() did not finish within ${ms} ms`)));
        }),
      ]);
    } catch (cause) {
      this.log('warn', `platform logout failed: ${this.#scrub(cause)}`);
    } finally {
      (timer as ScheduledTask | null)?.cancel();
    }
  }

  /** The session's rate-limit bucket for `ctx.fetch`, or null when its config has no `rateLimit`. */
  rateLimitBucket(): TokenBucket | null {
    if (!this.#limiter && (this.record.config as { rateLimit?: unknown } | null)?.rateLimit == null) return null;
    return (this.#limiter ??= new SessionRateLimiter(this.#core.clock)).bucket(this.record.config);
  }

  /** The idle timeout changed: re-plan the live attempt's idle check. */
  rescheduleIdle(): void {
    const attempt = this.#run?.attempt;
    if (!attempt?.live || attempt.ended) return;
    attempt.idleTask?.cancel();
    attempt.idleTask = null;
    this.#scheduleIdle(attempt);
  }

  /**
   * An adapter call tied to its connection: when the connection goes down (stop, restart,
   * delete, close) the caller gets a typed error instead of waiting on an answer that never comes.
   */
  #untilEnded<T>(attempt: Attempt, call: Promise<T> | T, operation: string): Promise<T> {
    const ended = attempt.down.then((): never => {
      throw new SessionNotReadyError(this.id, this.state, `${operation} (the connection went down while it waited)`);
    });
    ended.catch(() => undefined);
    return Promise.race([Promise.resolve(call), ended]);
  }

  touch(): void {
    this.lastActivityAt = this.#core.clock.now();
    this.#core.persister.status({ id: this.id, lastActivityAt: this.lastActivityAt });
  }

  log(level: LogEntry['level'], msg: string, data?: Record<string, unknown>): void {
    const secrets = this.#secrets();
    const safe = data ? scrubDeep(redact(data), secrets) : undefined;
    if (secrets.length) msg = scrubText(msg, secrets);
    const entry: LogEntry = safe ? { at: this.#core.clock.now(), level, msg, data: safe } : { at: this.#core.clock.now(), level, msg };
    if (this.#core.options.logBufferSize > 0) (this.#logs ??= new LogRing(this.#core.options.logBufferSize)).push(entry);
    try {
      this.#core.logger[level]({ sessionId: this.id, platform: this.record.platform, ...safe }, msg);
    } catch {
      // A logger that throws must never change an outcome; the line is in the ring buffer.
    }
  }

  logs(limit: number, level?: LogEntry['level']): LogEntry[] {
    return this.#logs ? this.#logs.read(limit, level) : [];
  }

  /** Marks a session whose stored row or credentials cannot be used: `failed`, not started. */
  markUnusable(error: SessionError): void {
    this.lastError = error;
    if (this.state === 'stopped') {
      this.#transition('starting', 'restore');
      this.#transition('failed', error.message);
    }
  }

  // ---------------------------------------------------------------- views

  snapshot(): SessionSnapshot {
    const r = this.record;
    return {
      id: r.id,
      platform: r.platform,
      config: redactNetworkSecrets(cloneJson(r.config)),
      hasCredentials: r.credentials !== null,
      state: this.state,
      desiredState: r.desiredState,
      auth: this.auth ? cloneJson(this.auth) : null,
      health: this.health,
      labels: { ...r.labels },
      metadata: cloneJson(r.metadata),
      priority: r.priority,
      capacity: r.capacity,
      autoStart: r.autoStart,
      idleTimeoutMs: r.idleTimeoutMs,
      allowSharedCredentials: r.allowSharedCredentials,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      lastActivityAt: this.lastActivityAt,
      lastError: this.lastError ? { ...this.lastError } : null,
      transitions: this.transitions.map((t) => ({ ...t })),
      version: r.version,
    };
  }

  status(): SessionStatus {
    return {
      id: this.id,
      platform: this.record.platform,
      state: this.state,
      desiredState: this.record.desiredState,
      health: this.health,
      auth: this.auth ? cloneJson(this.auth) : null,
      lastError: this.lastError ? { ...this.lastError } : null,
      lastActivityAt: this.lastActivityAt,
      uptimeMs: this.readyAt !== null && ACTIVE_STATES.has(this.state) ? this.#core.clock.now() - this.readyAt : null,
      restarts: this.restarts,
    };
  }

  // ---------------------------------------------------------------- supervision

  #delay(n: number): number {
    const { minDelayMs, maxDelayMs, factor } = this.#core.options.restart;
    return Math.min(maxDelayMs, minDelayMs * factor ** n);
  }

  /**
   * Brings the session up: a p-retry loop of attempts with back-off. Once an attempt is live the
   * supervision waits on a promise reaction (not a suspended frame: a ready session costs less).
   */
  async #supervise(run: Run, reason: string): Promise<void> {
    let attempt: Attempt;
    try {
      attempt = await pRetry((n) => this.#startAttempt(run, n === 1 ? reason : 'retry'), {
        retries: this.#core.options.restart.retries,
        minTimeout: 0,
        maxTimeout: 0,
        factor: 1,
        shouldRetry: async ({ error, retriesConsumed }) => {
          // Only the adapter's own failures are worth retrying: a key that cannot decrypt, stored
          // credentials that no longer validate, a missing adapter or an auth timeout will not
          // mend themselves by waiting.
          if (error instanceof ExpiredSignal || run.cancel.aborted) return false;
          if (error instanceof MultisessionError && !(error instanceof AdapterError)) return false;
          this.#transition('backoff', `start failed: ${error.message}`, run);
          run.settle();
          this.restarts++;
          this.#count('restarts');
          await this.#core.scheduler.sleep(this.#delay(retriesConsumed), run.cancel);
          return true;
        },
      });
    } catch (error) {
      return this.#endRun(run, error);
    }
    void attempt.down.then((down) => this.#afterDown(run, attempt, down));
  }

  /** A live attempt went down: restart after the first back-off step (a fresh p-retry loop), or end. */
  async #afterDown(run: Run, attempt: Attempt, down: Down): Promise<void> {
    await this.#teardown(attempt);
    try {
      if (down.kind !== 'failed') throw this.#downError(down);
      this.#failure(down.error);
      if (this.#core.options.restart.retries === 0) throw down.error;
      this.#transition('backoff', `restarting: ${down.error.message}`, run);
      this.restarts++;
      this.#count('restarts');
      await this.#core.scheduler.sleep(this.#delay(0), run.cancel);
    } catch (error) {
      return this.#endRun(run, error);
    }
    void this.#supervise(run, 'restart');
  }

  /** Supervision is over: record why (unless stopped), and release whoever waits. */
  #endRun(run: Run, error: unknown): void {
    if (!run.cancel.aborted) {
      if (error instanceof ExpiredSignal) {
        this.health = error.health;
        this.lastError = { code: 'EXPIRED', message: error.reason, at: this.#core.clock.now() };
        this.#transition('expired', error.reason, run);
      } else {
        const err = error instanceof Error ? error : new Error(String(error));
        this.lastError = this.#errorInfo(err);
        this.#transition('failed', this.lastError.message, run);
      }
      this.#persistStatus();
    }
    if (this.#run === run) this.#run = null;
    run.finish();
  }

  /** Connects and starts one attempt. Resolves with it once it is up; throws when it never came up. */
  async #startAttempt(run: Run, reason: string): Promise<Attempt> {
    if (run.cancel.aborted) throw run.cancel.reason;
    const attempt = new Attempt(this);
    run.attempt = attempt;
    const core = this.#core;
    this.#transition('starting', reason, run);
    let started: Promise<Down | null>;
    try {
      const credentials = core.openCredentials(this.record);
      this.#count('starts'); // counted once the adapter is really asked to start
      const connection = this.#adapter.connect(new RuntimeContext(this, attempt, credentials) as AdapterContext<any, any>) as PlatformConnection<JsonValue>;
      if (!connection || typeof connection.start !== 'function' || typeof connection.stop !== 'function' || typeof connection.health !== 'function') {
        throw new Error('connect() must return an object with start, stop, health and send');
      }
      attempt.connection = connection;
      this.#armWatchdog(attempt);
      // A start() that throws synchronously is a failed start like any other.
      started = new Promise<void>((resolve) => resolve(connection.start())).then(
        () => null,
        (cause: unknown): Down => ({ kind: 'failed', error: this.#adapterError('start', cause) }),
      );
    } catch (cause) {
      await this.#teardown(attempt);
      throw this.#failure(cause instanceof MultisessionError ? cause : this.#adapterError('connect', cause));
    }
    const outcome = await Promise.race([started, attempt.down]);
    if (outcome) {
      attempt.end(outcome);
      await this.#teardown(attempt);
      throw this.#downError(outcome);
    }
    // Up.
    attempt.watchdog?.cancel();
    attempt.authTimer?.cancel();
    attempt.watchdog = attempt.authTimer = null;
    attempt.live = true;
    this.auth = null;
    const previous = this.health;
    this.health = 'healthy';
    // A restart that cured a failing session is announced; a first start is not news.
    if (previous !== 'healthy' && previous !== 'unknown') {
      this.#emit('session.health', { id: this.id, health: 'healthy', previous, detail: 'connected', failures: 0, at: core.clock.now() });
    }
    this.readyAt = core.clock.now();
    this.touch();
    this.#transition('ready', 'connected', run);
    this.#emit('session.ready', { id: this.id, at: core.clock.now() });
    run.settle();
    this.#scheduleHealth(attempt);
    this.#scheduleIdle(attempt);
    return attempt;
  }

  #downError(down: Down): Error {
    if (down.kind === 'expired') return new ExpiredSignal(down.reason, down.health);
    if (down.kind === 'aborted') return new AbortedError(`Session "${this.id}" was stopped.`);
    return this.#failure(down.error);
  }

  /** Counts and reports a failed attempt; returns the error for p-retry. */
  #failure(error: Error): Error {
    this.#count('failures');
    this.lastError = this.#errorInfo(error);
    this.#reportError(error);
    return error;
  }

  async #teardown(attempt: Attempt): Promise<void> {
    if (attempt.ended) return;
    attempt.ended = true;
    attempt.live = false;
    attempt.cancelTimers();
    attempt.pending?.reject(new AbortedError(`Session "${this.id}" stopped waiting for authentication.`));
    attempt.pending = null;
    attempt.abort(new AbortedError(`Session "${this.id}" is stopping.`));
    this.auth = null;
    this.readyAt = null;
    const conn = attempt.connection;
    if (!conn) {
      attempt.closed = true;
      await this.#closeNet(attempt);
      return;
    }
    const core = this.#core;
    let timer: ScheduledTask | null = null;
    try {
      await Promise.race([
        Promise.resolve().then(() => conn.stop()),
        new Promise<void>((_, reject) => {
          timer = core.scheduler.schedule(core.options.stopTimeoutMs, () =>
            reject(new Error(`stop() did not finish within ${core.options.stopTimeoutMs} ms`)),
          );
        }),
      ]);
    } catch (cause) {
      this.log('warn', `adapter stop failed: ${this.#scrub(cause)}`);
    } finally {
      (timer as ScheduledTask | null)?.cancel();
      attempt.closed = true;
      await this.#closeNet(attempt);
    }
  }

  /** Destroys the attempt's proxy dispatcher (its sockets), if `ctx.fetch` made one. */
  async #closeNet(attempt: Attempt): Promise<void> {
    const net = attempt.net;
    attempt.net = null;
    if (net) await net.close();
  }

  #armWatchdog(attempt: Attempt): void {
    attempt.watchdog?.cancel();
    const ms = this.#core.options.startTimeoutMs;
    attempt.watchdog = this.#core.scheduler.schedule(ms, () => {
      if (!attempt.live && !attempt.awaitingAuth) {
        attempt.end({ kind: 'failed', error: this.#adapterError('start', new Error(`did not finish within ${ms} ms`)) });
      }
    });
  }

  // ---------------------------------------------------------------- health and idle

  #scheduleHealth(attempt: Attempt): void {
    const { intervalMs, jitter } = this.#core.options.health;
    const delay = intervalMs * (1 - jitter * Math.random());
    // One task object per attempt, re-armed for every check (no allocation per tick).
    attempt.tickPending = true;
    if (attempt.healthTask) attempt.healthTask.rearm(delay);
    else attempt.healthTask = this.#core.scheduler.schedule(delay, SessionRuntime.#onHealthTick, attempt);
  }

  static readonly #onHealthTick = (attempt: Attempt) => (attempt.runtime as SessionRuntime).#checkHealth(attempt);
  static readonly #onHealthTimeout = (attempt: Attempt) => {
    const rt = attempt.runtime as SessionRuntime;
    rt.#finishHealth(attempt, attempt.checkSeq, { status: 'unhealthy', detail: `health check timed out after ${rt.#core.options.health.timeoutMs} ms` });
  };

  #checkHealth(attempt: Attempt): void {
    attempt.tickPending = false;
    if (attempt.ended || !attempt.connection) return;
    if (attempt.checking) return this.#scheduleHealth(attempt);
    attempt.checking = true;
    const { timeoutMs } = this.#core.options.health;
    // Armed at the end of this turn, and only if the probe is still running then (most answer
    // at once, and never touch the timer heap).
    (attempt.healthTimeout ??= this.#core.scheduler.task(SessionRuntime.#onHealthTimeout, attempt)).rearmSoon(timeoutMs);
    // Each probe answers for its own check only: a late answer of an abandoned (timed-out)
    // probe must not count for the check after it.
    const seq = ++attempt.checkSeq;
    const onReport = (report: HealthReport) =>
      this.#finishHealth(
        attempt,
        seq,
        report && HEALTH_STATUSES.includes(report.status)
          ? report
          : { status: 'unhealthy', detail: `health() returned ${JSON.stringify(report)}; expected { status: ${HEALTH_STATUSES.join(' | ')} }` },
      );
    const onError = (cause: unknown) => this.#finishHealth(attempt, seq, { status: 'unhealthy', detail: `health check failed: ${this.#scrub(cause)}` });
    let probe: Promise<HealthReport>;
    try {
      probe = Promise.resolve(attempt.connection.health());
    } catch (cause) {
      probe = Promise.reject(cause);
    }
    probe.then(onReport, onError);
  }

  /** The in-flight check's result (or its timeout); a late result of a timed-out probe is ignored. */
  #finishHealth(attempt: Attempt, seq: number, report: HealthReport): void {
    if (!attempt.checking || seq !== attempt.checkSeq) return;
    attempt.checking = false;
    attempt.healthTimeout?.cancel();
    if (attempt.ended) return;
    if (report.detail) {
      const secrets = this.#secrets();
      if (secrets.length) report = { ...report, detail: scrubText(report.detail, secrets) };
    }
    this.#applyHealth(attempt, report);
    if (!attempt.ended && !attempt.tickPending) this.#scheduleHealth(attempt);
  }

  #applyHealth(attempt: Attempt, report: HealthReport): void {
    const previous = this.health;
    const { unhealthyThreshold } = this.#core.options.health;
    const at = this.#core.clock.now();
    switch (report.status) {
      case 'healthy':
        attempt.healthFailures = 0;
        this.health = 'healthy';
        if (this.state === 'degraded') this.#transition('ready', 'health recovered');
        break;
      case 'expired':
      case 'unauthorized':
        this.health = report.status;
        attempt.end({ kind: 'expired', reason: report.detail ?? `health reported ${report.status}`, health: report.status });
        break;
      case 'unknown':
        this.health = 'unknown';
        break;
      default: {
        attempt.healthFailures++;
        this.health = 'unhealthy';
        const detail = report.detail ?? 'health check failed';
        if (this.state === 'degraded') {
          attempt.end({ kind: 'failed', error: this.#adapterError('health', new Error(detail)) });
        } else if (this.state === 'ready' && attempt.healthFailures >= unhealthyThreshold) {
          this.lastError = { code: 'UNHEALTHY', message: detail, at };
          this.#transition('degraded', `${attempt.healthFailures} failed health checks: ${detail}`);
        }
      }
    }
    if (this.health !== previous || report.status !== 'healthy') {
      this.#emit('session.health', {
        id: this.id,
        health: this.health,
        previous,
        ...(report.detail ? { detail: report.detail } : {}),
        failures: attempt.healthFailures,
        at,
      });
      this.#persistStatus();
    }
  }

  #idleTimeout(): number | null {
    return this.record.idleTimeoutMs ?? this.#core.options.idleTimeoutMs;
  }

  #scheduleIdle(attempt: Attempt): void {
    const timeout = this.#idleTimeout();
    if (timeout === null) return;
    const idleFor = this.#core.clock.now() - (this.lastActivityAt ?? this.#core.clock.now());
    attempt.idleTask = this.#core.scheduler.schedule(Math.max(0, timeout - idleFor), () => {
      attempt.idleTask = null;
      if (attempt.ended) return;
      const quiet = this.#core.clock.now() - (this.lastActivityAt ?? 0);
      if (quiet >= timeout) this.#core.stopForIdle(this.id);
      else this.#scheduleIdle(attempt);
    });
  }

  // ---------------------------------------------------------------- context callbacks

  /** `ctx.auth.qr()` and `ctx.auth.request()` land here. */
  enterAuth(attempt: Attempt, info: SessionAuthInfo): void {
    if (attempt.ended || attempt !== this.#run?.attempt) return;
    info = { kind: info.kind, data: cloneJson(info.data), expiresAt: info.expiresAt }; // the adapter keeps its own
    attempt.awaitingAuth = true;
    this.auth = info;
    if (this.state !== 'authenticating') this.#transition('authenticating', `waiting for ${info.kind}`, this.#run);
    attempt.watchdog?.cancel();
    attempt.watchdog = null;
    if (!attempt.authTimer) {
      const ms = this.#core.options.authTimeoutMs;
      attempt.authTimer = this.#core.scheduler.schedule(ms, () => {
        attempt.authTimer = null;
        const error = new AuthTimeoutError(this.id, info.kind, ms);
        attempt.pending?.reject(error);
        attempt.pending = null;
        attempt.end({ kind: 'failed', error });
      });
    }
    this.#emit('session.auth', { id: this.id, kind: info.kind, data: cloneJson(info.data), expiresAt: info.expiresAt, at: this.#core.clock.now() });
    this.#run?.settle();
  }

  expire(attempt: Attempt, reason: string): void {
    if (attempt.ended) return;
    attempt.end({ kind: 'expired', reason: scrubText(reason || 'credentials expired', this.#secrets()), health: 'expired' });
  }

  lost(attempt: Attempt, cause: unknown): void {
    if (attempt.ended) return;
    attempt.end({ kind: 'failed', error: this.#adapterError('connection', cause ?? new Error('connection lost')) });
  }

  inbound(attempt: Attempt, message: JsonValue): void {
    if (attempt.ended) return;
    this.#count('messagesIn');
    this.touch();
    this.#emit('session.message', { id: this.id, direction: 'in', message, at: this.#core.clock.now() });
  }

  increment(name: string, by: number): void {
    this.#core.persister.increment(this.id, CUSTOM_COUNTER_PREFIX + name, by);
  }

  get core(): ManagerCore {
    return this.#core;
  }

  // ---------------------------------------------------------------- helpers

  #count(name: BuiltinCounter): void {
    this.#core.persister.increment(this.id, name, 1);
  }

  #transition(to: SessionState, reason: string, run?: Run | null): void {
    // A superseded supervisor (stopped, restarted) no longer owns the state.
    if (run && (run.cancel.aborted || this.#run !== run)) return;
    const from = this.state;
    if (!canTransition(from, to)) throw new InvalidTransitionError(this.id, from, to);
    const at = this.#core.clock.now();
    this.state = to;
    const t: TransitionInfo = { from, to, reason, at };
    // Exact-size copies: a pushed-to array reserves 16 slots, ten thousand sessions × 2 arrays.
    const keep = this.#core.options.historySize;
    this.transitions = (this.transitions.length >= keep ? this.transitions.slice(this.transitions.length - keep + 1) : this.transitions).concat([t]);
    this.#core.persister.transition({ sessionId: this.id, ...t });
    this.#persistStatus();
    this.#emit('session.state', { id: this.id, from, to, reason, at });
  }

  #persistStatus(): void {
    this.#core.persister.status({ id: this.id, state: this.state, health: this.health, lastError: this.lastError });
  }

  #emit<E extends Parameters<ManagerCore['emit']>[0]>(event: E, payload: Parameters<ManagerCore['emit']>[1]): void {
    this.#core.emit(event, payload as never);
  }

  #secrets(): string[] {
    return this.#core.secretStringsOf(this.record);
  }

  #scrub(cause: unknown): string {
    return scrubText(cause instanceof Error ? cause.message : String(cause), this.#secrets());
  }

  #adapterError(operation: string, cause: unknown): AdapterError {
    // The cause is kept for debugging, but never with a credential inside (loggers print causes).
    const secrets = this.#secrets();
    const error = new AdapterError(this.id, operation, scrubError(cause, secrets));
    if (secrets.length) {
      Object.defineProperty(error, 'message', { value: scrubText(error.message, secrets) });
      if (error.stack) Object.defineProperty(error, 'stack', { value: scrubText(error.stack, secrets) });
    }
    return error;
  }

  #errorInfo(error: Error): SessionError {
    return { code: error instanceof MultisessionError ? error.code : 'ERROR', message: scrubText(error.message, this.#secrets()), at: this.#core.clock.now() };
  }

  #reportError(error: Error): void {
    this.log('error', error.message);
    this.#count('errors');
    this.#emit('session.error', { id: this.id, error, code: error instanceof MultisessionError ? error.code : 'ERROR', at: this.#core.clock.now() });
  }
}

/** The `ctx` an adapter gets: bound to one attempt, so a stale connection cannot touch a newer one. */
class RuntimeContext implements AdapterContext<unknown, unknown> {
  readonly id: string;
  readonly platform: string;
  readonly config: unknown;
  readonly credentials: unknown;
  readonly #rt: SessionRuntime;
  readonly #attempt: Attempt;
  #kv: NamespacedKv | null = null;
  #authState: NamespacedKv | null = null;

  constructor(rt: SessionRuntime, attempt: Attempt, credentials: unknown) {
    this.#rt = rt;
    this.#attempt = attempt;
    this.id = rt.id;
    this.platform = rt.record.platform;
    // The adapter reads the session's own config object, frozen: no copy per attempt.
    this.config = deepFreeze(rt.record.config);
    this.credentials = credentials;
  }

  get signal(): AbortSignal {
    return this.#attempt.signal;
  }

  get fetch(): SessionFetch {
    const rt = this.#rt;
    const attempt = this.#attempt;
    attempt.net ??= createSessionFetch({ config: this.config, bucket: () => rt.rateLimitBucket(), signal: attempt.signal });
    return attempt.net.fetch;
  }

  get log(): SessionLog {
    const rt = this.#rt;
    return {
      debug: (msg, data) => rt.log('debug', String(msg), data),
      info: (msg, data) => rt.log('info', String(msg), data),
      warn: (msg, data) => rt.log('warn', String(msg), data),
      error: (msg, data) => rt.log('error', String(msg), data),
    };
  }

  get stats(): SessionStats {
    return {
      increment: (name: string, by = 1) => {
        if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) {
          throw new ValidationError('counter name', [{ path: ['name'], message: 'must be 1-64 of A-Z, a-z, 0-9, _ . : -' }]);
        }
        if (!Number.isFinite(by)) throw new ValidationError('counter increment', [{ path: ['by'], message: 'must be a finite number' }]);
        if (this.#attempt.closed) return; // a connection that was shut down counts no more
        this.#rt.increment(name, by);
      },
    };
  }

  /** A shut-down connection (its session stopped, restarted or deleted) can no longer reach storage. */
  #guard = (): void => {
    if (this.#attempt.closed) {
      throw new AbortedError(`This connection of session "${this.id}" has been shut down; it can no longer read or write the session's data.`);
    }
  };

  get kv(): NamespacedKv {
    return (this.#kv ??= new NamespacedKv(requireCapability(this.#rt.core.storage, 'kv'), this.id, CONTEXT_PREFIX, this.#guard));
  }

  get authState(): NamespacedKv {
    return (this.#authState ??= new NamespacedKv(requireCapability(this.#rt.core.storage, 'kv'), this.id, AUTH_PREFIX, this.#guard));
  }

  get auth(): SessionAuth {
    const rt = this.#rt;
    const attempt = this.#attempt;
    return {
      qr: (data: string, options: { expiresAt?: number } = {}) => {
        rt.enterAuth(attempt, { kind: 'qr', data: String(data), expiresAt: options.expiresAt ?? null });
      },
      request: (kind, options = {}) => {
        if (attempt.ended) return Promise.reject(new AbortedError(`Session "${rt.id}" is no longer starting.`));
        if (!['code', 'password', 'pairing-code'].includes(kind)) {
          return Promise.reject(new ValidationError('auth request', [{ path: ['kind'], message: 'must be code, password or pairing-code' }]));
        }
        attempt.pending?.reject(new AbortedError('superseded by a newer auth request'));
        const promise = new Promise<string>((resolve, reject) => {
          attempt.pending = { kind, resolve, reject };
        });
        rt.enterAuth(attempt, { kind, data: options.data ?? null, expiresAt: options.expiresAt ?? null });
        return promise;
      },
    };
  }

  emitMessage(message: JsonValue): void {
    this.#rt.inbound(this.#attempt, message);
  }

  expired(reason: string): void {
    this.#rt.expire(this.#attempt, String(reason ?? ''));
  }

  fail(error: unknown): void {
    this.#rt.lost(this.#attempt, error);
  }

  touch(): void {
    if (!this.#attempt.ended) this.#rt.touch();
  }
}

