import { openAuthRequest, type RequestKind } from '../../adapters/context.js';
import type { AuthInput } from '../../adapters/contract.js';
import { AuthNotPendingError, AuthTimeoutError, ValidationError } from '../../errors.js';
import { cloneJson, type JsonValue } from '../../types.js';
import type { SessionAuthInfo } from '../snapshot.js';
import type { Attempt } from './attempt.js';
import { untilEnded } from './sender.js';
import type { SessionRuntime } from './session-runtime.js';

/**
 * The login steps of an attempt: a QR code shown, a code, password or pairing code asked for
 * (`authenticating`, with `authTimeoutMs` to answer), the answer delivered by `submitAuth`, and
 * the start watchdog that fails a start which neither comes up nor waits for the user.
 */

/** `ctx.auth.qr()` and `ctx.auth.request()` land here. */
export function enterAuth(rt: SessionRuntime, attempt: Attempt, info: SessionAuthInfo): void {
  if (attempt.ended || attempt !== rt.run?.attempt) return;
  info = { kind: info.kind, data: cloneJson(info.data), expiresAt: info.expiresAt }; // the adapter keeps its own
  attempt.awaitingAuth = true;
  rt.setAuth(info);
  if (rt.state !== 'authenticating') rt.transition('authenticating', `waiting for ${info.kind}`, rt.run);
  attempt.watchdog?.cancel();
  attempt.watchdog = null;
  if (!attempt.authTimer) {
    const ms = rt.core.options.authTimeoutMs;
    attempt.authTimer = rt.core.scheduler.schedule(ms, () => {
      attempt.authTimer = null;
      const error = new AuthTimeoutError(rt.id, info.kind, ms);
      attempt.pending?.reject(error);
      attempt.pending = null;
      attempt.end({ kind: 'failed', error });
    });
  }
  rt.emit('session.auth', { id: rt.id, kind: info.kind, data: cloneJson(info.data), expiresAt: info.expiresAt, at: rt.core.clock.now() });
  rt.run?.settle();
}

/** `ctx.auth.request(kind)`: opens the request and shows it; resolves with the submitted value. */
export function requestAuth(rt: SessionRuntime, attempt: Attempt, kind: RequestKind, data: JsonValue, expiresAt: number | null): Promise<string> {
  const answer = openAuthRequest(attempt, kind);
  enterAuth(rt, attempt, { kind, data, expiresAt });
  return answer;
}

/** Delivers a code, password or pairing code to the attempt waiting for it. */
export async function submitAuth(rt: SessionRuntime, input: AuthInput): Promise<void> {
  const attempt = rt.run?.attempt;
  if (rt.state !== 'authenticating' || !attempt || attempt.ended) {
    throw new AuthNotPendingError(rt.id, `Session "${rt.id}" is "${rt.state}" and is not waiting for authentication.`);
  }
  const conn = attempt.connection;
  const pending = attempt.pending;
  if (pending && pending.kind !== input.kind && !conn?.submitAuth) {
    throw new AuthNotPendingError(rt.id, `Session "${rt.id}" waits for a ${pending.kind}, not a ${input.kind}; submit it with kind "${pending.kind}".`, {
      context: { expected: pending.kind },
    });
  }
  if (!pending && !conn?.submitAuth) {
    throw new AuthNotPendingError(rt.id, `Session "${rt.id}" waits for a ${rt.auth?.kind ?? 'scan'}; its adapter takes no typed input for that.`);
  }
  rt.touch();
  if (conn?.submitAuth) {
    try {
      await untilEnded(rt, attempt, conn.submitAuth(input), 'submitAuth');
    } catch (cause) {
      throw refusal(rt, cause) ?? rt.adapterError('submitAuth', cause);
    }
  }
  if (pending && pending.kind === input.kind && attempt.pending === pending) {
    attempt.pending = null;
    pending.resolve(input.value);
  }
  if (attempt.ended || attempt.pending) return;
  attempt.awaitingAuth = false;
  attempt.authTimer?.cancel();
  attempt.authTimer = null;
  if (attempt.live) {
    // Re-authentication of a session that was already up: back to ready.
    rt.setAuth(null);
    if (rt.state === 'authenticating') rt.transition('ready', 'authenticated', rt.run);
  } else {
    armWatchdog(rt, attempt);
  }
}

/**
 * The adapter's own refusal of the input (a kind it does not take while its QR shows, a wrong
 * code) is the caller's to fix, not an adapter failure: passed on as it is, unless its text holds
 * a credential (then it is wrapped, and scrubbed, like any adapter error).
 */
function refusal(rt: SessionRuntime, cause: unknown): Error | null {
  if (!(cause instanceof AuthNotPendingError) && !(cause instanceof ValidationError)) return null;
  const text = JSON.stringify([cause.message, cause.context]);
  return rt.secrets().some((secret) => text.includes(secret)) ? null : cause;
}

/** Fails a start that neither comes up nor waits for the user within `startTimeoutMs`. */
export function armWatchdog(rt: SessionRuntime, attempt: Attempt): void {
  attempt.watchdog?.cancel();
  const ms = rt.core.options.startTimeoutMs;
  attempt.watchdog = rt.core.scheduler.schedule(ms, () => {
    if (!attempt.live && !attempt.awaitingAuth) {
      attempt.end({ kind: 'failed', error: rt.adapterError('start', new Error(`did not finish within ${ms} ms`)) });
    }
  });
}
