import type { Clock } from '../../types.js';

/**
 * One timer on the injected clock, armed at most once at a time: the flush window, the pause
 * after a store error, a renewal tick, a deadline. Arming an armed slot does nothing.
 */
export class TimerSlot {
  readonly #clock: Clock;
  readonly #fn: () => void;
  #handle: unknown = undefined;
  #armed = false;

  constructor(clock: Clock, fn: () => void) {
    this.#clock = clock;
    this.#fn = fn;
  }

  get armed(): boolean {
    return this.#armed;
  }

  /** Fires `fn` after `ms` on the clock, unless the slot is armed already. */
  arm(ms: number): void {
    if (this.#armed) return;
    this.#armed = true;
    this.#handle = this.#clock.setTimeout(this.#fire, ms);
  }

  clear(): void {
    if (!this.#armed) return;
    this.#armed = false;
    this.#clock.clearTimeout(this.#handle);
    this.#handle = undefined;
  }

  readonly #fire = (): void => {
    this.#armed = false;
    this.#handle = undefined;
    this.#fn();
  };
}

/** Resolves after `ms` on the clock, or at once when `signal` aborts (never rejects). */
export function pause(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const handle = clock.setTimeout(done, ms);
    function done() {
      clock.clearTimeout(handle);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
