import type { Lease, LeaseRef } from '../contract.js';
import type { WorkContext } from '../process.js';

/**
 * Where a held lease is: waiting to run, in its handler, waiting for its completion (or failure,
 * or release) to be written, or settled (gone from the run).
 */
export type HeldState = 'queued' | 'running' | 'completing' | 'settled';

/** One lease a `process()` run holds, from its claim until it settles. */
export class HeldLease {
  /** The current lease (its expiry moves on every renewal). */
  lease: Lease;
  readonly ref: LeaseRef;
  state: HeldState = 'queued';
  /** Lost (renewal refused, deadline passed, or a compare-and-swap lost); counted once. */
  lost = false;
  /** Made on first use of the handler's `signal` (most handlers never look). */
  #ctrl: AbortController | null = null;
  #aborted = false;
  #abortReason: unknown = undefined;

  constructor(lease: Lease) {
    this.lease = lease;
    this.ref = { key: lease.key, token: lease.token, owner: lease.owner };
  }

  /** Aborts the handler's signal (now, or when the handler first reads it). Once. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#abortReason = reason;
    this.#ctrl?.abort(reason);
  }

  get signal(): AbortSignal {
    if (!this.#ctrl) {
      this.#ctrl = new AbortController();
      if (this.#aborted) this.#ctrl.abort(this.#abortReason);
    }
    return this.#ctrl.signal;
  }
}

/** What the handler receives: the current lease and the signal, nothing of the run's bookkeeping. */
export class HandlerContext implements WorkContext {
  readonly #held: HeldLease;

  constructor(held: HeldLease) {
    this.#held = held;
  }

  get lease(): Lease {
    return this.#held.lease;
  }

  get signal(): AbortSignal {
    return this.#held.signal;
  }
}
