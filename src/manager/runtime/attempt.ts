import type { Probe } from './health-monitor.js';
import type { SessionUnits } from '../../adapters/units.js';
import type { ContextHost, ContextLogLevel, PendingAuth, RequestKind } from '../../adapters/context.js';
import type { PlatformConnection } from '../../adapters/contract.js';
import { RateLimitError } from '../../errors.js';
import type { HealthStatus } from '../../lifecycle.js';
import { createSessionFetch, type SessionFetch, type SessionFetchHandle } from '../../net/session-fetch.js';
import { scrubText } from '../../security/redact.js';
import type { KvStore } from '../../storage/contract.js';
import type { Clock, JsonValue } from '../../types.js';
import type { ScheduledTask } from '../scheduler.js';
import { enterAuth, requestAuth } from './auth-flow.js';
import { Cancellation } from '../cancellation.js';
import type { SessionRuntime } from './session-runtime.js';

/** Why a live attempt ended. */
export type Down =
  | { kind: 'failed'; error: Error }
  | { kind: 'expired'; reason: string; health: HealthStatus }
  | { kind: 'aborted' };

/** The platform said the credentials are no longer valid: not retried. */
export class ExpiredSignal extends Error {
  constructor(
    readonly reason: string,
    readonly health: HealthStatus,
  ) {
    super(reason);
  }
}

const RESOLVED = Promise.resolve();
const noop = (): void => undefined;

/** Told why an attempt went down (a module-level function spares a closure per attempt). */
export type DownListener = (down: Down, attempt: Attempt) => void;

/**
 * One supervision of a running session: from start() until stop(), failed or expired. It is
 * its own cancellation: `abort()` stops it.
 */
export class Run extends Cancellation {
  attempt: Attempt | null = null;
  /** Failures in a row (failed starts and failed lives): the back-off step and the retry budget spent. */
  failures = 0;
  /** Since when the session has been up and healthy without a break (null: it is not). */
  stableSince: number | null = null;
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

/**
 * One connection attempt: connect, start, live, teardown. Plain state the runtime's parts act on,
 * and the host its connection's `ctx` is bound to, so a stale connection cannot touch a newer one.
 */
export class Attempt implements ContextHost {
  readonly runtime: SessionRuntime;
  /** Made on first use of `ctx.signal` (an AbortSignal costs ~0.8 KB once touched). */
  #controller: AbortController | null = null;
  /** Set by abort(): makes the signal's reason. */
  #abortReason: (() => unknown) | null = null;
  connection: PlatformConnection<JsonValue> | null = null;
  ended = false;
  /** stop() has returned (or timed out): from now on the connection's ctx refuses writes. */
  closed = false;
  live = false;
  /** An auth step (QR, code …) was shown and not yet answered: the start watchdog waits. */
  awaitingAuth = false;
  healthFailures = 0;
  checking = false;
  /** The next health check, or the running check's timeout (one task for both, for the attempt's life). */
  healthTask: ScheduledTask | null = null;
  idleTask: ScheduledTask | null = null;
  watchdog: ScheduledTask | null = null;
  authTimer: ScheduledTask | null = null;
  pending: PendingAuth | null = null;
  /** When the current or next health check is due (clock time): later checks keep its phase. */
  healthDueAt = 0;
  /** The answer handlers of this attempt's health probes (see health-monitor.ts); null after a timeout. */
  probe: Probe | null = null;
  /** `ctx.fetch` of this attempt, made on first use; its proxy dispatcher is destroyed at teardown. */
  net: SessionFetchHandle | null = null;
  /** Why it went down, once it has. */
  #down: Down | null = null;
  /** Who waits for it to go down: the supervisor's handler, calls tied to the connection. */
  #onDown: DownListener | DownListener[] | null = null;

  constructor(
    runtime: SessionRuntime,
    readonly run: Run,
  ) {
    this.runtime = runtime;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#abortReason) this.#controller.abort(this.#abortReason());
    }
    return this.#controller.signal;
  }

  /**
   * Aborts the attempt's signal (once). The reason is made only when someone holds, or later asks
   * for, the signal: an Error captures a stack, and closing 100,000 sessions made one each for
   * nobody.
   */
  abort(reason: () => unknown): void {
    if (this.#abortReason) return;
    this.#abortReason = reason;
    this.#controller?.abort(reason());
  }

  /** The attempt is over (once): whoever waits is told why. */
  end(d: Down): void {
    if (this.#down) return;
    this.#down = d;
    const listeners = this.#onDown;
    this.#onDown = null;
    if (typeof listeners === 'function') listeners(d, this);
    else if (listeners) for (const fn of listeners) fn(d, this);
  }

  /**
   * Calls `fn` once the attempt goes down (on the next microtask when it already has); returns a
   * function that stops waiting. No promise is kept per live attempt: a ready session holds none.
   */
  onDown(fn: DownListener): () => void {
    const down = this.#down;
    if (down) {
      queueMicrotask(() => fn(down, this));
      return noop;
    }
    const current = this.#onDown;
    this.#onDown = current === null ? fn : typeof current === 'function' ? [current, fn] : [...current, fn];
    return () => {
      const now = this.#onDown;
      if (now === fn) this.#onDown = null;
      else if (Array.isArray(now)) {
        const kept = now.filter((f) => f !== fn);
        this.#onDown = kept.length === 0 ? null : kept.length === 1 ? kept[0]! : kept;
      }
    };
  }

  /** A promise of {@link onDown} (for races); `stop()` lets go of it. */
  whenDown(): { promise: Promise<Down>; stop: () => void } {
    let stop = noop;
    const promise = new Promise<Down>((resolve) => (stop = this.onDown(resolve)));
    return { promise, stop };
  }

  cancelTimers(): void {
    this.healthTask?.cancel();
    this.idleTask?.cancel();
    this.watchdog?.cancel();
    this.authTimer?.cancel();
    this.healthTask = this.idleTask = this.watchdog = this.authTimer = null;
  }

  // ---------------------------------------------------------------- ContextHost (the adapter's ctx)

  get clock(): Clock {
    return this.runtime.core.clock;
  }

  fetch(): SessionFetch {
    const rt = this.runtime;
    this.net ??= createSessionFetch({ config: rt.record.config, limiter: () => rt.outboundLimiter(), signal: this.signal });
    return this.net.fetch;
  }

  units(): SessionUnits {
    return this.runtime.core.unitsView(this.runtime.id, this.signal);
  }

  kvStore(): KvStore {
    const store = this.runtime.core.kvStore();
    const fence = this.runtime.fence();
    if (fence === undefined) return store;
    // The connection's writes land only while this node owns the session.
    const token = fence === false ? Number.MAX_SAFE_INTEGER : fence;
    return { get: (id, key) => store.get(id, key), list: (id, o) => store.list(id, o), clear: (id, o) => store.clear(id, o), write: (id, ops) => store.write(id, ops, { fence: token }) };
  }

  log(level: ContextLogLevel, msg: string, data: Record<string, unknown> | undefined): void {
    this.runtime.log(level, msg, data);
  }

  increment(name: string, by: number): void {
    this.runtime.increment(name, by);
  }

  showQr(data: string, expiresAt: number | null): void {
    enterAuth(this.runtime, this, { kind: 'qr', data, expiresAt });
  }

  requestAuth(kind: RequestKind, data: JsonValue, expiresAt: number | null): Promise<string> {
    return requestAuth(this.runtime, this, kind, data, expiresAt);
  }

  inbound(message: JsonValue): Promise<void> {
    const rt = this.runtime;
    rt.count('messagesIn');
    rt.touch();
    return rt.emitAndWait('session.message', { id: rt.id, platform: rt.record.platform, direction: 'in', message, at: rt.core.clock.now() });
  }

  pause(ms: number, reason: string): RateLimitError {
    const rt = this.runtime;
    const safe = scrubText(reason, rt.secrets());
    const paused = rt.limiter().pause(ms, safe);
    rt.log('warn', `outbound traffic paused for ${paused} ms: ${safe}`);
    return new RateLimitError(rt.id, paused, null, { reason: safe });
  }

  pausedMs(): number {
    return this.runtime.outboundLimiter()?.pausedMs() ?? 0;
  }

  expired(reason: string): void {
    if (this.ended) return;
    this.end({ kind: 'expired', reason: scrubText(reason || 'credentials expired', this.runtime.secrets()), health: 'expired' });
  }

  fail(error: unknown): void {
    if (this.ended) return;
    this.end({ kind: 'failed', error: this.runtime.adapterError('connection', error ?? new Error('connection lost')) });
  }

  touch(): void {
    this.runtime.touch();
  }
}
