import type { Attempt } from './attempt.js';
import type { SessionRuntime } from './session-runtime.js';

/**
 * Idle expiry of a live attempt: once the session has been quiet (no send, touch, auth or
 * inbound message) for its `idleTimeoutMs` (or the manager's), the manager stops it with reason
 * `idle`. Activity only moves a timestamp; the check re-plans itself when it fires early.
 */

function idleTimeout(rt: SessionRuntime): number | null {
  return rt.record.idleTimeoutMs ?? rt.core.options.idleTimeoutMs;
}

export function scheduleIdle(rt: SessionRuntime, attempt: Attempt): void {
  const timeout = idleTimeout(rt);
  if (timeout === null) return;
  const clock = rt.core.clock;
  const idleFor = clock.now() - (rt.lastActivityAt ?? clock.now());
  attempt.idleTask = rt.core.scheduler.schedule(Math.max(0, timeout - idleFor), () => {
    attempt.idleTask = null;
    if (attempt.ended) return;
    const quiet = clock.now() - (rt.lastActivityAt ?? 0);
    if (quiet >= timeout) rt.core.stopForIdle(rt.id);
    else scheduleIdle(rt, attempt);
  });
}

/** The idle timeout changed: re-plan the live attempt's idle check. */
export function rescheduleIdle(rt: SessionRuntime): void {
  const attempt = rt.run?.attempt;
  if (!attempt?.live || attempt.ended) return;
  attempt.idleTask?.cancel();
  attempt.idleTask = null;
  scheduleIdle(rt, attempt);
}
