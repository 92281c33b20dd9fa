import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineAdapter, type JsonValue } from 'multisession';
import { adapterConformanceSuite, type AdapterSuiteOptions } from 'multisession/testing';
import { collect, run } from './helpers/suite-runner.js';

/**
 * The conformance groups that need a platform (`expiry`, `rate-limit`, `delivery`), on a tiny
 * in-memory platform: a well-behaved adapter passes them, and each group fails an adapter that
 * breaks its rule, or when its option is missing.
 */

/** A chat platform in memory: accounts by token, inbound messages with ids, a "slow down". */
function memoPlatform() {
  const accounts = new Map<string, { revoked: boolean; inbox: { id: number; text: string }[] }>();
  let nextId = 1;
  let slowDownNext = false;
  const account = (token: string) => {
    let a = accounts.get(token);
    if (!a) accounts.set(token, (a = { revoked: false, inbox: [] }));
    return a;
  };
  return {
    revoke: (token: string) => void (account(token).revoked = true),
    push: (token: string, text: string) => void account(token).inbox.push({ id: nextId++, text }),
    slowDown: () => void (slowDownNext = true),
    login: (token: string) => !account(token).revoked,
    updates: (token: string, after: number) => (account(token).revoked ? null : account(token).inbox.filter((m) => m.id > after)),
    send(token: string): 'ok' | 'refused' | 'slow down' {
      if (account(token).revoked) return 'refused';
      if (slowDownNext) {
        slowDownNext = false;
        return 'slow down';
      }
      return 'ok';
    },
  };
}

type Platform = ReturnType<typeof memoPlatform>;
type Flaw = 'commits before the message is handled' | 'wraps a 429 in a plain error' | 'forgets ctx.expired()';

function memoAdapter(platform: Platform, flaw?: Flaw) {
  return defineAdapter({
    name: 'memo',
    credentials: z.strictObject({ token: z.string().min(4) }),
    config: z.strictObject({}),
    action: z.strictObject({ text: z.string() }),
    connect(ctx) {
      const token = ctx.credentials.token;
      let timer: unknown = null;
      let cursor = 0;
      const poll = async (): Promise<void> => {
        timer = null;
        const updates = platform.updates(token, cursor);
        if (updates === null) return ctx.expired('the platform refused the token');
        for (const m of updates) {
          const message: JsonValue = { id: String(m.id), text: m.text };
          try {
            if (flaw === 'commits before the message is handled') void ctx.emitMessage(message);
            else await ctx.emitMessage(message);
            cursor = m.id;
            await ctx.kv.set('cursor', cursor); // only once the app has handled it
          } catch {
            return; // shut down: the next connection takes over from the stored cursor
          }
        }
        if (!ctx.signal.aborted) timer = ctx.clock.setTimeout(() => void poll(), 5);
      };
      return {
        async start() {
          if (!platform.login(token)) {
            if (flaw !== 'forgets ctx.expired()') ctx.expired('the platform refused the token');
            throw new Error('login refused');
          }
          cursor = (await ctx.kv.get<number>('cursor')) ?? 0;
          if (!ctx.signal.aborted) timer = ctx.clock.setTimeout(() => void poll(), 0);
        },
        async stop() {
          if (timer !== null) ctx.clock.clearTimeout(timer);
          timer = null;
        },
        async health() {
          return platform.login(token) ? { status: 'healthy' as const } : { status: 'expired' as const, detail: 'token refused' };
        },
        async send() {
          const answer = platform.send(token);
          if (answer === 'slow down') {
            if (flaw === 'wraps a 429 in a plain error') throw new Error('HTTP 429');
            throw ctx.rateLimit.pause(1_000, 'HTTP 429 Too Many Requests');
          }
          if (answer === 'refused') throw new Error('refused');
          return { ok: true };
        },
      };
    },
  });
}

function optionsFor(platform: Platform, flaw?: Flaw): AdapterSuiteOptions {
  let n = 0;
  return {
    adapter: memoAdapter(platform, flaw),
    credentials: { token: 'token-main' },
    failingStart: { credentials: { token: 'token-refused' } },
    revocable: { credentials: { token: `token-revocable-${flaw ?? 'good'}` }, revoke: () => platform.revoke(`token-revocable-${flaw ?? 'good'}`) },
    slowDown: () => platform.slowDown(),
    inbound: (text) => platform.push('token-main', `${text} (${++n})`),
    settleTimeoutMs: 2_000,
  };
}

const refused = memoPlatform();
refused.revoke('token-refused');
adapterConformanceSuite({ describe, it, expect, beforeEach, afterEach }, { ...optionsFor(refused), name: 'memo (an in-memory platform)' });

describe('the groups that need a platform can fail', () => {
  const groupsRun = async (options: AdapterSuiteOptions) => {
    const only = ['expiry', 'rate-limit', 'delivery'];
    const all = ['definition', 'schemas', 'isolation', 'lifecycle', 'failed-start', 'stop', 'abort', 'unhandled', 'secrets'] as const;
    return run(collect((runner) => adapterConformanceSuite(runner, { ...options, skip: all.filter((g) => !only.includes(g)) })));
  };

  it('the delivery group catches an adapter that commits its cursor before the message is handled', async () => {
    const platform = memoPlatform();
    const { failed } = await groupsRun(optionsFor(platform, 'commits before the message is handled'));
    expect(failed).toEqual(['delivery > delivers at least once: a message not handled when the connection went down comes again; a handled one does not']);
  });

  it("the rate-limit group catches an adapter that hides the platform's slow-down in a plain error", async () => {
    const { failed } = await groupsRun(optionsFor(memoPlatform(), 'wraps a 429 in a plain error'));
    expect(failed).toEqual(["rate-limit > a platform's slow-down reaches the rate limiter: send() rejects with RateLimitError and the session is paused"]);
  });

  it('the expiry group catches an adapter whose refused login never calls ctx.expired() (a restart loop)', async () => {
    const { failed, errors } = await groupsRun(optionsFor(memoPlatform(), 'forgets ctx.expired()'));
    expect(failed).toEqual(['expiry > refused credentials end in expired with no restart loop (health or ctx.expired reports it; start() rejects after ctx.expired())']);
    expect(String(errors.get(failed[0]!))).toContain('ctx.expired() was not called');
  });

  it('each of them fails, naming the option, when its option is missing', async () => {
    const { revocable: _r, slowDown: _s, inbound: _i, ...bare } = optionsFor(memoPlatform());
    const { failed, errors } = await groupsRun(bare);
    expect(failed).toHaveLength(3);
    expect(failed.map((name) => String(errors.get(name)))).toEqual([
      expect.stringContaining('options.revocable is missing'),
      expect.stringContaining('options.slowDown is missing'),
      expect.stringContaining('options.inbound is missing'),
    ]);
  });
});
