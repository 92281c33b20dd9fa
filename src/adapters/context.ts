import type { z } from 'zod';
import { AbortedError, ValidationError, type RateLimitError } from '../errors.js';
import type { AuthKind } from '../lifecycle.js';
import type { SessionFetch } from '../net/session-fetch.js';
import type { KvStore } from '../storage/contract.js';
import type { Clock, JsonValue } from '../types.js';
import { parseAdapterInput, type AdapterContext, type SessionAuth, type SessionLog, type SessionRateLimit, type SessionStats } from './contract.js';
import { AUTH_PREFIX, CONTEXT_PREFIX, NamespacedKv } from './session-kv.js';
import type { SessionUnits } from './units.js';

/** A log level of `ctx.log`. */
export type ContextLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** An auth step an adapter can ask the user for (everything but a QR scan). */
export type RequestKind = Exclude<AuthKind, 'qr'>;

const REQUEST_KINDS: readonly RequestKind[] = ['code', 'password', 'pairing-code'];
const COUNTER_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
/** The longest pause `ctx.rateLimit.pause` takes: a day. */
const MAX_PAUSE_MS = 86_400_000;
const noop = (): void => undefined;

/** A rejected promise already marked handled: a caller that ignores it gets no unhandled rejection. */
function refused(error: Error): Promise<never> {
  const p = Promise.reject(error);
  p.catch(noop);
  return p;
}

/**
 * What one connection's `ctx` is bound to. The session runtime implements it for a live attempt,
 * `connectForTest` for a test: every rule an adapter meets (names, kinds, what a shut-down
 * connection may still do) lives in {@link SessionContext}, so an adapter that passes the
 * conformance suite meets the same rules under a manager.
 */
export interface ContextHost {
  /** Aborted when the session stops, restarts or is deleted. */
  readonly signal: AbortSignal;
  /** The connection was shut down (its `stop()` returned): KV refuses, counters stop counting. */
  readonly closed: boolean;
  /** The attempt is over: auth requests are refused, activity is ignored. */
  readonly ended: boolean;
  /** The manager's clock (or the test's). */
  readonly clock: Clock;
  /** The session's fetch (made on first use). */
  fetch(): SessionFetch;
  /** The session's store for `ctx.kv` and `ctx.authState` (throws when there is none). */
  kvStore(): KvStore;
  /** The session's work units (`ctx.units`). */
  units(): SessionUnits;
  log(level: ContextLogLevel, msg: string, data: Record<string, unknown> | undefined): void;
  increment(name: string, by: number): void;
  showQr(data: string, expiresAt: number | null): void;
  /** Shows the request and resolves with the user's answer (a newer request supersedes it). */
  requestAuth(kind: RequestKind, data: JsonValue, expiresAt: number | null): Promise<string>;
  /** Delivers a checked inbound message; resolves once its listeners have handled it. */
  inbound(message: JsonValue): Promise<void>;
  /** Pauses the session's outbound traffic; returns the error a `send()` throws. */
  pause(ms: number, reason: string): RateLimitError;
  /** How long outbound traffic stays paused, in ms. */
  pausedMs(): number;
  expired(reason: string): void;
  fail(error: unknown): void;
  touch(): void;
}

/** The `ctx` an adapter gets: the one implementation of {@link AdapterContext}. */
export class SessionContext implements AdapterContext<unknown, unknown> {
  readonly id: string;
  readonly platform: string;
  readonly config: unknown;
  readonly credentials: unknown;
  readonly #host: ContextHost;
  readonly #message: z.ZodType | null;
  #kv: NamespacedKv | null = null;
  #authState: NamespacedKv | null = null;
  #units: SessionUnits | null = null;

  /** `session.message` is the adapter's message schema, or null (any JSON, unchecked). */
  constructor(host: ContextHost, session: { id: string; platform: string; config: unknown; credentials: unknown; message?: z.ZodType | null }) {
    this.#host = host;
    this.id = session.id;
    this.platform = session.platform;
    this.config = session.config;
    this.credentials = session.credentials;
    this.#message = session.message ?? null;
  }

  get signal(): AbortSignal {
    return this.#host.signal;
  }

  get clock(): Clock {
    return this.#host.clock;
  }

  get rateLimit(): SessionRateLimit {
    const host = this.#host;
    return {
      pause: (ms: number, reason: string) => {
        if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > MAX_PAUSE_MS) {
          throw new ValidationError('rate-limit pause', [{ path: ['ms'], message: `must be a number of ms from 0 to ${MAX_PAUSE_MS}` }]);
        }
        return host.pause(Math.ceil(ms), String(reason ?? '') || 'the platform asked to slow down');
      },
      pausedMs: () => host.pausedMs(),
    };
  }

  get fetch(): SessionFetch {
    return this.#host.fetch();
  }

  get log(): SessionLog {
    const host = this.#host;
    return {
      debug: (msg, data) => host.log('debug', String(msg), data),
      info: (msg, data) => host.log('info', String(msg), data),
      warn: (msg, data) => host.log('warn', String(msg), data),
      error: (msg, data) => host.log('error', String(msg), data),
    };
  }

  get stats(): SessionStats {
    return {
      increment: (name: string, by = 1) => {
        if (typeof name !== 'string' || !COUNTER_NAME.test(name)) {
          throw new ValidationError('counter name', [{ path: ['name'], message: 'must be 1-64 of A-Z, a-z, 0-9, _ . : -' }]);
        }
        if (typeof by !== 'number' || !Number.isFinite(by)) {
          throw new ValidationError('counter increment', [{ path: ['by'], message: 'must be a finite number' }]);
        }
        if (this.#host.closed) return; // a connection that was shut down counts no more
        this.#host.increment(name, by);
      },
    };
  }

  /** A shut-down connection (its session stopped, restarted or deleted) can no longer reach storage. */
  assertUsable(): void {
    if (this.#host.closed) {
      throw new AbortedError(`This connection of session "${this.id}" has been shut down; it can no longer read or write the session's data.`);
    }
  }

  get units(): SessionUnits {
    return (this.#units ??= this.#host.units());
  }

  get kv(): NamespacedKv {
    return (this.#kv ??= new NamespacedKv(this.#host.kvStore(), this.id, CONTEXT_PREFIX, this));
  }

  get authState(): NamespacedKv {
    return (this.#authState ??= new NamespacedKv(this.#host.kvStore(), this.id, AUTH_PREFIX, this));
  }

  get auth(): SessionAuth {
    const host = this.#host;
    return {
      qr: (data: string, options: { expiresAt?: number } = {}) => {
        host.showQr(String(data), expiryOf(options?.expiresAt));
      },
      request: (kind, options = {}) => {
        if (host.ended) return Promise.reject(new AbortedError(`Session "${this.id}" is no longer starting.`));
        if (!REQUEST_KINDS.includes(kind)) {
          return Promise.reject(new ValidationError('auth request', [{ path: ['kind'], message: 'must be code, password or pairing-code' }]));
        }
        return host.requestAuth(kind, options?.data ?? null, expiryOf(options?.expiresAt));
      },
    };
  }

  emitMessage(message: JsonValue): Promise<void> {
    // A connection on its way down delivers nothing: the adapter must not commit its cursor.
    if (this.#host.ended) return refused(new AbortedError(`This connection of session "${this.id}" is shut down; the message was not delivered.`));
    if (this.#message) {
      try {
        message = parseAdapterInput(this.#message, message, 'inbound message', 'message') as JsonValue;
      } catch (error) {
        return Promise.reject(error as Error);
      }
    }
    return this.#host.inbound(message);
  }

  expired(reason: string): void {
    this.#host.expired(String(reason ?? ''));
  }

  fail(error: unknown): void {
    this.#host.fail(error);
  }

  touch(): void {
    if (!this.#host.ended) this.#host.touch();
  }
}

function expiryOf(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** One pending `ctx.auth.request`: what it asked for and how to answer it. */
export interface PendingAuth {
  readonly kind: RequestKind;
  resolve(value: string): void;
  reject(error: Error): void;
}

/**
 * Opens a request in `slot`, superseding the one it held (that one rejects): the rule both hosts
 * follow. Returns the promise the adapter awaits.
 */
export function openAuthRequest(slot: { pending: PendingAuth | null }, kind: RequestKind): Promise<string> {
  slot.pending?.reject(new AbortedError('superseded by a newer auth request'));
  return new Promise<string>((resolve, reject) => {
    slot.pending = { kind, resolve, reject };
  });
}
