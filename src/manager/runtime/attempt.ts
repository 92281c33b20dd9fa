import type { ContextHost, ContextLogLevel, PendingAuth, RequestKind } from '../../adapters/context.js';
import type { PlatformConnection } from '../../adapters/contract.js';
import type { HealthStatus } from '../../lifecycle.js';
import { createSessionFetch, type SessionFetch, type SessionFetchHandle } from '../../net/session-fetch.js';
import { scrubText } from '../../security/redact.js';
import type { KvStore } from '../../storage/contract.js';
import type { JsonValue } from '../../types.js';
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

/** One supervision of a running session: from start() until stop(), failed or expired. */
export class Run {
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

/**
 * One connection attempt: connect, start, live, teardown. Plain state the runtime's parts act on,
 * and the host its connection's `ctx` is bound to, so a stale connection cannot touch a newer one.
 */
export class Attempt implements ContextHost {
  readonly runtime: SessionRuntime;
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
  pending: PendingAuth | null = null;
  /** Numbers health checks, so a late answer is matched to its own check. */
  checkSeq = 0;
  /** `ctx.fetch` of this attempt, made on first use; its proxy dispatcher is destroyed at teardown. */
  net: SessionFetchHandle | null = null;
  readonly down: Promise<Down>;
  #resolveDown!: (d: Down) => void;
  #downed = false;

  constructor(runtime: SessionRuntime) {
    this.runtime = runtime;
    this.down = new Promise<Down>((r) => (this.#resolveDown = r));
  }

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

  // ---------------------------------------------------------------- ContextHost (the adapter's ctx)

  fetch(): SessionFetch {
    const rt = this.runtime;
    this.net ??= createSessionFetch({ config: rt.record.config, bucket: () => rt.rateLimitBucket(), signal: this.signal });
    return this.net.fetch;
  }

  kvStore(): KvStore {
    return this.runtime.core.kvStore();
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

  inbound(message: JsonValue): void {
    if (this.ended) return;
    const rt = this.runtime;
    rt.count('messagesIn');
    rt.touch();
    rt.emit('session.message', { id: rt.id, direction: 'in', message, at: rt.core.clock.now() });
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
