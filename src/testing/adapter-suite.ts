import { z } from 'zod';
import type { Adapter, HealthReport } from '../adapters/contract.js';
import { HEALTH_STATUSES } from '../lifecycle.js';
import { secretStrings } from '../security/redact.js';
import { findJsonProblem } from '../storage/input-checks.js';
import type { JsonValue } from '../types.js';
import {
  connectForTest,
  createAdapterTestStore,
  type AdapterTestContext,
  type AdapterTestStore,
  type AuthAnswers,
} from './adapter-context.js';
import type { TestRunner } from './runner.js';

/**
 * Groups of {@link adapterConformanceSuite}; pass names in `skip` to switch groups off.
 *
 * @example
 * ```ts
 * adapterConformanceSuite(runner, { adapter, credentials, skip: ['isolation'] });
 * ```
 */
export const ADAPTER_SUITE_GROUPS = [
  'definition',
  'schemas',
  'isolation',
  'lifecycle',
  'failed-start',
  'stop',
  'abort',
  'unhandled',
  'secrets',
] as const;
export type AdapterSuiteGroup = (typeof ADAPTER_SUITE_GROUPS)[number];

/** Options of {@link adapterConformanceSuite}. */
export interface AdapterSuiteOptions {
  adapter: Adapter<z.ZodType, z.ZodType, any>;
  /** Valid credentials (raw, as a user would pass them to `manager.create`). */
  credentials: unknown;
  /** Valid config (raw; defaults are applied by the adapter's schema). Default `{}`, as the manager does. */
  config?: unknown;
  /** An action `send()` accepts. Default `{ text: 'conformance check' }`. */
  action?: JsonValue;
  /** Answers to the adapter's login steps (QR scan, code, password). */
  auth?: AuthAnswers;
  /** Credentials the schema must refuse. Default: a number, a string, an array and null. */
  badCredentials?: unknown[];
  /** Configs the schema must refuse. Default: a number, a string and an array. */
  badConfig?: unknown[];
  /** Credentials/config that pass the schemas but make start() reject (e.g. a revoked token). */
  failingStart?: { credentials?: unknown; config?: unknown };
  /** How long a call may take to settle before it counts as hung. Default 5,000 ms. */
  settleTimeoutMs?: number;
  /** Suite title suffix; default the adapter's name. */
  name?: string;
  skip?: readonly AdapterSuiteGroup[];
}

/** Resolves after a few turns of the event loop, so stray promise rejections surface. */
async function drain(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Settles `work` or fails after `ms` (a guard against hangs, not a speed check). */
function settle<T>(work: Promise<T>, ms: number, what: string): Promise<PromiseSettledResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms: it hangs`)), ms);
    timer.unref();
  });
  const outcome = work.then(
    (value): PromiseSettledResult<T> => ({ status: 'fulfilled', value }),
    (reason: unknown): PromiseSettledResult<T> => ({ status: 'rejected', reason }),
  );
  return Promise.race([outcome, guard]).finally(() => clearTimeout(timer));
}

/**
 * Records the timers created through the global `setTimeout`/`setInterval` until `done()`, which
 * restores the globals and returns those still pending and ref'd (they would keep the process
 * alive). Timers the test runner made itself are not seen: runners keep their own references.
 */
function trackTimers(): { done(): string[] } {
  const g = globalThis as unknown as Record<string, (...args: any[]) => any>;
  const original = { setTimeout: g.setTimeout!, setInterval: g.setInterval!, clearTimeout: g.clearTimeout!, clearInterval: g.clearInterval! };
  const live = new Map<NodeJS.Timeout, string>();
  const wrap = (kind: 'setTimeout' | 'setInterval') => {
    const patched = function (this: unknown, fn: unknown, ms?: number, ...args: unknown[]) {
      if (typeof fn !== 'function') return original[kind].call(this, fn, ms, ...args);
      const handle: NodeJS.Timeout = original[kind].call(
        this,
        function (this: unknown, ...a: unknown[]) {
          if (kind === 'setTimeout') live.delete(handle);
          return (fn as (...x: unknown[]) => unknown).apply(this, a);
        },
        ms,
        ...args,
      );
      live.set(handle, `${kind}(…, ${ms ?? 0})`);
      return handle;
    };
    Object.assign(patched, original[kind]);
    return patched;
  };
  const unwrapClear = (kind: 'clearTimeout' | 'clearInterval') =>
    function (this: unknown, handle: unknown) {
      live.delete(handle as NodeJS.Timeout);
      return original[kind].call(this, handle);
    };
  g.setTimeout = wrap('setTimeout');
  g.setInterval = wrap('setInterval');
  g.clearTimeout = unwrapClear('clearTimeout');
  g.clearInterval = unwrapClear('clearInterval');
  return {
    done() {
      Object.assign(g, original);
      return [...live].filter(([h]) => typeof h.hasRef !== 'function' || h.hasRef()).map(([, what]) => what);
    },
  };
}

const healthSchema = z.strictObject({ status: z.enum(HEALTH_STATUSES), detail: z.string().optional() });

/**
 * The adapter conformance suite, for third-party adapters made with `defineAdapter`. It runs the
 * adapter against a context the kit builds itself ({@link connectForTest}: in-memory KV, recorded
 * logs, stats, QR codes and auth requests, an `AbortController`) and checks: the definition is
 * valid and its schemas convert to JSON Schema; config defaults apply and parse stably; bad
 * credentials and config are refused; start → health → send → stop works and leaves no ref'd
 * timer; stop after a failed start, and stop twice, are safe; aborting `ctx.signal` ends a
 * waiting start; nothing rejects unhandled; `health()` returns a valid report; a session never
 * sees another's KV or login; credentials never reach the logs.
 *
 * @example
 * ```ts
 * import { describe, it, expect, beforeEach, afterEach } from 'vitest';
 * import { adapterConformanceSuite } from 'multisession/testing';
 * import { myAdapter } from '../src/my-adapter.js';
 *
 * adapterConformanceSuite({ describe, it, expect, beforeEach, afterEach }, {
 *   adapter: myAdapter,
 *   credentials: { apiKey: 'test-key-123' },
 *   config: { region: 'eu' },
 *   action: { type: 'message', text: 'hi' },
 *   auth: { code: '12345' },
 * });
 * ```
 */
export function adapterConformanceSuite(runner: TestRunner, options: AdapterSuiteOptions): void {
  const { describe, it, expect, afterEach } = runner;
  const { adapter } = options;
  const skip = new Set<string>(options.skip ?? []);
  const waitMs = options.settleTimeoutMs ?? 5_000;
  const action: JsonValue = options.action ?? { text: 'conformance check' };
  const badCredentials = options.badCredentials ?? [42, 'not credentials', [], null];
  const badConfig = options.badConfig ?? [42, 'not a config', []];
  const open: AdapterTestContext[] = [];

  const group = (name: AdapterSuiteGroup, body: () => void): void => {
    if (!skip.has(name)) describe(name, body);
  };
  const connect = (extra: { id?: string; store?: AdapterTestStore; auth?: AuthAnswers | null; credentials?: unknown; config?: unknown } = {}) => {
    const t = connectForTest(adapter, {
      id: extra.id ?? 'conformance-1',
      credentials: 'credentials' in extra ? extra.credentials : options.credentials,
      config: 'config' in extra ? extra.config : options.config,
      auth: extra.auth === null ? {} : (extra.auth ?? options.auth ?? {}),
      store: extra.store ?? createAdapterTestStore(),
    });
    open.push(t as AdapterTestContext);
    return t;
  };
  const started = async (t: AdapterTestContext<unknown, unknown>): Promise<void> => {
    const result = await settle(t.connection.start(), waitMs, 'start()');
    if (result.status === 'rejected') {
      const pending = t.requests.length || t.qrs.length ? ` (it asked for ${[...t.requests.map((r) => r.kind as string), ...(t.qrs.length ? ['qr'] : [])].join(', ')}: pass the answers in options.auth)` : '';
      throw new Error(`start() rejected${pending}: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`, {
        cause: result.reason,
      });
    }
  };

  describe(`adapter conformance: ${options.name ?? adapter.name}`, () => {
    afterEach(async () => {
      // Whatever a failed test left running is stopped here, so the next starts clean.
      for (const t of open.splice(0)) {
        if (!t.controller.signal.aborted) await settle(t.stop(), waitMs, 'stop() in cleanup');
      }
    });

    group('definition', () => {
      it('is a valid, frozen adapter definition', async () => {
        expect(typeof adapter.name).toBe('string');
        expect(/^[a-z0-9][a-z0-9_-]{0,63}$/.test(adapter.name)).toBe(true);
        expect(adapter.credentials instanceof z.ZodType).toBe(true);
        expect(adapter.config instanceof z.ZodType).toBe(true);
        expect(adapter.action instanceof z.ZodType).toBe(true);
        expect(typeof adapter.connect).toBe('function');
        expect(Object.isFrozen(adapter)).toBe(true);
      });

      it('has schemas that convert to JSON Schema (for adapterInfo and forms)', async () => {
        for (const schema of [adapter.credentials, adapter.config]) {
          const json = z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown>;
          expect(typeof json).toBe('object');
          expect(findJsonProblem(json)).toBeNull();
        }
      });

      it('returns a connection with start, stop, health and send', async () => {
        const t = connect();
        for (const method of ['start', 'stop', 'health', 'send'] as const) expect(typeof t.connection[method]).toBe('function');
        if (t.connection.submitAuth !== undefined) expect(typeof t.connection.submitAuth).toBe('function');
        await t.stop();
      });
    });

    group('schemas', () => {
      it('accepts the given credentials and config', async () => {
        expect(adapter.credentials.safeParse(options.credentials).success).toBe(true);
        expect(adapter.config.safeParse(options.config ?? {}).success).toBe(true);
      });

      it('applies config defaults into a JSON object that parses again to itself', async () => {
        const parsed = adapter.config.parse(options.config ?? {}) as unknown;
        expect(parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)).toBe(true);
        expect(findJsonProblem(parsed)).toBeNull();
        if (options.config && typeof options.config === 'object') {
          expect(parsed).toMatchObject(options.config as object);
        }
        // stored configs are parsed again on restore: defaults must be stable
        expect(adapter.config.parse(parsed)).toEqual(parsed);
      });

      it('refuses bad credentials', async () => {
        for (const bad of badCredentials) expect(adapter.credentials.safeParse(bad).success).toBe(false);
        let error: unknown;
        try {
          connect({ credentials: badCredentials[0] });
        } catch (e) {
          error = e;
        }
        if (badCredentials.length) expect(error).toMatchObject({ code: 'VALIDATION' });
      });

      it('refuses bad config', async () => {
        for (const bad of badConfig) expect(adapter.config.safeParse(bad).success).toBe(false);
      });

      it('parses actions it accepts', async () => {
        const result = adapter.action.safeParse(action);
        expect(result.success ? 'ok' : `options.action is refused by the adapter's action schema`).toBe('ok');
      });
    });

    group('isolation', () => {
      // Registered before the lifecycle tests on purpose: the first connection this adapter ever
      // makes happens here, so login state kept in module globals shows up as a difference.
      it("never reads or writes another session's KV, nor shares its login", async () => {
        // What a session shows of itself: the login steps it asked for and the KV keys it wrote
        // (digits masked, so keys holding times or counters compare equal).
        const observed = (t: AdapterTestContext) => ({
          asked: t.requests.map((r) => r.kind),
          qr: t.qrs.length > 0,
          kv: [...t.kv.keys()].map((k) => k.replace(/\d+/g, '#')).sort(),
          authState: [...t.authState.keys()].map((k) => k.replace(/\d+/g, '#')).sort(),
        });
        // B alone in a fresh store: the reference behaviour.
        const alone = connect({ id: 'conformance-b' });
        await started(alone);
        await alone.stop();
        const reference = observed(alone as AdapterTestContext);
        // A runs first in a shared store and leaves state behind; then B runs next to it.
        const store = createAdapterTestStore();
        const a = connect({ id: 'conformance-a', store });
        await started(a);
        await a.stop();
        // a new session next to nothing of its own logs in like the first one did
        expect(observed(a as AdapterTestContext)).toEqual(reference);
        const aKv = JSON.stringify([...a.kv.entries()]);
        const aAuth = JSON.stringify([...a.authState.entries()]);
        const b = connect({ id: 'conformance-b', store });
        await started(b);
        await b.connection.health();
        await Promise.resolve(b.connection.send(adapter.action.parse(action) as JsonValue)).catch(() => {});
        await b.stop();
        expect(observed(b as AdapterTestContext)).toEqual(reference);
        expect(JSON.stringify([...a.kv.entries()])).toBe(aKv);
        expect(JSON.stringify([...a.authState.entries()])).toBe(aAuth);
        expect([...store.sessions.keys()].sort()).toEqual(['conformance-a', 'conformance-b']);
      });
    });

    group('lifecycle', () => {
      it('starts, reports health, sends and stops, leaving no ref\'d timer', async () => {
        const timers = trackTimers();
        let leaked: string[] = [];
        try {
          await lifecycle();
        } finally {
          leaked = timers.done();
        }
        expect(leaked).toEqual([]);
      });

      const lifecycle = async (): Promise<void> => {
        const t = connect();
        await started(t);
        const health = (await settle(t.connection.health(), waitMs, 'health()')) as PromiseSettledResult<HealthReport>;
        expect(health.status).toBe('fulfilled');
        const report = (health as PromiseFulfilledResult<HealthReport>).value;
        const check = healthSchema.safeParse(report);
        expect(check.success ? 'valid' : JSON.stringify(report)).toBe('valid');
        const sent = await settle(Promise.resolve(t.connection.send(adapter.action.parse(action) as JsonValue)), waitMs, 'send()');
        expect(sent.status === 'rejected' ? String((sent as PromiseRejectedResult).reason) : 'sent').toBe('sent');
        const value = (sent as PromiseFulfilledResult<unknown>).value;
        if (value !== undefined) expect(findJsonProblem(value)).toBeNull();
        const stopped = await settle(t.stop(), waitMs, 'stop()');
        expect(stopped.status).toBe('fulfilled');
        await drain();
      };

      it('reports valid health on repeated checks', async () => {
        const t = connect();
        await started(t);
        for (let i = 0; i < 5; i++) {
          const report = await t.connection.health();
          expect(healthSchema.safeParse(report).success).toBe(true);
        }
        await t.stop();
      });

      it('starts again on a new connection after a stop', async () => {
        const store = createAdapterTestStore();
        const first = connect({ store });
        await started(first);
        await first.stop();
        const second = connect({ store });
        await started(second);
        expect(healthSchema.safeParse(await second.connection.health()).success).toBe(true);
        await second.stop();
      });
    });

    group('failed-start', () => {
      it('stops safely after a start that was aborted before it began', async () => {
        const t = connect({ auth: null });
        t.controller.abort();
        const result = await settle(t.connection.start(), waitMs, 'start() with an aborted signal');
        expect(['fulfilled', 'rejected']).toContain(result.status);
        expect((await settle(t.stop(), waitMs, 'stop()')).status).toBe('fulfilled');
      });

      if (options.failingStart) {
        const failing = options.failingStart;
        it('rejects start() for the failing input, then stops safely', async () => {
          const t = connect({
            credentials: 'credentials' in failing ? failing.credentials : options.credentials,
            config: 'config' in failing ? failing.config : options.config,
          });
          const result = await settle(t.connection.start(), waitMs, 'start()');
          expect(result.status).toBe('rejected');
          expect((result as PromiseRejectedResult).reason).toBeInstanceOf(Error);
          expect((await settle(t.stop(), waitMs, 'stop() after a failed start')).status).toBe('fulfilled');
        });
      }
    });

    group('stop', () => {
      it('stops twice without error', async () => {
        const t = connect();
        await started(t);
        expect((await settle(t.stop(), waitMs, 'first stop()')).status).toBe('fulfilled');
        expect((await settle(t.connection.stop(), waitMs, 'second stop()')).status).toBe('fulfilled');
      });

      it('stops a connection that never started', async () => {
        const t = connect();
        expect((await settle(t.stop(), waitMs, 'stop() before start()')).status).toBe('fulfilled');
      });
    });

    group('abort', () => {
      it('ends a start that waits (for login or anything) when ctx.signal aborts', async () => {
        const t = connect({ auth: null });
        const start = settle(t.connection.start(), waitMs, 'start() after ctx.signal aborted');
        await drain();
        t.controller.abort();
        const result = await start;
        expect(['fulfilled', 'rejected']).toContain(result.status);
        expect(t.ctx.signal.aborted).toBe(true);
        expect((await settle(t.connection.stop(), waitMs, 'stop()')).status).toBe('fulfilled');
      });
    });

    group('unhandled', () => {
      it('leaves no unhandled rejection across start, health, send, failure and stop', async () => {
        const seen: unknown[] = [];
        const onUnhandled = (reason: unknown): void => {
          seen.push(reason);
        };
        process.on('unhandledRejection', onUnhandled);
        try {
          const t = connect();
          await started(t);
          await t.connection.health();
          await Promise.resolve(t.connection.send(adapter.action.parse(action) as JsonValue)).catch(() => {});
          await t.stop();
          await t.connection.health().catch(() => {});
          const aborted = connect({ auth: null, id: 'conformance-2' });
          const start = aborted.connection.start().catch(() => {});
          await drain();
          await aborted.stop();
          await settle(start, waitMs, 'start() after stop');
          await drain();
        } finally {
          process.off('unhandledRejection', onUnhandled);
        }
        expect(seen.map((r) => (r instanceof Error ? r.message : String(r)))).toEqual([]);
      });
    });

    group('secrets', () => {
      it('never writes the credentials into logs, messages, health or results', async () => {
        const secrets = secretStrings(adapter.credentials.parse(options.credentials)).filter((s) => s.length >= 4);
        const t = connect();
        await started(t);
        const health = await t.connection.health();
        const sent = await Promise.resolve(t.connection.send(adapter.action.parse(action) as JsonValue)).catch((e: unknown) => String(e));
        await t.stop();
        await drain();
        const seen = JSON.stringify({ logs: t.logs, messages: t.messages, health, sent, stats: t.stats, expired: t.expired, qrs: t.qrs, requests: t.requests });
        for (const secret of secrets) expect(seen.includes(secret) ? `credential "${secret.slice(0, 2)}…" leaked` : 'clean').toBe('clean');
      });
    });
  });
}
