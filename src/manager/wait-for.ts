import { ManagerClosedError, SessionNotFoundError, TimeoutError } from '../errors.js';
import type { SessionState } from '../lifecycle.js';
import { z } from 'zod';
import { SESSION_STATES } from '../lifecycle.js';
import { systemClock, type Clock } from '../types.js';
import { parseWith } from '../validation.js';
import { waitOptionsSchema } from './schemas.js';
import { abortReason } from './abort.js';
import type { EventHub } from './events.js';
import type { SessionManagerEvents } from './events.js';
import type { SessionRuntime } from './runtime/session-runtime.js';
import type { Scheduler } from './scheduler.js';
import type { SessionSnapshot } from './snapshot.js';

/**
 * The waits behind `manager.waitFor`: each resolves when its session reaches one of the wanted
 * states, and rejects when the session is deleted (`SessionNotFoundError`), the timeout passes
 * (`TimeoutError`), the caller's signal aborts (its reason, or `AbortedError`) or the manager
 * closes (`ManagerClosedError`). A settled wait leaves no listener and no timer behind.
 */
const stateListSchema = z.union([z.enum(SESSION_STATES), z.array(z.enum(SESSION_STATES)).min(1)]);

export class Waits {
  readonly #events: EventHub<SessionManagerEvents>;
  readonly #scheduler: Scheduler;
  readonly #clock: Clock;
  /** Rejecters of pending waits, settled with ManagerClosedError on close. */
  readonly #pending = new Set<(error: Error) => void>();

  constructor(events: EventHub<SessionManagerEvents>, scheduler: Scheduler, clock: Clock) {
    this.#events = events;
    this.#scheduler = scheduler;
    this.#clock = clock;
  }

  /** Validates `states` and `options`, then waits (see the class). */
  wait(rt: SessionRuntime, states: SessionState | SessionState[], waitOptions: { timeoutMs?: number; signal?: AbortSignal }): Promise<SessionSnapshot> {
    const parsed = parseWith(stateListSchema, Array.isArray(states) ? states : [states], 'states');
    const wanted = new Set(Array.isArray(parsed) ? parsed : [parsed]);
    const options = parseWith(waitOptionsSchema, waitOptions, 'wait options');
    const id = rt.id;
    if (wanted.has(rt.state)) return Promise.resolve(rt.snapshot());
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<SessionSnapshot>((resolve, reject) => {
      const fail = (error: Error) => {
        cleanup();
        reject(error);
      };
      const cleanup = () => {
        if (keepAlive) clearInterval(keepAlive);
        this.#pending.delete(fail);
        this.#events.remove('session.state', onState);
        this.#events.remove('session.deleted', onDeleted);
        timer?.cancel();
        signal?.removeEventListener('abort', onAbort);
      };
      const onState = (e: { id: string; to: SessionState }) => {
        if (e.id !== id || !wanted.has(e.to)) return;
        cleanup();
        resolve(rt.snapshot());
      };
      const onDeleted = (e: { id: string }) => {
        if (e.id === id) fail(new SessionNotFoundError(id));
      };
      const onAbort = () => fail(abortReason(signal!) as Error);
      const timer =
        options.timeoutMs === undefined
          ? null
          : this.#scheduler.schedule(options.timeoutMs, () =>
              fail(new TimeoutError(`Session "${id}" did not reach ${[...wanted].join(' or ')} within ${options.timeoutMs} ms (it is "${rt.state}").`)),
            );
      // The manager's timers never keep the process alive, but someone awaiting a wait with a
      // timeout expects its answer: hold the event loop open until it settles (real clock only).
      const keepAlive = timer && this.#clock === systemClock ? setInterval(() => {}, 1 << 30) : null;
      this.#pending.add(fail);
      this.#events.add('session.state', onState, undefined, false);
      this.#events.add('session.deleted', onDeleted, undefined, false);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Ends every pending wait with `ManagerClosedError`. */
  closeAll(): void {
    for (const fail of [...this.#pending]) fail(new ManagerClosedError());
  }
}
