import type { z } from 'zod';
import type {
  Adapter,
  AdapterContext,
  AuthInput,
  PlatformConnection,
  SessionKv,
} from '../adapters/contract.js';
import { parseAdapterInput } from '../adapters/contract.js';
import { AbortedError, ValidationError } from '../errors.js';
import { createSessionFetch } from '../net/session-fetch.js';
import { SessionRateLimiter } from '../net/session-limiter.js';
import { systemClock } from '../types.js';
import type { AuthKind } from '../lifecycle.js';
import type { KvEntry, KvOperation } from '../storage/contract.js';
import { assertKvOperations } from '../storage/input-checks.js';
import type { JsonValue } from '../types.js';

type RequestKind = Exclude<AuthKind, 'qr'>;

/**
 * How the test context answers an adapter's login steps. Without an answer, a request stays
 * pending until {@link AdapterTestContext.answer} or the signal aborts.
 */
export interface AuthAnswers {
  code?: string;
  password?: string;
  'pairing-code'?: string;
  /** "Scan" a QR code: the input submitted to `connection.submitAuth` for a shown QR payload. */
  qr?: (data: string) => string | AuthInput;
}

/** Where test contexts keep KV: one space per session id, as a real store would. */
export interface AdapterTestStore {
  /** session id → its context data (`ctx.kv`) and auth state (`ctx.authState`). */
  readonly sessions: Map<string, { kv: Map<string, JsonValue>; authState: Map<string, JsonValue> }>;
}

/**
 * Creates an empty {@link AdapterTestStore}: pass the same store to several `connectForTest`
 * calls to run sessions side by side, or one session id twice to simulate a restart.
 *
 * @example
 * ```ts
 * const store = createAdapterTestStore();
 * const first = connectForTest(adapter, { id: 'a', credentials, store });
 * await first.connection.start();
 * await first.stop();
 * const again = connectForTest(adapter, { id: 'a', credentials, store }); // sees a's auth state
 * ```
 */
export function createAdapterTestStore(): AdapterTestStore {
  return { sessions: new Map() };
}

/** Options of {@link connectForTest}. */
export interface ConnectForTestOptions {
  /** Session id. Default `test-session`. */
  id?: string;
  /** Raw credentials, checked by the adapter's schema. */
  credentials?: unknown;
  /** Raw config, checked by the adapter's schema (defaults applied). */
  config?: unknown;
  auth?: AuthAnswers;
  /** Share one store between contexts to check that sessions stay apart. */
  store?: AdapterTestStore;
}

export interface RecordedLog {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  data?: Record<string, unknown>;
}

/** Everything a test can see of one connection run by {@link connectForTest}. */
export interface AdapterTestContext<TConfig = unknown, TCredentials = unknown> {
  readonly ctx: AdapterContext<TConfig, TCredentials>;
  readonly connection: PlatformConnection<JsonValue>;
  readonly controller: AbortController;
  readonly logs: RecordedLog[];
  /** Custom counters raised with `ctx.stats.increment`. */
  readonly stats: Record<string, number>;
  readonly qrs: { data: string; expiresAt: number | null }[];
  readonly requests: { kind: RequestKind; data: JsonValue; expiresAt: number | null }[];
  /** Inbound messages from `ctx.emitMessage`. */
  readonly messages: JsonValue[];
  /** Reasons given to `ctx.expired`. */
  readonly expired: string[];
  /** Errors reported with `ctx.fail` (the live connection failed). */
  readonly failures: unknown[];
  /** Errors thrown by `connection.submitAuth` when the kit answered a QR code. */
  readonly authErrors: unknown[];
  touches: number;
  /** This session's KV spaces in the store. */
  readonly kv: Map<string, JsonValue>;
  readonly authState: Map<string, JsonValue>;
  /**
   * Answers the pending `ctx.auth.request(kind)` the way the manager's `submitAuth` does:
   * `connection.submitAuth(input)` first when the adapter has it, then the request resolves.
   */
  answer(kind: RequestKind, value: string): Promise<void>;
  /** What the manager does on stop: aborts `ctx.signal`, then calls `connection.stop()`. */
  stop(): Promise<void>;
}

function copy<T extends JsonValue>(value: T): T {
  return structuredClone(value);
}

/** A {@link SessionKv} over a Map, with the checks and copies of a real store. */
function mapKv(entries: Map<string, JsonValue>): SessionKv {
  const checkKey = (key: unknown): void => {
    if (typeof key !== 'string' || key.length === 0 || key.length > 512) {
      throw new ValidationError('KV key', [{ path: ['key'], message: 'must be a string of 1-512 characters' }]);
    }
  };
  const batch = async (ops: KvOperation[]): Promise<void> => {
    assertKvOperations(ops);
    for (const op of ops) checkKey(op.key);
    const copies = ops.map((op) => (op.op === 'set' ? { ...op, value: copy(op.value) } : op));
    for (const op of copies) {
      if (op.op === 'set') entries.set(op.key, op.value);
      else entries.delete(op.key);
    }
  };
  const matching = (prefix = ''): string[] => [...entries.keys()].filter((k) => k.startsWith(prefix)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    async get<T extends JsonValue = JsonValue>(key: string) {
      checkKey(key);
      const value = entries.get(key);
      return (value === undefined ? undefined : copy(value)) as T | undefined;
    },
    set: (key, value) => batch([{ op: 'set', key, value }]),
    delete: (key) => batch([{ op: 'delete', key }]),
    async list(options = {}): Promise<KvEntry[]> {
      return matching(options.prefix).map((key) => ({ key, value: copy(entries.get(key)!) }));
    },
    async clear(options = {}) {
      const keys = matching(options.prefix);
      for (const key of keys) entries.delete(key);
      return keys.length;
    },
    batch,
  };
}

/**
 * Runs an adapter's `connect()` against a context this kit builds itself, without a manager:
 * in-memory KV, recorded logs, stats, QR codes, auth requests, messages and expiry, and an
 * `AbortController` for `ctx.signal`. Credentials and config are checked by the adapter's schemas
 * first (a `ValidationError` when they do not fit). For unit tests of adapters, and the engine of
 * `adapterConformanceSuite`.
 *
 * @example
 * ```ts
 * import { connectForTest, simulatedAdapter } from 'multisession/testing';
 *
 * const t = connectForTest(simulatedAdapter({ auth: 'code' }), { credentials: { token: 't' }, auth: { code: '12345' } });
 * await t.connection.start();
 * console.log(t.requests);            // [{ kind: 'code', … }]
 * await t.stop();
 * ```
 */
export function connectForTest<TCredentials extends z.ZodType, TConfig extends z.ZodType>(
  adapter: Adapter<TCredentials, TConfig, z.ZodType<JsonValue>> | Adapter<TCredentials, TConfig, any>,
  options: ConnectForTestOptions = {},
): AdapterTestContext<z.output<TConfig>, z.output<TCredentials>> {
  const id = options.id ?? 'test-session';
  const credentials = parseAdapterInput(adapter.credentials, options.credentials, 'credentials', 'credentials') as z.output<TCredentials>;
  const config = parseAdapterInput(adapter.config, options.config ?? {}, 'config', 'config') as z.output<TConfig>;
  const store = options.store ?? createAdapterTestStore();
  let space = store.sessions.get(id);
  if (!space) store.sessions.set(id, (space = { kv: new Map(), authState: new Map() }));
  const answers = options.auth ?? {};
  const controller = new AbortController();
  let pending: { kind: RequestKind; resolve(value: string): void; reject(error: Error): void } | null = null;
  let connection: PlatformConnection<JsonValue> | null = null;

  const onAbort = (): void => {
    pending?.reject(new AbortedError(`Session "${id}" was stopped.`));
    pending = null;
  };
  controller.signal.addEventListener('abort', onAbort, { once: true });

  const answer = async (kind: RequestKind, value: string): Promise<void> => {
    if (connection?.submitAuth) await connection.submitAuth({ kind, value });
    if (pending && pending.kind === kind) {
      const p = pending;
      pending = null;
      p.resolve(value);
    }
  };

  const handle = {
    controller,
    logs: [] as RecordedLog[],
    stats: {} as Record<string, number>,
    qrs: [] as { data: string; expiresAt: number | null }[],
    requests: [] as { kind: RequestKind; data: JsonValue; expiresAt: number | null }[],
    messages: [] as JsonValue[],
    expired: [] as string[],
    failures: [] as unknown[],
    authErrors: [] as unknown[],
    touches: 0,
    kv: space.kv,
    authState: space.authState,
    answer,
  };

  const log = (level: RecordedLog['level']) => (msg: string, data?: Record<string, unknown>) => {
    handle.logs.push(data === undefined ? { level, msg: String(msg) } : { level, msg: String(msg), data });
  };

  // The same ctx.fetch as under a manager: the config's proxy and rate limit (on the real clock).
  const limiter = new SessionRateLimiter(systemClock);
  const net = createSessionFetch({ config, bucket: () => limiter.bucket(config), signal: controller.signal });

  const ctx: AdapterContext<z.output<TConfig>, z.output<TCredentials>> = {
    id,
    fetch: net.fetch,
    platform: adapter.name,
    config,
    credentials,
    signal: controller.signal,
    log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    stats: {
      increment(name: string, by = 1) {
        handle.stats[name] = (handle.stats[name] ?? 0) + by;
      },
    },
    kv: mapKv(space.kv),
    authState: mapKv(space.authState),
    auth: {
      qr(data: string, qrOptions: { expiresAt?: number } = {}) {
        handle.qrs.push({ data: String(data), expiresAt: qrOptions.expiresAt ?? null });
        const scan = answers.qr;
        if (!scan) return;
        setImmediate(() => {
          if (controller.signal.aborted || !connection?.submitAuth) return;
          const picked = scan(String(data));
          const input: AuthInput = typeof picked === 'string' ? { kind: 'code', value: picked } : picked;
          connection.submitAuth(input).catch((error: unknown) => handle.authErrors.push(error));
        });
      },
      request(kind: RequestKind, requestOptions: { data?: JsonValue; expiresAt?: number } = {}) {
        if (controller.signal.aborted) return Promise.reject(new AbortedError(`Session "${id}" was stopped.`));
        handle.requests.push({ kind, data: requestOptions.data ?? null, expiresAt: requestOptions.expiresAt ?? null });
        pending?.reject(new AbortedError('superseded by a newer auth request'));
        const promise = new Promise<string>((resolve, reject) => {
          pending = { kind, resolve, reject };
        });
        const value = answers[kind];
        if (value !== undefined) setImmediate(() => void answer(kind, value).catch((error: unknown) => handle.authErrors.push(error)));
        return promise;
      },
    },
    emitMessage(message: JsonValue) {
      handle.messages.push(copy(message));
    },
    expired(reason: string) {
      handle.expired.push(String(reason));
    },
    fail(error: unknown) {
      handle.failures.push(error);
    },
    touch() {
      handle.touches++;
    },
  };

  connection = adapter.connect(ctx) as PlatformConnection<JsonValue>;
  const conn = connection;
  return Object.assign(handle, {
    ctx,
    connection: conn,
    async stop() {
      if (!controller.signal.aborted) controller.abort(new AbortedError(`Session "${id}" was stopped.`));
      try {
        await conn.stop();
      } finally {
        await net.close();
      }
    },
  });
}
