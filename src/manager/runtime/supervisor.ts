import { messageSchemaOf, type AdapterContext, type PlatformConnection } from '../../adapters/contract.js';
import { SessionContext } from '../../adapters/context.js';
import { AbortedError, AdapterError, AdapterNotFoundError, DecryptionError, isPermanentFailure, MultisessionError, SecretKeyRequiredError } from '../../errors.js';
import { deepFreeze, type JsonValue } from '../../types.js';
import type { ScheduledTask } from '../scheduler.js';
import { Attempt, ExpiredSignal, type Down, type Run } from './attempt.js';
import { armWatchdog } from './auth-flow.js';
import { scheduleHealth } from './health-monitor.js';
import { scheduleIdle } from './idle-timer.js';
import type { SessionRuntime } from './session-runtime.js';

/**
 * The supervisor of a running session: a loop of attempts with back-off, the teardown
 * of each attempt, and the end of supervision (stopped, failed or expired). Once an attempt is
 * live the supervision waits on a promise reaction, not a suspended frame: a ready session costs
 * less.
 */

function delay(rt: SessionRuntime, n: number): number {
  const { minDelayMs, maxDelayMs, factor } = rt.core.options.restart;
  return Math.min(maxDelayMs, minDelayMs * factor ** n);
}

/** Supervises `run` (already the runtime's current run) until it is stopped, failed or expired. */
export async function supervise(rt: SessionRuntime, run: Run, reason: string): Promise<void> {
  let attempt: Attempt;
  try {
    attempt = await firstLive(rt, run, reason);
  } catch (error) {
    return endSupervision(rt, run, error);
  }
  attempt.onDown(onLiveAttemptDown);
}

/**
 * Starts attempts until one comes up: after a failure, `backoff` for the next delay and try
 * again while the retry budget lasts (`restart.retries` failures in a row). Throws what ended
 * the tries.
 */
async function firstLive(rt: SessionRuntime, run: Run, reason: string): Promise<Attempt> {
  for (let first = true; ; first = false) {
    try {
      return await startAttempt(rt, run, first ? reason : 'retry');
    } catch (error) {
      if (run.failures >= rt.core.options.restart.retries || !worthRetrying(error, run)) throw error;
      rt.transition('backoff', `start failed: ${(error as Error).message}`, run);
      run.settle();
      await backOff(rt, run);
    }
  }
}

/** Waits the next back-off step and spends one retry. */
async function backOff(rt: SessionRuntime, run: Run): Promise<void> {
  rt.countRestart();
  const wait = delay(rt, run.failures);
  run.failures++;
  await rt.core.scheduler.sleep(wait, run);
}

/**
 * Only the adapter's own failures are worth retrying: a key that cannot decrypt, stored
 * credentials that no longer validate, a missing adapter or an auth timeout will not mend
 * themselves by waiting; nor will expired credentials, a stopped session, or what the adapter
 * says is permanent (`PermanentFailureError`).
 */
function worthRetrying(error: unknown, run: Run): boolean {
  if (error instanceof ExpiredSignal || run.aborted || isPermanentFailure(error)) return false;
  return !(error instanceof MultisessionError) || error instanceof AdapterError;
}

const onLiveAttemptDown = (down: Down, attempt: Attempt): void => void afterDown(attempt.runtime, attempt.run, attempt, down);

/**
 * A live attempt went down: restart after the next back-off step, or end. A session that had
 * stayed up and healthy for `restart.resetAfterMs` gets its retry budget back first; one that
 * failed sooner spends it, so a crash loop slows down and ends `failed`.
 */
async function afterDown(rt: SessionRuntime, run: Run, attempt: Attempt, down: Down): Promise<void> {
  await teardown(rt, attempt);
  try {
    if (down.kind !== 'failed') throw downError(rt, down);
    failure(rt, down.error);
    const stable = run.stableSince;
    if (stable !== null && rt.core.clock.now() - stable >= rt.core.options.restart.resetAfterMs) run.failures = 0;
    run.stableSince = null;
    if (run.failures >= rt.core.options.restart.retries || isPermanentFailure(down.error)) throw down.error;
    rt.transition('backoff', `restarting: ${down.error.message}`, run);
    await backOff(rt, run);
  } catch (error) {
    return endSupervision(rt, run, error);
  }
  void supervise(rt, run, 'restart');
}

/** Supervision is over: record why (unless stopped), and release whoever waits. */
function endSupervision(rt: SessionRuntime, run: Run, error: unknown): void {
  if (!run.aborted) {
    if (error instanceof ExpiredSignal) {
      rt.setHealth(error.health);
      rt.setLastError({ code: 'EXPIRED', message: error.reason, at: rt.core.clock.now() });
      rt.transition('expired', error.reason, run);
    } else {
      const info = rt.errorInfo(error instanceof Error ? error : new Error(String(error)));
      rt.setLastError(info);
      rt.transition('failed', info.message, run);
    }
    rt.persistStatus();
  }
  rt.runEnded(run);
  run.finish();
}

/** Connects and starts one attempt. Resolves with it once it is up; throws when it never came up. */
async function startAttempt(rt: SessionRuntime, run: Run, reason: string): Promise<Attempt> {
  if (run.aborted) throw run.reason;
  const attempt = new Attempt(rt, run);
  run.attempt = attempt;
  const core = rt.core;
  rt.transition('starting', reason, run);
  let started: Promise<Down | null>;
  try {
    const adapter = rt.adapter;
    if (!adapter) throw new AdapterNotFoundError(rt.record.platform, core.adapterNames());
    const credentials = core.openCredentials(rt.record);
    rt.count('starts'); // counted once the adapter is really asked to start
    // The adapter reads the session's own config object, frozen: no copy per attempt.
    const ctx = new SessionContext(attempt, { id: rt.id, platform: rt.record.platform, config: deepFreeze(rt.record.config), credentials, message: messageSchemaOf(adapter) });
    const connection = adapter.connect(ctx as AdapterContext<any, any>) as PlatformConnection<JsonValue>;
    if (!connection || typeof connection.start !== 'function' || typeof connection.stop !== 'function' || typeof connection.health !== 'function') {
      throw new Error('connect() must return an object with start, stop, health and send');
    }
    attempt.connection = connection;
    armWatchdog(rt, attempt);
    // A start() that throws synchronously is a failed start like any other. One that failed on
    // stored auth state or context data the key cannot open fails as that (not retried), as
    // undecryptable credentials do.
    started = new Promise<void>((resolve) => resolve(connection.start())).then(
      () => null,
      (cause: unknown): Down => ({ kind: 'failed', error: cause instanceof DecryptionError || cause instanceof SecretKeyRequiredError ? cause : rt.adapterError('start', cause) }),
    );
  } catch (cause) {
    await teardown(rt, attempt);
    throw failure(rt, cause instanceof MultisessionError ? cause : rt.adapterError('connect', cause));
  }
  const down = attempt.whenDown();
  const outcome = await Promise.race([started, down.promise]);
  down.stop();
  if (outcome) {
    attempt.end(outcome);
    await teardown(rt, attempt);
    throw downError(rt, outcome);
  }
  // Up.
  attempt.watchdog?.cancel();
  attempt.authTimer?.cancel();
  attempt.watchdog = attempt.authTimer = null;
  attempt.live = true;
  rt.setAuth(null);
  const previous = rt.health;
  rt.setHealth('healthy');
  // A restart that cured a failing session is announced; a first start is not news.
  if (previous !== 'healthy' && previous !== 'unknown') {
    rt.emit('session.health', { id: rt.id, health: 'healthy', previous, detail: 'connected', failures: 0, at: core.clock.now() });
  }
  rt.setReadyAt(core.clock.now());
  rt.touch();
  rt.transition('ready', 'connected', run);
  run.stableSince = core.clock.now();
  rt.emit('session.ready', { id: rt.id, at: core.clock.now() });
  run.settle();
  scheduleHealth(rt, attempt);
  scheduleIdle(rt, attempt);
  return attempt;
}

function downError(rt: SessionRuntime, down: Down): Error {
  if (down.kind === 'expired') return new ExpiredSignal(down.reason, down.health);
  if (down.kind === 'aborted') return new AbortedError(`Session "${rt.id}" was stopped.`);
  return failure(rt, down.error);
}

/** Counts and reports a failed attempt; returns the error to throw. */
function failure(rt: SessionRuntime, error: Error): Error {
  rt.count('failures');
  rt.setLastError(rt.errorInfo(error));
  rt.reportError(error);
  return error;
}

/** Ends an attempt: timers, pending auth, the signal, then the adapter's stop() (bounded). */
async function teardown(rt: SessionRuntime, attempt: Attempt): Promise<void> {
  if (attempt.ended) return;
  attempt.ended = true;
  attempt.live = false;
  attempt.cancelTimers();
  attempt.pending?.reject(new AbortedError(`Session "${rt.id}" stopped waiting for authentication.`));
  attempt.pending = null;
  attempt.abort(() => new AbortedError(`Session "${rt.id}" is stopping.`));
  rt.setAuth(null);
  rt.setReadyAt(null);
  const conn = attempt.connection;
  if (!conn) {
    attempt.closed = true;
    await closeNet(attempt);
    return;
  }
  const core = rt.core;
  let timer: ScheduledTask | null = null;
  try {
    await Promise.race([
      Promise.resolve().then(() => conn.stop()),
      new Promise<void>((_, reject) => {
        timer = core.scheduler.schedule(core.options.stopTimeoutMs, () => reject(new Error(`stop() did not finish within ${core.options.stopTimeoutMs} ms`)));
      }),
    ]);
  } catch (cause) {
    rt.log('warn', `adapter stop failed: ${rt.scrub(cause)}`);
  } finally {
    (timer as ScheduledTask | null)?.cancel();
    attempt.closed = true;
    await closeNet(attempt);
  }
}

/** Destroys the attempt's proxy dispatcher (its sockets), if `ctx.fetch` made one. */
async function closeNet(attempt: Attempt): Promise<void> {
  const net = attempt.net;
  attempt.net = null;
  if (net) await net.close();
}
