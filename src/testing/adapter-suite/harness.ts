import { z } from 'zod';
import type { Adapter } from '../../adapters/contract.js';
import { HEALTH_STATUSES } from '../../lifecycle.js';
import type { JsonValue } from '../../types.js';
import { connectForTest, createAdapterTestStore, type AdapterTestContext, type AdapterTestStore, type AuthAnswers } from '../adapter-context.js';
import type { TestRunner } from '../runner.js';
import type { AdapterSuiteOptions } from './options.js';

/** What every group of the adapter suite gets: the runner, the options and the shared helpers. */
export interface SuiteHarness {
  readonly runner: TestRunner;
  readonly options: AdapterSuiteOptions;
  readonly adapter: Adapter<z.ZodType, z.ZodType, any>;
  /** How long a call may take to settle before it counts as hung. */
  readonly waitMs: number;
  readonly action: JsonValue;
  readonly badCredentials: unknown[];
  readonly badConfig: unknown[];
  /** A connection under test (stopped after each test if the test left it running). */
  connect(extra?: {
    id?: string;
    store?: AdapterTestStore;
    auth?: AuthAnswers | null;
    credentials?: unknown;
    config?: unknown;
    onMessage?: (message: JsonValue) => void | Promise<void>;
  }): AdapterTestContext;
  /** Starts `t`, failing with what it asked for when start() rejects. */
  started(t: AdapterTestContext<unknown, unknown>): Promise<void>;
}

/** Resolves after a few turns of the event loop, so stray promise rejections surface. */
export async function drain(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Resolves once `done()` holds, checking every few ms; fails after `ms` saying what it waited for. */
export async function waitUntil(done: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!done()) {
    if (Date.now() > until) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 5).unref());
  }
}

/** The error a group throws when the option it needs is missing. */
export function missing(option: string, group: string, what: string): Error {
  return new Error(`options.${option} is missing: ${what}. Pass it, or skip '${group}' and say why in your README.`);
}

/** Settles `work` or fails after `ms` (a guard against hangs, not a speed check). */
export function settle<T>(work: Promise<T>, ms: number, what: string): Promise<PromiseSettledResult<T>> {
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
export function trackTimers(): { done(): string[] } {
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

export const healthSchema = z.strictObject({ status: z.enum(HEALTH_STATUSES), detail: z.string().optional() });

/** Builds the harness and registers the clean-up after each test. */
export function makeHarness(runner: TestRunner, options: AdapterSuiteOptions): SuiteHarness {
  const { adapter } = options;
  const waitMs = options.settleTimeoutMs ?? 5_000;
  const open: AdapterTestContext[] = [];
  runner.afterEach(async () => {
    // Whatever a failed test left running is stopped here, so the next starts clean.
    for (const t of open.splice(0)) {
      if (!t.controller.signal.aborted) await settle(t.stop(), waitMs, 'stop() in cleanup');
    }
  });
  return {
    runner,
    options,
    adapter,
    waitMs,
    action: options.action ?? { text: 'conformance check' },
    badCredentials: options.badCredentials ?? [42, 'not credentials', [], null],
    badConfig: options.badConfig ?? [42, 'not a config', []],
    connect(extra = {}) {
      const t = connectForTest(adapter, {
        id: extra.id ?? 'conformance-1',
        credentials: 'credentials' in extra ? extra.credentials : options.credentials,
        config: 'config' in extra ? extra.config : options.config,
        auth: extra.auth === null ? {} : (extra.auth ?? options.auth ?? {}),
        store: extra.store ?? createAdapterTestStore(),
        ...(extra.onMessage ? { onMessage: extra.onMessage } : {}),
      });
      open.push(t as AdapterTestContext);
      return t as AdapterTestContext;
    },
    async started(t) {
      const result = await settle(t.connection.start(), waitMs, 'start()');
      if (result.status === 'rejected') {
        const asked = [...t.requests.map((r) => r.kind as string), ...(t.qrs.length ? ['qr'] : [])];
        const pending = asked.length ? ` (it asked for ${asked.join(', ')}: pass the answers in options.auth)` : '';
        throw new Error(`start() rejected${pending}: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`, { cause: result.reason });
      }
    },
  };
}
