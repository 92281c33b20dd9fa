import type { Dispatcher } from 'undici';
import { AbortedError } from '../errors.js';
import { scrubError } from '../security/redact.js';
import { proxyOf } from './config.js';
import { createProxyDispatcher, loadUndici } from './dispatcher.js';
import { describeProxy, parseProxy, type ResolvedProxy } from './proxy.js';
import type { SessionRateLimiter } from './session-limiter.js';

/** What `ctx.fetch` takes beside the standard `RequestInit`. */
export interface SessionRequestInit extends RequestInit {
  /**
   * `true` for a request that waits on the platform rather than sends to it: a long poll
   * (Telegram's `getUpdates`), a health probe. It takes no token of the session's rate limit, so
   * it never queues behind sends nor slows them down; it still waits out a pause
   * (`ctx.rateLimit.pause`), so a loop of them cannot run hot while the platform says "slow down".
   */
  longPoll?: boolean;
}

/** `ctx.fetch`: the WHATWG `fetch`, through the session's proxy and rate limit. */
export type SessionFetch = (input: string | URL | Request, init?: SessionRequestInit) => Promise<Response>;

/** Options of {@link createSessionFetch}. */
export interface SessionFetchOptions {
  /** The session's config: its `proxy` (see `networkConfigSchema`) is read once, on first use. */
  config: unknown;
  /** The session's rate limiter (its bucket and pause), asked on every call, or none. */
  limiter?: () => SessionRateLimiter | null;
  /** The session's signal: aborting it aborts every request and every wait for a token. */
  signal?: AbortSignal;
}

/** A session's fetch and the resources behind it. */
export interface SessionFetchHandle {
  readonly fetch: SessionFetch;
  /** The proxy in use (never with its user or password), or null; known after the first call. */
  readonly proxy: string | null;
  /** Destroys the proxy dispatcher (if one was made); later calls reject with `AbortedError`. */
  close(): Promise<void>;
}

function reasonOf(signal: AbortSignal): unknown {
  return signal.reason ?? new AbortedError('The request was aborted.');
}

/**
 * Makes a session's `fetch`. Each call waits out a pause and takes a token of the session's bucket
 * first (honouring `init.signal` and the session's signal; see {@link SessionRequestInit} for the
 * exceptions), then runs undici's `fetch`: through a dispatcher for the
 * session's proxy, made on first use, or undici's default dispatcher when there is no proxy. An
 * `init.dispatcher` is ignored: a session's traffic always takes its own route. Errors never carry
 * the proxy's user or password.
 *
 * @example
 * ```ts
 * const net = createSessionFetch({ config: { proxy: 'socks5h://127.0.0.1:1080' }, signal });
 * const res = await net.fetch('https://example.org/');
 * await net.close();
 * ```
 */
export function createSessionFetch(options: SessionFetchOptions): SessionFetchHandle {
  let closed = false;
  let proxy: ResolvedProxy | null | undefined;
  let dispatcher: Promise<Dispatcher | null> | null = null;
  let secrets: string[] = [];

  const resolveProxy = (): ResolvedProxy | null => {
    if (proxy === undefined) {
      const setting = proxyOf(options.config);
      proxy = setting === null ? null : parseProxy(setting, ['config', 'proxy']);
      if (proxy) {
        const token = proxy.username !== null ? Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64') : null;
        secrets = [proxy.password, token].filter((s): s is string => !!s && s.length >= 4);
      }
    }
    return proxy;
  };

  const getDispatcher = (): Promise<Dispatcher | null> => {
    if (!dispatcher) {
      const resolved = resolveProxy();
      dispatcher = resolved === null ? Promise.resolve(null) : createProxyDispatcher(resolved);
      dispatcher.catch(() => (dispatcher = null));
    }
    return dispatcher;
  };

  const closedError = () => new AbortedError('This fetch belongs to a connection that has been shut down; the session stopped or restarted.');

  const sessionFetch: SessionFetch = async (input, init = {}) => {
    if (closed) throw closedError();
    // A fresh signal per call even with the session's alone: undici keeps a listener on the signal
    // it is given until the request is garbage-collected, which on the long-lived session signal
    // piles up (MaxListenersExceededWarning after ~1,500 quick requests). AbortSignal.any links by
    // weak reference instead.
    const signals = [init.signal, options.signal].filter((s): s is AbortSignal => s instanceof AbortSignal);
    const signal = options.signal ? AbortSignal.any(signals) : signals[0];
    if (signal?.aborted) throw reasonOf(signal);
    const turn = options.limiter?.()?.acquireForFetch(options.config, signal, init.longPoll === true);
    if (turn) await turn;
    try {
      const [undici, via] = await Promise.all([loadUndici(), getDispatcher()]);
      if (closed) throw closedError();
      const { dispatcher: _ignored, longPoll: _longPoll, ...rest } = init as SessionRequestInit & { dispatcher?: unknown };
      let request: string | URL | InstanceType<typeof undici.Request> = input as string | URL;
      if (typeof input === 'object' && !(input instanceof URL) && !(input instanceof undici.Request)) {
        // A Request of Node's built-in fetch: undici 7 does not recognise its class, so copy it.
        const foreign = input;
        request = new undici.Request(foreign.url, {
          method: foreign.method,
          headers: [...foreign.headers],
          body: foreign.body as never,
          redirect: foreign.redirect,
          signal: foreign.signal,
          duplex: 'half',
        } as never);
      }
      const response = await undici.fetch(request, {
        ...(rest as object),
        ...(signal ? { signal } : {}),
        ...(via ? { dispatcher: via } : {}),
      } as never);
      return response as unknown as Response;
    } catch (error) {
      throw scrubError(error, secrets);
    }
  };

  return {
    fetch: sessionFetch,
    get proxy() {
      return proxy ? describeProxy(proxy) : null;
    },
    async close() {
      if (closed) return;
      closed = true;
      const pending = dispatcher;
      dispatcher = null;
      if (!pending) return;
      try {
        const d = await pending;
        await d?.destroy();
      } catch {
        // a dispatcher that failed to build or to close holds nothing
      }
    },
  };
}
