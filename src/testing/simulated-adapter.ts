import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { defineAdapter, type Adapter, type AdapterContext, type AuthInput, type HealthReport, type PlatformConnection } from '../adapters/contract.js';
import { AbortedError, AuthNotPendingError, ValidationError } from '../errors.js';
import { parseWith } from '../validation.js';
import type { Clock, JsonValue } from '../types.js';
import { healthStepSchema, optionsSchema, type ResolvedOptions, type SimulatedAdapterOptions, type SimulatedHealthStep } from './simulated-options.js';

export type { SimulatedAdapterOptions, SimulatedHealthStep };

/**
 * The simulated adapter's per-session config.
 *
 * @example
 * ```ts
 * simulatedConfigSchema.parse({}); // { greeting: 'hello', bidLimit: 10 }
 * ```
 */
export const simulatedConfigSchema = z.object({
  greeting: z.string().default('hello'),
  bidLimit: z.number().int().positive().default(10),
});
/**
 * The simulated adapter's credentials.
 *
 * @example
 * ```ts
 * await manager.create({ id: 'a', platform: 'simulated', credentials: { token: 'any-token' } });
 * ```
 */
export const simulatedCredentialsSchema = z.object({ token: z.string().min(1) });

export type SimulatedConfig = z.output<typeof simulatedConfigSchema>;
export type SimulatedCredentials = z.output<typeof simulatedCredentialsSchema>;

/** The adapter {@link simulatedAdapter} makes. */
export type SimulatedAdapter = Adapter<
  typeof simulatedCredentialsSchema | z.ZodOptional<typeof simulatedCredentialsSchema>,
  typeof simulatedConfigSchema
>;

const QR_PREFIX = 'multisession-demo';
/**
 * Key in `ctx.authState` under which a remembered login (`remember: true`) is kept.
 *
 * @example
 * ```ts
 * await manager.logout('wa-1'); // drops the auth state: the next start shows a QR code again
 * ```
 */
export const SIMULATED_AUTH_KEY = 'simulated-login';

/**
 * Reads a simulated QR payload (`multisession-demo:<session id>:<code>`): what a phone would do
 * when it scans the code. Returns null for anything else.
 *
 * @example
 * ```ts
 * const snap = await manager.start('wa-1');                   // state 'authenticating', auth.kind 'qr'
 * const scan = parseSimulatedQr(String(snap.auth?.data));
 * await manager.submitAuth('wa-1', { kind: 'code', value: scan!.code });
 * ```
 */
export function parseSimulatedQr(data: string): { sessionId: string; code: string } | null {
  const match = /^multisession-demo:([A-Za-z0-9_-]{1,64}):(\d{6})$/.exec(String(data));
  return match ? { sessionId: match[1]!, code: match[2]! } : null;
}

/** Resolves after `ms` on `clock` (the system clock's timers are unref'd); rejects when `signal` aborts. */
function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A promise that settles only when `signal` aborts (rejecting). */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (signal.aborted) return reject(abortReason(signal));
    signal.addEventListener('abort', () => reject(abortReason(signal)), { once: true });
  });
}

/** The manager aborts with a reason of its own; a bare `abort()` becomes an AbortedError. */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error && reason.name !== 'AbortError' ? reason : new AbortedError('The session was stopped.');
}

type SimulatedContext = AdapterContext<SimulatedConfig, SimulatedCredentials | undefined>;

/** The report of every check when there is no health script: one frozen object for all sessions. */
const HEALTHY: HealthReport = Object.freeze({ status: 'healthy' });

/**
 * One simulated connection. A class (methods on the prototype) rather than closures, so ten
 * thousand live connections cost a few hundred bytes each.
 */
class SimulatedConnection implements PlatformConnection<JsonValue> {
  #phase: 'idle' | 'starting' | 'ready' | 'stopped' = 'idle';
  #sends = 0;
  /** The pending QR scan, while one is shown. */
  #qr: { code: string; resolve(): void; timer: unknown } | null = null;
  /** One shared "never" for hung calls, so repeated hung health checks add no listeners. */
  #hung: Promise<never> | null = null;
  /** Timers of a live connection (disconnect, inbound), cleared on stop. */
  #timers: unknown[] | null = null;

  constructor(
    private readonly o: ResolvedOptions,
    private readonly ctx: SimulatedContext,
    private readonly counter: { starts: number; checks: number },
    private readonly startNo: number,
    private readonly healthAt: (n: number, sessionId: string, start: number) => HealthReport,
  ) {}

  #hang(): Promise<never> {
    if (!this.#hung) {
      this.#hung = untilAborted(this.ctx.signal);
      this.#hung.catch(() => {});
    }
    return this.#hung;
  }

  #showQr(): void {
    const qr = this.#qr;
    if (!qr) return;
    qr.code = sixDigits();
    this.ctx.auth.qr(`${QR_PREFIX}:${this.ctx.id}:${qr.code}`, { expiresAt: this.o.clock.now() + this.o.qrTtlMs });
    if (this.o.rotateQr) qr.timer = this.o.clock.setTimeout(() => this.#showQr(), this.o.qrTtlMs);
  }

  async #loginWithQr(): Promise<void> {
    const scanned = new Promise<void>((resolve) => {
      this.#qr = { code: '', resolve, timer: null };
    });
    this.#showQr();
    try {
      await Promise.race([scanned, untilAborted(this.ctx.signal)]);
    } finally {
      if (this.#qr?.timer) this.o.clock.clearTimeout(this.#qr.timer);
      this.#qr = null;
    }
  }

  async #loginWithAnswer(kind: 'code' | 'password'): Promise<void> {
    const { o, ctx } = this;
    const expected = kind === 'code' ? o.expectedCode : o.expectedPassword;
    for (let attempt = 1; ; attempt++) {
      const value = await Promise.race([
        ctx.auth.request(kind, { data: kind === 'code' ? { hint: `code sent to the account of ${ctx.id}` } : { hint: 'two-step password' } }),
        untilAborted(ctx.signal),
      ]);
      if (value === expected) return;
      ctx.log.warn(`wrong ${kind} (attempt ${attempt} of ${o.authAttempts})`);
      if (attempt >= o.authAttempts) throw new Error(`wrong ${kind} ${o.authAttempts} times; start again to retry`);
    }
  }

  async start(): Promise<void> {
    const { o, ctx } = this;
    this.#phase = 'starting';
    // ctx.signal is read only after a wait: a signal costs memory the moment it is first touched.
    if (o.startDelayMs > 0) await sleep(o.clock, o.startDelayMs, ctx.signal);
    if (o.hangOnStart) await this.#hang();
    if (o.startDelayMs > 0 && ctx.signal.aborted) throw abortReason(ctx.signal);
    if (this.startNo <= o.failStarts) {
      throw new Error(`simulated start failure (attempt ${this.startNo} of ${o.failStarts} set to fail)`);
    }
    if (ctx.credentials && o.rejectTokens.includes(ctx.credentials.token)) {
      ctx.expired('token rejected by the simulated platform');
      throw new Error('the simulated platform rejected the token (unauthorized)');
    }
    const remembered = o.remember && (await ctx.authState.get(SIMULATED_AUTH_KEY)) !== undefined;
    if (o.auth !== 'none' && !remembered) {
      if (o.auth === 'qr') await this.#loginWithQr();
      else await this.#loginWithAnswer(o.auth);
      if (o.remember) await ctx.authState.set(SIMULATED_AUTH_KEY, { method: o.auth });
      ctx.log.info(`logged in with ${o.auth}`);
    } else if (remembered) {
      ctx.log.info('logged in with the remembered auth state');
    }
    if ((o.auth !== 'none' || o.remember) && ctx.signal.aborted) throw abortReason(ctx.signal);
    this.#phase = 'ready';
    ctx.log.info(`connected; ${ctx.config.greeting}`);
    this.#armLiveTimers();
  }

  #armLiveTimers(): void {
    const { o, ctx } = this;
    if (o.disconnectAfterMs === undefined && o.inboundEveryMs === undefined) return;
    const timers: unknown[] = (this.#timers = []);
    if (o.disconnectAfterMs !== undefined) {
      timers[0] = o.clock.setTimeout(() => {
        if (this.#phase !== 'ready') return;
        this.#phase = 'stopped';
        this.#clearTimers();
        ctx.fail(new Error('connection lost (simulated disconnect)'));
      }, o.disconnectAfterMs);
    }
    if (o.inboundEveryMs !== undefined) {
      let n = 0;
      const every = o.inboundEveryMs;
      const tick = (): void => {
        if (this.#timers !== timers) return;
        if (this.#phase === 'ready') ctx.emitMessage({ from: 'peer', text: `simulated inbound #${++n}`, n });
        timers[1] = o.clock.setTimeout(tick, every);
      };
      timers[1] = o.clock.setTimeout(tick, every);
    }
  }

  #clearTimers(): void {
    for (const t of this.#timers ?? []) if (t !== undefined) this.o.clock.clearTimeout(t);
    this.#timers = null;
  }

  async stop(): Promise<void> {
    this.#phase = 'stopped';
    this.#clearTimers();
    if (this.#qr?.timer) this.o.clock.clearTimeout(this.#qr.timer);
    if (this.o.stopDelayMs > 0) await sleep(this.o.clock, this.o.stopDelayMs);
  }

  async health(): Promise<HealthReport> {
    if (this.o.hangOnHealth) return this.#hang();
    if (this.#phase !== 'ready') return { status: 'unknown', detail: `not connected (${this.#phase})` };
    // Without a health script every check is healthy: nothing to count, no per-check object.
    if (!this.o.health) return HEALTHY;
    return this.healthAt(this.counter.checks++, this.ctx.id, this.startNo);
  }

  async send(action: JsonValue): Promise<JsonValue> {
    const { o, ctx } = this;
    if (this.#phase !== 'ready') throw new Error(`not connected (${this.#phase}); start the session first`);
    if (o.throwOnSend !== false) throw new Error(typeof o.throwOnSend === 'string' ? o.throwOnSend : 'simulated send failure');
    this.#sends++;
    if (action && typeof action === 'object' && !Array.isArray(action) && typeof action.bid === 'number') {
      if (action.bid > ctx.config.bidLimit) {
        throw new ValidationError('bid', [{ path: ['bid'], message: `must be at most the session's bidLimit ${ctx.config.bidLimit}` }]);
      }
      ctx.stats.increment('bids');
    }
    // Echo after the send has returned, as a platform would deliver a reply.
    if (o.echo) {
      setImmediate(() => {
        if (this.#phase === 'ready') ctx.emitMessage(action);
      });
    }
    return { ok: true, n: this.#sends, greeting: ctx.config.greeting, echo: action };
  }

  async submitAuth(input: AuthInput): Promise<void> {
    const pending = this.#qr;
    // No QR shown: a code/password request may be pending; the manager answers it.
    if (!pending) return;
    if (input.kind === 'password') {
      throw new AuthNotPendingError(this.ctx.id, `Session "${this.ctx.id}" shows a QR code; submit its code with kind "code", not "${input.kind}".`, {
        context: { expected: 'code', shown: 'qr' },
      });
    }
    if (!this.o.acceptAnyCode && input.value !== pending.code) {
      throw new ValidationError('QR scan', [
        { path: ['value'], message: `does not match the code in the QR payload (${QR_PREFIX}:<session id>:<code>)` },
      ]);
    }
    pending.resolve();
  }

  async logout(): Promise<void> {
    this.ctx.log.info('logged out of the simulated platform');
  }
}

const sixDigits = (): string => String(randomInt(0, 1_000_000)).padStart(6, '0');

function toReport(step: SimulatedHealthStep): HealthReport {
  return typeof step === 'string' ? { status: step } : { ...step };
}

/**
 * A platform adapter that simulates a real one, for tests, demos and benchmarks: its login flow
 * (none, QR, code, password), delays, health script, failures and echo are options. It keeps
 * nothing shared between sessions except per-session-id counters (start attempts, health
 * checks) inside this adapter instance, so scripts run across restarts of one session.
 *
 * Actions: any JSON value. `{ bid: number }` counts a custom `bids` stat and rejects a bid over
 * the session's `config.bidLimit`; any other action is answered with
 * `{ ok: true, greeting, echo: action }`.
 *
 * @example
 * ```ts
 * import { SessionManager } from 'multisession';
 * import { simulatedAdapter, parseSimulatedQr } from 'multisession/testing';
 *
 * const manager = new SessionManager({ adapters: [simulatedAdapter({ auth: 'qr', remember: true })] });
 * await manager.open();
 * await manager.create({ id: 'wa-1', platform: 'simulated', credentials: { token: 't' } });
 * const snap = await manager.start('wa-1');                    // authenticating, auth.kind 'qr'
 * await manager.submitAuth('wa-1', { kind: 'code', value: parseSimulatedQr(String(snap.auth!.data))!.code });
 * await manager.waitFor('wa-1', 'ready');
 * ```
 */
export function simulatedAdapter(options: SimulatedAdapterOptions = {}): SimulatedAdapter {
  const o = parseWith(optionsSchema, options, 'simulatedAdapter options');
  const script = o.health;
  /** Per session id: start attempts and health checks so far (survive restarts). */
  const counters = new Map<string, { starts: number; checks: number }>();
  // Only scripts that depend on history (failStarts, a health script) need counts that outlive
  // a connection; without them each connection counts alone and nothing is kept per id.
  const keepCounts = o.failStarts > 0 || script !== undefined;
  const countersOf = (id: string): { starts: number; checks: number } => {
    if (!keepCounts) return { starts: 0, checks: 0 };
    let c = counters.get(id);
    if (!c) counters.set(id, (c = { starts: 0, checks: 0 }));
    return c;
  };
  const healthAt = (n: number, sessionId: string, start: number): HealthReport => {
    if (script === undefined) return { status: 'healthy' };
    if (typeof script === 'function') return toReport(parseWith(healthStepSchema, script(n, { sessionId, start }), 'health script step'));
    const i = o.healthMode === 'cycle' ? n % script.length : Math.min(n, script.length - 1);
    return toReport(script[i]!);
  };

  const credentials = o.requireCredentials ? simulatedCredentialsSchema : simulatedCredentialsSchema.optional();

  return defineAdapter({
    name: o.name ?? 'simulated',
    description:
      o.description ??
      `Simulated platform for tests and demos (login: ${o.auth}${o.remember ? ', remembered' : ''}); config: greeting, bidLimit.`,
    credentials,
    config: simulatedConfigSchema,
    connect(ctx: AdapterContext<SimulatedConfig, SimulatedCredentials | undefined>): PlatformConnection<JsonValue> {
      const counter = countersOf(ctx.id);
      return new SimulatedConnection(o, ctx, counter, ++counter.starts, healthAt);
    },
  }) as SimulatedAdapter;
}
