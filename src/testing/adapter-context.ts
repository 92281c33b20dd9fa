import type { z } from 'zod';
import { SessionContext, openAuthRequest, type ContextHost, type PendingAuth, type RequestKind } from '../adapters/context.js';
import type { Adapter, AdapterContext, AuthInput, PlatformConnection } from '../adapters/contract.js';
import { messageSchemaOf, parseAdapterInput } from '../adapters/contract.js';
import { AUTH_PREFIX, CONTEXT_PREFIX } from '../adapters/session-kv.js';
import { AbortedError, RateLimitError, SessionNotFoundError, ValidationError } from '../errors.js';
import { createSessionFetch } from '../net/session-fetch.js';
import { SessionRateLimiter } from '../net/session-limiter.js';
import type { KvEntry, KvOperation, KvStore } from '../storage/contract.js';
import { assertKvOperations } from '../storage/input-checks.js';
import { systemClock, type Clock, type JsonValue } from '../types.js';
import type { UnitRecord } from '../storage/units-contract.js';
import { UnitBoard } from '../units/board.js';

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
  /** `ctx.clock`, also the clock of the rate limit and its pauses. Default the real clock. */
  clock?: Clock;
  /**
   * Stands in for the app's `session.message` listeners: `ctx.emitMessage` resolves once the
   * promise it returns has settled (a rejection is recorded in `listenerErrors`). Hold it
   * pending to see what the adapter does before its message is handled.
   */
  onMessage?: (message: JsonValue) => void | Promise<void>;
  /** The session's work units as `ctx.units` shows them (change them with `setUnits`). */
  units?: TestUnit[];
  /** The largest worker group of `ctx.units` (the manager's `units.groupSize`). Default 30. */
  groupSize?: number;
}

/** A unit given to {@link connectForTest}. */
export interface TestUnit {
  id: string;
  kind?: string;
  data?: JsonValue;
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
  /** Errors thrown or rejected by `onMessage`. */
  readonly listenerErrors: unknown[];
  /** Pauses the adapter asked for with `ctx.rateLimit.pause`. */
  readonly pauses: { ms: number; reason: string }[];
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
  /** Replaces the session's units: `ctx.units` changes (and announces it) as under a manager. */
  setUnits(units: TestUnit[]): void;
}

function copy<T extends JsonValue>(value: T): T {
  return structuredClone(value);
}

const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The `kv` capability over a test store's Maps: keys under `ctx:` land in a session's `kv` Map,
 * keys under `auth:` in its `authState` Map (the namespaces `ctx.kv` and `ctx.authState` use),
 * with the checks and copies of a real store.
 */
class TestKvStore implements KvStore {
  readonly #store: AdapterTestStore;
  constructor(store: AdapterTestStore) {
    this.#store = store;
  }

  #place(sessionId: string, key: string): { map: Map<string, JsonValue>; key: string } {
    const space = this.#store.sessions.get(sessionId);
    if (!space) throw new SessionNotFoundError(sessionId);
    if (key.startsWith(AUTH_PREFIX)) return { map: space.authState, key: key.slice(AUTH_PREFIX.length) };
    if (key.startsWith(CONTEXT_PREFIX)) return { map: space.kv, key: key.slice(CONTEXT_PREFIX.length) };
    throw new ValidationError('KV key', [{ path: ['key'], message: `must start with ${CONTEXT_PREFIX} or ${AUTH_PREFIX}` }]);
  }

  /** Every stored key of the session, with its namespace prefix. */
  #entries(sessionId: string): [string, JsonValue][] {
    const space = this.#store.sessions.get(sessionId);
    if (!space) return [];
    return [
      ...[...space.kv].map(([k, v]): [string, JsonValue] => [CONTEXT_PREFIX + k, v]),
      ...[...space.authState].map(([k, v]): [string, JsonValue] => [AUTH_PREFIX + k, v]),
    ];
  }

  async get(sessionId: string, key: string): Promise<JsonValue | undefined> {
    const at = this.#place(sessionId, key);
    const value = at.map.get(at.key);
    return value === undefined ? undefined : copy(value);
  }

  async list(sessionId: string, options: { prefix?: string } = {}): Promise<KvEntry[]> {
    const prefix = options.prefix ?? '';
    return this.#entries(sessionId)
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => byKey(a, b))
      .map(([key, value]) => ({ key, value: copy(value) }));
  }

  async write(sessionId: string, ops: KvOperation[]): Promise<void> {
    assertKvOperations(ops);
    const places = ops.map((op) => this.#place(sessionId, op.key)); // all checked before any write
    ops.forEach((op, i) => {
      const at = places[i]!;
      if (op.op === 'set') at.map.set(at.key, copy(op.value));
      else at.map.delete(at.key);
    });
  }

  async clear(sessionId: string, options: { prefix?: string } = {}): Promise<number> {
    const keys = (await this.list(sessionId, options)).map((e) => e.key);
    for (const key of keys) {
      const at = this.#place(sessionId, key);
      at.map.delete(at.key);
    }
    return keys.length;
  }
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
  const slot: { pending: PendingAuth | null } = { pending: null };
  let connection: PlatformConnection<JsonValue> | null = null;
  let closed = false;

  const onAbort = (): void => {
    slot.pending?.reject(new AbortedError(`Session "${id}" was stopped.`));
    slot.pending = null;
  };
  controller.signal.addEventListener('abort', onAbort, { once: true });

  const answer = async (kind: RequestKind, value: string): Promise<void> => {
    if (connection?.submitAuth) await connection.submitAuth({ kind, value });
    const pending = slot.pending;
    if (pending && pending.kind === kind) {
      slot.pending = null;
      pending.resolve(value);
    }
  };

  const handle = {
    controller,
    logs: [] as RecordedLog[],
    stats: {} as Record<string, number>,
    qrs: [] as { data: string; expiresAt: number | null }[],
    requests: [] as { kind: RequestKind; data: JsonValue; expiresAt: number | null }[],
    messages: [] as JsonValue[],
    listenerErrors: [] as unknown[],
    pauses: [] as { ms: number; reason: string }[],
    expired: [] as string[],
    failures: [] as unknown[],
    authErrors: [] as unknown[],
    touches: 0,
    kv: space.kv,
    authState: space.authState,
    answer,
    setUnits(units: TestUnit[]) {
      const now = clock.now();
      const next = units.map((u) => ({ id: u.id, kind: u.kind ?? 'unit', data: u.data ?? null, sessionId: id, assignedAt: now, createdAt: now }));
      const gone = shown.filter((u) => !next.some((n) => n.id === u.id)).map((u) => ({ ...u, sessionId: null }));
      board.written(next, gone);
      shown = next;
    },
  };
  const board = new UnitBoard(undefined, options.groupSize ?? 30, (error) => handle.listenerErrors.push(error));
  let shown: UnitRecord[] = [];

  // The same ctx.fetch as under a manager: the config's proxy, rate limit and pauses.
  const clock = options.clock ?? systemClock;
  const limiter = new SessionRateLimiter(clock);
  const net = createSessionFetch({ config, limiter: () => limiter, signal: controller.signal });
  const onMessage = options.onMessage;
  const kvStore = new TestKvStore(store);

  // The kit's side of the one AdapterContext: it records what the adapter does.
  const host: ContextHost = {
    signal: controller.signal,
    get closed() {
      return closed;
    },
    get ended() {
      return controller.signal.aborted;
    },
    clock,
    fetch: () => net.fetch,
    kvStore: () => kvStore,
    units: () => board.view(id, controller.signal),
    log(level, msg, data) {
      handle.logs.push(data === undefined ? { level, msg } : { level, msg, data });
    },
    increment(name, by) {
      handle.stats[name] = (handle.stats[name] ?? 0) + by;
    },
    showQr(data, expiresAt) {
      handle.qrs.push({ data, expiresAt });
      const scan = answers.qr;
      if (!scan) return;
      setImmediate(() => {
        if (controller.signal.aborted || !connection?.submitAuth) return;
        const picked = scan(data);
        const input: AuthInput = typeof picked === 'string' ? { kind: 'code', value: picked } : picked;
        connection.submitAuth(input).catch((error: unknown) => handle.authErrors.push(error));
      });
    },
    requestAuth(kind, data, expiresAt) {
      handle.requests.push({ kind, data, expiresAt });
      const promise = openAuthRequest(slot, kind);
      const value = answers[kind];
      if (value !== undefined) setImmediate(() => void answer(kind, value).catch((error: unknown) => handle.authErrors.push(error)));
      return promise;
    },
    inbound(message) {
      handle.messages.push(copy(message));
      if (!onMessage) return Promise.resolve();
      return new Promise<void>((resolve) => resolve(onMessage(copy(message)))).catch((error: unknown) => void handle.listenerErrors.push(error));
    },
    pause(ms, reason) {
      handle.pauses.push({ ms, reason });
      return new RateLimitError(id, limiter.pause(ms, reason), null, { reason });
    },
    pausedMs: () => limiter.pausedMs(),
    expired(reason) {
      handle.expired.push(reason);
    },
    fail(error) {
      handle.failures.push(error);
    },
    touch() {
      handle.touches++;
    },
  };
  if (options.units) handle.setUnits(options.units);
  const ctx = new SessionContext(host, { id, platform: adapter.name, config, credentials, message: messageSchemaOf(adapter) }) as unknown as AdapterContext<
    z.output<TConfig>,
    z.output<TCredentials>
  >;

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
        closed = true; // as under a manager: a connection that was shut down no longer reaches storage
        await net.close();
      }
    },
  });
}
