import { MultisessionError, StorageError } from '../errors.js';
import type { StoreLifecycle } from './contract.js';

/**
 * The one lifecycle guard every store goes through (storage drivers and stand-alone checkpoint
 * stores, ours and third parties'): the factories return guarded stores and the manager guards
 * whatever it is given (guarding twice is a no-op).
 *
 * - `init()` is idempotent: concurrent calls share one opening; a failed opening may be retried.
 * - The first call of any capability method before `init()` opens the store (lazily).
 * - After `close()`, every call is refused with a `StorageError` until `init()` opens it again.
 * - The driver's own `init` runs once per opening, never while the store is open; its `close`
 *   runs once, and only after a successful `init`.
 * - A call on an open store goes straight to the driver (no extra promise on the hot path).
 */

/** The members of a store that hold capability objects (methods guarded one by one). */
const CAPABILITY_NAMES = ['sessions', 'kv', 'counters', 'history', 'audit', 'checkpoint', 'cluster', 'webhooks', 'units'] as const;

const GUARDED = Symbol.for('multisession.guardedStore');

type Phase = 'new' | 'opening' | 'open' | 'closing' | 'closed';

/**
 * `[<kind>] <message>`: the one prefix of errors a store raises (see docs/storage/custom-driver.md),
 * with the driver's own error as `cause` and optional structured `context` (e.g. a SQLSTATE).
 */
export function storageError(kind: string, message: string, cause?: unknown, context?: Record<string, unknown>): StorageError {
  return new StorageError(`[${kind}] ${message}`, { ...(cause === undefined ? {} : { cause }), ...(context ? { context } : {}) });
}

/** Wraps a driver's failure as a `StorageError` naming the store and the operation (our own errors pass). */
export function wrapStorageError(kind: string, operation: string, error: unknown, hint = ''): Error {
  if (error instanceof MultisessionError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return storageError(kind, `${operation} failed: ${message}.${hint ? ` ${hint}` : ''}`, error);
}

/** True when `store` came out of {@link guardStore}. */
export function isGuarded(store: object): boolean {
  return (store as Record<symbol, unknown>)[GUARDED] === true;
}

/**
 * Wraps `store` in the lifecycle guard. Returns it unchanged when it is guarded already.
 *
 * @example
 * ```ts
 * const storage = guardStore(myDriver); // what the manager does with a custom driver
 * await storage.sessions.list();        // opens the store first
 * ```
 */
export function guardStore<T extends StoreLifecycle>(store: T): T {
  if (isGuarded(store)) return store;
  let phase: Phase = 'new';
  let opening: Promise<void> | null = null;
  let closing: Promise<void> | null = null;

  const refused = () =>
    Promise.reject(storageError(store.kind, 'the store is closed; call init() to open it again (a manager cannot be reopened: make a new one).'));

  const init = (): Promise<void> => {
    if (phase === 'open') return Promise.resolve();
    if (phase === 'opening') return opening!;
    if (phase === 'closing') return closing!.then(init);
    const before = phase;
    phase = 'opening';
    const attempt = Promise.resolve()
      .then(() => store.init())
      .then(
        () => {
          // A close() meanwhile owns the phase: it closes the store once this opening is done.
          if (phase === 'opening') phase = 'open';
          opening = null;
        },
        (error: unknown) => {
          if (phase === 'opening') phase = before; // a failed opening may be retried
          opening = null;
          throw error;
        },
      );
    opening = attempt;
    return attempt;
  };

  /** Runs `call` once the store is open; refuses after close. */
  const whenOpen = <R>(call: () => R | Promise<R>): Promise<R> => {
    if (phase === 'closing' || phase === 'closed') return refused();
    return init().then(call);
  };

  const close = (): Promise<void> => {
    switch (phase) {
      case 'closed':
        return Promise.resolve();
      case 'closing':
        return closing!;
      case 'new':
        phase = 'closed';
        return Promise.resolve();
      case 'opening': {
        const pending = opening!;
        phase = 'closing';
        closing = pending.then(
          () => store.close(),
          () => undefined, // never opened: nothing to release
        ).finally(() => {
          phase = 'closed';
          closing = null;
        });
        return closing;
      }
      case 'open':
        phase = 'closing';
        closing = Promise.resolve()
          .then(() => store.close())
          .finally(() => {
            phase = 'closed';
            closing = null;
          });
        return closing;
    }
  };

  const guardMethods = (target: object): object => {
    const out: Record<string | symbol, unknown> = {};
    // Plain values (a checkpoint backend's `kind`) are copied as they are.
    for (const [name, value] of Object.entries(target)) if (typeof value !== 'function') out[name] = value;
    for (const name of methodNames(target)) {
      const method = (target as Record<string, unknown>)[name] as (...args: unknown[]) => unknown;
      out[name] = (...args: unknown[]) => {
        if (phase !== 'open') return whenOpen(() => method.apply(target, args));
        try {
          return method.apply(target, args);
        } catch (error) {
          return Promise.reject(error);
        }
      };
    }
    return Object.freeze(out);
  };

  const guarded: Record<string | symbol, unknown> = {
    kind: store.kind,
    persistent: store.persistent,
    init,
    close,
    ping: () => (phase === 'open' ? store.ping() : whenOpen(() => store.ping())),
  };
  for (const name of CAPABILITY_NAMES) {
    const capability = (store as unknown as Record<string, unknown>)[name];
    if (capability && typeof capability === 'object') guarded[name] = guardMethods(capability);
  }
  // Not enumerable: a spread copy (`{ ...store, kv: myKv }`) is not taken for a guarded store.
  Object.defineProperty(guarded, GUARDED, { value: true });
  return Object.freeze(guarded) as unknown as T;
}

/** Every function member of `target` and its prototypes (not Object's). */
function methodNames(target: object): string[] {
  const names = new Set<string>();
  for (let o: object | null = target; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const name of Object.getOwnPropertyNames(o)) {
      if (name === 'constructor') continue;
      const d = Object.getOwnPropertyDescriptor(o, name);
      if (d && typeof d.value === 'function') names.add(name);
    }
  }
  return [...names];
}
