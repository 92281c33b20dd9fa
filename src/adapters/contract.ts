import { z } from 'zod';
import { ValidationError, type RateLimitError, type ValidationIssue } from '../errors.js';
import { fromZodError } from '../validation.js';
import type { AuthKind, HealthStatus } from '../lifecycle.js';
import type { KvEntry, KvOperation } from '../storage/contract.js';
import type { Clock, JsonObject, JsonValue } from '../types.js';
import type { SessionFetch } from '../net/session-fetch.js';
import type { SessionUnits } from './units.js';

/**
 * The platform adapter contract. An adapter turns a session's validated config and credentials
 * into a live {@link PlatformConnection}. Write one with {@link defineAdapter} and check it with
 * `adapterConformanceSuite` from `multisession/testing`.
 */

/** What `health()` reports. `expired`/`unauthorized` move the session to `expired`. */
export interface HealthReport {
  status: HealthStatus;
  detail?: string;
}

/** Input to `submitAuth`: the code, password or pairing code the session asked for. */
export interface AuthInput {
  kind: Exclude<AuthKind, 'qr'>;
  value: string;
}

/** A live connection to the platform, one per running session. */
export interface PlatformConnection<TAction = JsonValue> {
  /** Log in and connect. May call `ctx.auth.qr(…)` or `await ctx.auth.request(…)`. Resolves when ready. */
  start(): Promise<void>;
  /** Disconnect; release every resource. Called once per successful or failed `start`. */
  stop(): Promise<void>;
  /** A cheap liveness probe. A rejection or a hang past the timeout counts as `unhealthy`. */
  health(): Promise<HealthReport>;
  /** Perform a platform action (send a message, place a bid …). The result is returned to the caller. */
  send(action: TAction): Promise<JsonValue | void>;
  /**
   * Optional: receive auth input directly. When absent, `ctx.auth.request()` resolves with the
   * submitted value instead.
   */
  submitAuth?(input: AuthInput): Promise<void>;
  /** Optional: tell the platform the session logs out (before its stored auth state is dropped). */
  logout?(): Promise<void>;
}

/** The session's own key-value space. No session can reach another's. */
export interface SessionKv {
  get<T extends JsonValue = JsonValue>(key: string): Promise<T | undefined>;
  set(key: string, value: JsonValue): Promise<void>;
  delete(key: string): Promise<void>;
  list(options?: { prefix?: string }): Promise<KvEntry[]>;
  clear(options?: { prefix?: string }): Promise<number>;
  /** All of the operations, atomically. */
  batch(ops: KvOperation[]): Promise<void>;
}

export interface SessionLog {
  debug(msg: string, data?: Record<string, unknown>): void;
  info(msg: string, data?: Record<string, unknown>): void;
  warn(msg: string, data?: Record<string, unknown>): void;
  error(msg: string, data?: Record<string, unknown>): void;
}

export interface SessionStats {
  /** Raises a custom counter (e.g. `bids`), seen in `manager.stats(id)`. */
  increment(name: string, by?: number): void;
}

export interface SessionAuth {
  /** Show a QR code: the session becomes `authenticating` with `auth.kind = 'qr'`. Call again to refresh it. */
  qr(data: string, options?: { expiresAt?: number }): void;
  /**
   * Ask the user for a code, password or pairing code: the session becomes `authenticating` until
   * `manager.submitAuth()` delivers it (the promise resolves with the value) or `authTimeoutMs`
   * passes (rejects with `AuthTimeoutError`). `data` is shown to the user (e.g. a phone hint).
   */
  request(kind: Exclude<AuthKind, 'qr'>, options?: { data?: JsonValue; expiresAt?: number }): Promise<string>;
}

/**
 * The session's outbound rate limit, as the adapter feeds it back: a platform's "wait N seconds"
 * (HTTP 429, a flood wait, a 5xx storm) holds back all of the session's outbound traffic.
 */
export interface SessionRateLimit {
  /**
   * Pauses every outbound request of the session — `manager.send` and `ctx.fetch` alike, this
   * connection's and the next one's after a restart — for `ms` from now (a longer pause already
   * set stays). `reason` is logged and named in the errors callers get. Returns the
   * `RateLimitError` (with `retryAfterMs`) a `send()` throws to tell its caller.
   *
   * @example
   * ```ts
   * if (res.status === 429) throw ctx.rateLimit.pause(retryAfterSeconds * 1000, 'Too Many Requests');
   * ```
   */
  pause(ms: number, reason: string): RateLimitError;
  /** How long outbound traffic stays paused, in ms (0: it flows). */
  pausedMs(): number;
}

/** Everything an adapter gets for one session. */
export interface AdapterContext<TConfig = unknown, TCredentials = unknown, TMessage = JsonValue> {
  readonly id: string;
  readonly platform: string;
  readonly config: TConfig;
  readonly credentials: TCredentials;
  /** Aborted when the session stops, restarts or is deleted. */
  readonly signal: AbortSignal;
  readonly log: SessionLog;
  readonly stats: SessionStats;
  /** Context data (conversation history, topic maps …). Dropped by `manager.clear(id)`. */
  readonly kv: SessionKv;
  /** Auth state (platform session files, keys …). Dropped by `manager.logout(id)`. */
  readonly authState: SessionKv;
  readonly auth: SessionAuth;
  /**
   * Reports an inbound message: counted, and emitted as `session.message` with direction `in`.
   * The promise resolves once every listener has handled it (async listeners included: each
   * promise a listener returns has settled; a listener that fails is reported as `manager.error`),
   * so commit your cursor after it — at-least-once delivery across crashes. It rejects with
   * `AbortedError` when this connection is already shut down (the message was not delivered: do
   * not commit), and with `ValidationError` when the message does not fit the adapter's
   * `message` schema. Messages may be emitted as soon as `start()` has been called.
   */
  emitMessage(message: TMessage): Promise<void>;
  /** The platform says the credentials are no longer valid: the session moves to `expired`. */
  expired(reason: string): void;
  /**
   * The live connection failed (socket closed, fatal protocol error …): the session restarts with
   * back-off, or ends `failed` when restarts are exhausted. During `start()`, rejecting does the same.
   */
  fail(error: unknown): void;
  /** Mark activity (resets the idle timer). */
  touch(): void;
  /**
   * The WHATWG `fetch` (undici), through this session's proxy and rate limit: each call first waits
   * out a pause (`ctx.rateLimit.pause`) and for a token of the session's bucket (config
   * `rateLimit`, shared with `manager.send`), then goes through the session's `proxy` (http,
   * https, socks4, socks5, socks5h), or direct without one. No token is taken by a request made
   * inside `send()` (the send paid one already) nor by one marked `{ longPoll: true }`.
   * Aborted with `init.signal` or when the session stops; the proxy's connections are closed when
   * this connection is torn down. Spread `networkConfigSchema.shape` into the adapter's config
   * schema to offer the settings.
   *
   * @example
   * ```ts
   * const res = await ctx.fetch('https://api.example.org/me', { headers: { authorization: `Bearer ${ctx.credentials.token}` } });
   * ```
   */
  readonly fetch: SessionFetch;
  /** Feed a platform's "slow down" back to the session's outbound rate limit. */
  readonly rateLimit: SessionRateLimit;
  /** The manager's clock (a manual one in tests): schedule the adapter's own waits on it. Its timers are unref'd. */
  readonly clock: Clock;
  /**
   * The session's work units (`manager.units`) in worker groups of at most `units.groupSize`:
   * run one worker loop per group, and follow changes with `onChange` or `changes()`.
   */
  readonly units: SessionUnits;
}

export interface AdapterDefinition<
  TCredentials extends z.ZodType = z.ZodType,
  TConfig extends z.ZodType = z.ZodType,
  TAction extends z.ZodType = z.ZodType<JsonValue>,
  TMessage extends z.ZodType = z.ZodType<JsonValue>,
> {
  /** Platform name sessions refer to: `[a-z0-9][a-z0-9_-]*`. */
  name: string;
  description?: string;
  /** Schema of the credentials (encrypted at rest, never echoed). */
  credentials: TCredentials;
  /** Schema of the per-session config; defaults are applied. */
  config: TConfig;
  /** Optional schema of `send` actions; without it any JSON value is accepted. */
  action?: TAction;
  /**
   * Optional schema of inbound messages (`ctx.emitMessage` refuses others; `session.message` is
   * typed by it, see `isMessageFrom`). Built-in adapters use `messageEnvelopeSchema` or an
   * extension of it; without it any JSON value is accepted.
   */
  message?: TMessage;
  connect(ctx: AdapterContext<z.output<TConfig>, z.output<TCredentials>, z.output<TMessage>>): PlatformConnection<z.output<TAction>>;
}

/** A registered adapter: the definition, frozen and checked. */
export type Adapter<
  TCredentials extends z.ZodType = z.ZodType,
  TConfig extends z.ZodType = z.ZodType,
  TAction extends z.ZodType = z.ZodType<JsonValue>,
  TMessage extends z.ZodType = z.ZodType<JsonValue>,
> = Readonly<AdapterDefinition<TCredentials, TConfig, TAction, TMessage>> & { readonly action: TAction; readonly message: TMessage };

const adapterDefinitionSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be 1-64 of a-z, 0-9, _ and -, starting with a letter or digit'),
  description: z.string().optional(),
  credentials: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'must be a zod schema'),
  config: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'must be a zod schema'),
  action: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'must be a zod schema').optional(),
  message: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'must be a zod schema').optional(),
  connect: z.custom<(...args: unknown[]) => unknown>((v) => typeof v === 'function', 'must be a function'),
});

const anyJson: z.ZodType<JsonValue> = z.json();

/**
 * Declares a platform adapter. Checks the definition and freezes it.
 *
 * @example
 * ```ts
 * const freelancer = defineAdapter({
 *   name: 'freelancer',
 *   credentials: z.object({ oauthToken: z.string().min(1) }),
 *   config: z.object({ bidLimit: z.number().int().positive().default(10) }),
 *   connect(ctx) {
 *     return {
 *       async start() { ctx.log.info('logged in'); },
 *       async stop() {},
 *       async health() { return { status: 'healthy' }; },
 *       async send(action) { ctx.stats.increment('bids'); return { ok: true }; },
 *     };
 *   },
 * });
 * ```
 */
export function defineAdapter<
  TCredentials extends z.ZodType,
  TConfig extends z.ZodType,
  TAction extends z.ZodType = z.ZodType<JsonValue>,
  TMessage extends z.ZodType = z.ZodType<JsonValue>,
>(definition: AdapterDefinition<TCredentials, TConfig, TAction, TMessage>): Adapter<TCredentials, TConfig, TAction, TMessage> {
  const checked = adapterDefinitionSchema.safeParse(definition);
  if (!checked.success) throw fromZodError('adapter definition', checked.error);
  return Object.freeze({ ...definition, action: (definition.action ?? anyJson) as TAction, message: (definition.message ?? anyJson) as TMessage });
}

/** The adapter's own `message` schema, or null when it declared none (messages go unchecked). */
export function messageSchemaOf(adapter: { readonly message?: z.ZodType }): z.ZodType | null {
  return adapter.message && adapter.message !== anyJson ? adapter.message : null;
}

/**
 * Validates a value against one of an adapter's schemas, as a ValidationError naming the field.
 * A key the schema's output lacks (a `z.object()` strips unknown keys) is refused too, with its
 * path: a misspelt or unsupported setting is an error, not silently lost. An adapter that wants
 * extra keys kept declares them with `z.looseObject()` (or `.catchall()`); a schema whose
 * transform renames keys should check its input with `z.strictObject()` first. `onlyKeys` limits
 * that check to these top-level keys (an update checks the keys it sends, not the stored ones).
 */
export function parseAdapterInput<T>(schema: z.ZodType<T>, input: unknown, what: string, prefix: string, onlyKeys?: readonly string[]): T {
  const result = schema.safeParse(input);
  if (result.success) {
    const issues: ValidationIssue[] = [];
    droppedKeys(input, result.data, [prefix], issues, 0, onlyKeys);
    if (issues.length === 0) return result.data;
    throw new ValidationError(what, issues);
  }
  const base = fromZodError(what, result.error);
  return ((): never => {
    throw new ValidationError(
      what,
      base.issues.map((i) => ({ ...i, path: [prefix, ...i.path] })),
    );
  })();
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Collects the keys of `input` that `output` (the schema's result) dropped, object by object. */
function droppedKeys(input: unknown, output: unknown, at: (string | number)[], issues: ValidationIssue[], depth: number, onlyKeys?: readonly string[]): void {
  if (depth > 64 || input === output) return;
  if (Array.isArray(input) && Array.isArray(output)) {
    for (let i = 0; i < Math.min(input.length, output.length); i++) {
      at.push(i);
      droppedKeys(input[i], output[i], at, issues, depth + 1);
      at.pop();
    }
    return;
  }
  if (!isRecord(input) || !isRecord(output)) return;
  const check = (key: string): void => {
    if (!Object.prototype.hasOwnProperty.call(input, key) || input[key] === undefined) return;
    if (Object.prototype.hasOwnProperty.call(output, key)) {
      at.push(key);
      droppedKeys(input[key], output[key], at, issues, depth + 1);
      at.pop();
    } else {
      const known = Object.keys(output);
      issues.push({ path: [...at, key], message: `is not a known field${known.length ? ` (known here: ${known.join(', ')})` : ''}; remove it or fix its name` });
    }
  };
  if (onlyKeys) for (const key of onlyKeys) check(key);
  else for (const key in input) check(key);
}

/** What `manager.adapterInfo()` returns for each registered adapter (for forms and API docs). */
export interface AdapterInfo {
  name: string;
  description: string | null;
  credentialsSchema: JsonObject;
  configSchema: JsonObject;
}

function toJsonSchema(schema: z.ZodType): JsonObject {
  try {
    return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonObject;
  } catch {
    return {};
  }
}

/** An adapter's name, description and its credential and config schemas as JSON Schema. */
export function describeAdapter(adapter: Adapter): AdapterInfo {
  return {
    name: adapter.name,
    description: adapter.description ?? null,
    credentialsSchema: toJsonSchema(adapter.credentials),
    configSchema: toJsonSchema(adapter.config),
  };
}
