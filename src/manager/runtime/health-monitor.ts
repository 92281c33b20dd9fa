import type { HealthReport } from '../../adapters/contract.js';
import { HEALTH_STATUSES } from '../../lifecycle.js';
import { scrubText } from '../../security/redact.js';
import type { Attempt } from './attempt.js';
import type { SessionRuntime } from './session-runtime.js';

/**
 * Health checks of a live attempt: a probe every `health.intervalMs` (the first spread over the
 * jitter window), bounded by
 * `health.timeoutMs`; `unhealthyThreshold` failures in a row make the session `degraded`, one
 * more failure restarts it; `expired`/`unauthorized` end the attempt as expired. One task per
 * attempt serves both the next check and the running check's timeout, re-armed each time (no
 * allocation per tick, no closure per session).
 */

/**
 * Spreads the first health checks of attempts that start together: each first check is due in
 * the last `jitter` part of the interval after its start, and no sooner than {@link SPACING_MS}
 * after the first check handed out before it. Sessions started at once are spread evenly over the
 * jitter window, in start order; sessions started apart keep their own times.
 */
export class HealthPacer {
  #next = -Infinity;

  firstCheck(now: number, intervalMs: number, jitter: number): number {
    const due = Math.min(now + intervalMs, Math.max(now + intervalMs * (1 - jitter), this.#next));
    this.#next = due + SPACING_MS;
    return due;
  }
}

/** Between two first checks handed out together: 10,000 a second while the window has room. */
const SPACING_MS = 0.1;

/**
 * Arms the next check of `attempt`: the first as the pacer says, every later one `intervalMs`
 * after the previous one was due. A steady cadence keeps the sessions checked in one tick the
 * same neighbours (started close together, so close together in memory): checking 100,000
 * sessions cost several times less than with a random delay drawn for every check, which
 * scatters each tick's checks over the whole heap.
 */
export function scheduleHealth(rt: SessionRuntime, attempt: Attempt): void {
  const { intervalMs, jitter } = rt.core.options.health;
  const now = rt.core.clock.now();
  let due = attempt.healthTask ? attempt.healthDueAt + intervalMs : rt.core.healthPacer.firstCheck(now, intervalMs, jitter);
  // A check that ran late (a slow probe, a timeout) skips the beats it missed: no catch-up burst.
  if (due < now) due += Math.ceil((now - due) / intervalMs) * intervalMs;
  attempt.healthDueAt = due;
  if (attempt.healthTask) attempt.healthTask.rearm(attempt.healthDueAt - now);
  else attempt.healthTask = rt.core.scheduler.schedule(attempt.healthDueAt - now, onHealthTask, attempt);
}

/** The task fired: a check is due, or the running check timed out. */
const onHealthTask = (attempt: Attempt): void => {
  const rt = attempt.runtime;
  if (!attempt.checking) return checkHealth(rt, attempt);
  // Timed out: the probe is abandoned; its late answer goes to handlers no check listens to.
  attempt.probe = null;
  finishHealth(rt, attempt, { status: 'unhealthy', detail: `health check timed out after ${rt.core.options.health.timeoutMs} ms` });
};

/**
 * The answer handlers of an attempt's probes, made once and shared by its checks (no closures per
 * check). A check that times out drops them; the next check makes new ones, so a late answer of
 * the abandoned probe can never count for a later check.
 */
export class Probe {
  constructor(readonly attempt: Attempt) {}

  readonly report = (report: HealthReport): void => {
    if (this.attempt.probe !== this) return;
    finishHealth(this.attempt.runtime, this.attempt, checkedReport(report));
  };

  readonly error = (cause: unknown): void => {
    if (this.attempt.probe !== this) return;
    finishHealth(this.attempt.runtime, this.attempt, { status: 'unhealthy', detail: `health check failed: ${this.attempt.runtime.scrub(cause)}` });
  };
}

const checkedReport = (report: HealthReport): HealthReport =>
  report && HEALTH_STATUSES.includes(report.status)
    ? report
    : { status: 'unhealthy', detail: `health() returned ${JSON.stringify(report)}; expected { status: ${HEALTH_STATUSES.join(' | ')} }` };

function checkHealth(rt: SessionRuntime, attempt: Attempt): void {
  if (attempt.ended || !attempt.connection) return;
  attempt.checking = true;
  const probe = (attempt.probe ??= new Probe(attempt));
  let answer: HealthReport | PromiseLike<HealthReport>;
  try {
    answer = attempt.connection.health();
  } catch (cause) {
    return probe.error(cause);
  }
  // A plain value answers at once: no promise, no timeout to arm.
  if (!answer || typeof (answer as PromiseLike<HealthReport>).then !== 'function') return probe.report(answer as unknown as HealthReport);
  attempt.healthTask!.rearm(rt.core.options.health.timeoutMs);
  (answer as PromiseLike<HealthReport>).then(probe.report, probe.error);
}

/** The running check's result (or its timeout); a late result of a timed-out probe is ignored. */
function finishHealth(rt: SessionRuntime, attempt: Attempt, report: HealthReport): void {
  if (!attempt.checking) return;
  attempt.checking = false;
  if (attempt.ended) return;
  if (report.detail) {
    const secrets = rt.secrets();
    if (secrets.length) report = { ...report, detail: scrubText(report.detail, secrets) };
  }
  applyHealth(rt, attempt, report);
  if (!attempt.ended) scheduleHealth(rt, attempt);
}

function applyHealth(rt: SessionRuntime, attempt: Attempt, report: HealthReport): void {
  const previous = rt.health;
  const { unhealthyThreshold } = rt.core.options.health;
  const at = rt.core.clock.now();
  switch (report.status) {
    case 'healthy':
      attempt.healthFailures = 0;
      giveBudgetBack(rt, attempt, at);
      rt.setHealth('healthy');
      if (rt.state === 'degraded') rt.transition('ready', 'health recovered');
      break;
    case 'expired':
    case 'unauthorized':
      rt.setHealth(report.status);
      attempt.end({ kind: 'expired', reason: report.detail ?? `health reported ${report.status}`, health: report.status });
      break;
    case 'unknown':
      rt.setHealth('unknown');
      break;
    default: {
      attempt.healthFailures++;
      attempt.run.stableSince = null; // not healthy: the time towards a fresh retry budget starts again
      rt.setHealth('unhealthy');
      const detail = report.detail ?? 'health check failed';
      if (rt.state === 'degraded') {
        attempt.end({ kind: 'failed', error: rt.adapterError('health', new Error(detail)) });
      } else if (rt.state === 'ready' && attempt.healthFailures >= unhealthyThreshold) {
        rt.setLastError({ code: 'UNHEALTHY', message: detail, at });
        rt.transition('degraded', `${attempt.healthFailures} failed health checks: ${detail}`);
      }
    }
  }
  if (rt.health !== previous || report.status !== 'healthy') {
    rt.emit('session.health', {
      id: rt.id,
      health: rt.health,
      previous,
      ...(report.detail ? { detail: report.detail } : {}),
      failures: attempt.healthFailures,
      at,
    });
    rt.persistStatus();
  }
}

/**
 * A healthy check: once the session has been up and healthy for `restart.resetAfterMs` without a
 * break, its failures are forgiven (the retry budget is whole again).
 */
function giveBudgetBack(rt: SessionRuntime, attempt: Attempt, at: number): void {
  const run = attempt.run;
  run.stableSince ??= at;
  if (run.failures > 0 && at - run.stableSince >= rt.core.options.restart.resetAfterMs) run.failures = 0;
}
