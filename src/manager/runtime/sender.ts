import { RateLimitError, SessionNotReadyError, ValidationError } from '../../errors.js';
import { ACTIVE_STATES } from '../../lifecycle.js';
import { scrubError } from '../../security/redact.js';
import type { JsonValue } from '../../types.js';
import type { ScheduledTask } from '../scheduler.js';
import type { Attempt } from './attempt.js';
import type { SessionRuntime } from './session-runtime.js';

/**
 * Calls into a live connection on the user's behalf: `send` (validated by the adapter's action
 * schema, paced by the session's rate limit) and the platform logout. Every call is tied to its
 * connection: when the connection goes down (stop, restart, delete, close) the caller gets a
 * typed error instead of waiting on an answer that never comes.
 */

export function untilEnded<T>(rt: SessionRuntime, attempt: Attempt, call: Promise<T> | T, operation: string): Promise<T> {
  const down = attempt.whenDown();
  const ended = down.promise.then((): never => {
    throw new SessionNotReadyError(rt.id, rt.state, `${operation} (the connection went down while it waited)`);
  });
  ended.catch(() => undefined);
  return Promise.race([Promise.resolve(call), ended]).finally(down.stop);
}

export async function send(rt: SessionRuntime, action: JsonValue): Promise<JsonValue | undefined> {
  const attempt = rt.run?.attempt;
  if (!ACTIVE_STATES.has(rt.state) || !attempt?.connection || !attempt.live || !rt.adapter) {
    throw new SessionNotReadyError(rt.id, rt.state, 'send');
  }
  const parsed = rt.adapter.action.safeParse(action);
  if (!parsed.success) {
    throw new ValidationError(
      'action',
      parsed.error.issues.map((i) => ({ path: ['action', ...i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))] as (string | number)[], message: i.message })),
    );
  }
  const limiter = rt.outboundLimiter();
  if (limiter) {
    // Waits out a pause and for this session's own token (or throws RateLimitError past rateLimit.maxWaitMs).
    const turn = limiter.acquireForSend(rt.record.config, rt.id, attempt.signal);
    if (turn) {
      await turn;
      if (attempt.ended || !attempt.live || !ACTIVE_STATES.has(rt.state)) throw new SessionNotReadyError(rt.id, rt.state, 'send');
    }
  }
  rt.touch();
  const connection = attempt.connection;
  try {
    // The token is paid: the ctx.fetch calls this send makes take none.
    const call = limiter ? limiter.runPaid(() => connection.send(parsed.data as JsonValue)) : connection.send(parsed.data as JsonValue);
    const result = await untilEnded(rt, attempt, call, 'send');
    rt.count('messagesOut');
    rt.emit('session.message', { id: rt.id, platform: rt.record.platform, direction: 'out', message: action, at: rt.core.clock.now() });
    return result === undefined ? undefined : result;
  } catch (cause) {
    if (isRateLimitError(cause)) {
      // The platform said "slow down" (the adapter paused the session): the caller gets it as it is.
      const error = scrubError(cause, rt.secrets()) as RateLimitError;
      rt.log('warn', error.message);
      throw error;
    }
    const error = rt.adapterError('send', cause);
    rt.reportError(error);
    throw error;
  }
}

/**
 * A `RateLimitError`, by class or by its stable code (an adapter bundled with another copy of
 * the library throws another class).
 */
function isRateLimitError(error: unknown): error is RateLimitError {
  if (error instanceof RateLimitError) return true;
  const e = error as { code?: unknown; retryAfterMs?: unknown } | null;
  return error instanceof Error && e!.code === 'RATE_LIMITED' && typeof e!.retryAfterMs === 'number';
}

/** Asks a live connection to log out on the platform (best effort, bounded like stop()). */
export async function platformLogout(rt: SessionRuntime): Promise<void> {
  const attempt = rt.run?.attempt;
  const conn = attempt?.connection;
  if (!attempt || !conn?.logout) return;
  const ms = rt.core.options.stopTimeoutMs;
  let timer: ScheduledTask | null = null;
  try {
    // A logout the platform never answers is abandoned.
    await Promise.race([
      untilEnded(rt, attempt, Promise.resolve().then(() => conn.logout!()), 'logout'),
      new Promise<void>((_, reject) => {
        timer = rt.core.scheduler.schedule(ms, () => reject(new Error(`logout() did not finish within ${ms} ms`)));
      }),
    ]);
  } catch (cause) {
    rt.log('warn', `platform logout failed: ${rt.scrub(cause)}`);
  } finally {
    (timer as ScheduledTask | null)?.cancel();
  }
}
