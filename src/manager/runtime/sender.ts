import { SessionNotReadyError, ValidationError } from '../../errors.js';
import { ACTIVE_STATES } from '../../lifecycle.js';
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
  if (rt.rateLimitBucket()) {
    // Waits for this session's own token (or throws RateLimitError past rateLimit.maxWaitMs).
    const turn = rt.limiter().acquireForSend(rt.record.config, rt.id, attempt.signal);
    if (turn) {
      await turn;
      if (attempt.ended || !attempt.live || !ACTIVE_STATES.has(rt.state)) throw new SessionNotReadyError(rt.id, rt.state, 'send');
    }
  }
  rt.touch();
  try {
    const result = await untilEnded(rt, attempt, attempt.connection.send(parsed.data as JsonValue), 'send');
    rt.count('messagesOut');
    rt.emit('session.message', { id: rt.id, direction: 'out', message: action, at: rt.core.clock.now() });
    return result === undefined ? undefined : result;
  } catch (cause) {
    const error = rt.adapterError('send', cause);
    rt.reportError(error);
    throw error;
  }
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
