import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AdapterError, RateLimitError, SessionManager, ValidationError, defineAdapter, networkConfigSchema, type AdapterContext, type JsonValue } from 'multisession';
import { connectForTest, createManualClock, type ManualClock } from 'multisession/testing';
import { startTarget, type Target } from './servers.js';

/**
 * What an adapter feeds back to the session's rate limit (`ctx.rateLimit.pause`), one token per
 * `send()` however many `ctx.fetch` calls it makes, and long polls that take none.
 */
let target: Target;
beforeAll(async () => {
  target = await startTarget();
});
afterAll(async () => {
  await target.close();
});

let managers: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(managers.map((m) => m.close()));
  managers = [];
});

/** send({ fetch: [paths] }) fetches each path in turn; send({ slowDown: ms }) is a platform's 429. */
function flowAdapter() {
  const contexts = new Map<string, AdapterContext<any, any>>();
  const adapter = defineAdapter({
    name: 'flow',
    credentials: z.undefined(),
    config: z.object({ ...networkConfigSchema.shape }),
    action: z.union([z.strictObject({ fetch: z.array(z.string()) }), z.strictObject({ slowDown: z.number() }), z.strictObject({ note: z.string() })]),
    connect(ctx) {
      contexts.set(ctx.id, ctx);
      return {
        async start() {},
        async stop() {},
        async health() {
          return { status: 'healthy' as const };
        },
        async send(action): Promise<JsonValue> {
          if ('slowDown' in action) throw ctx.rateLimit.pause(action.slowDown, 'HTTP 429 Too Many Requests');
          if ('fetch' in action) {
            for (const path of action.fetch) await (await ctx.fetch(`${target.url}${path}`)).arrayBuffer();
          }
          return { ok: true };
        },
      };
    },
  });
  return { adapter, ctx: (id: string) => contexts.get(id)! };
}

async function setup(config: Record<string, JsonValue> = {}) {
  const clock: ManualClock = createManualClock();
  const flow = flowAdapter();
  const m = new SessionManager({ adapters: [flow.adapter], clock, health: { intervalMs: 3_600_000, timeoutMs: 1_000, unhealthyThreshold: 3, jitter: 0 } });
  managers.push(m);
  await m.open();
  await m.create({ id: 'a', platform: 'flow', config });
  expect((await m.start('a')).state).toBe('ready');
  return { m, clock, ctx: () => flow.ctx('a') };
}

function watch<T>(p: Promise<T>) {
  const w = { done: false, error: undefined as unknown, promise: p };
  p.then(
    () => (w.done = true),
    (e: unknown) => {
      w.done = true;
      w.error = e;
    },
  );
  return w;
}

/** Resolves with `p`, or fails the test when real I/O has not settled it within 5 s. */
function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle`)), 5_000)));
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

const hitsOf = (path: string) => target.hits.filter((h) => h.path === path).length;

describe('one rate-limit token per send()', () => {
  it('8 sends at 4/s that each fetch take 1.75 s of the clock, not 3.75 s: the fetches inside ride on the send', async () => {
    const { m, clock } = await setup({ rateLimit: { perSecond: 4, burst: 1 } });
    const t0 = clock.now();
    await within(m.send('a', { fetch: ['/one-0', '/two-0'] }), 'the first send'); // t = 0: its token covers both fetches
    for (let i = 1; i < 8; i++) {
      const send = watch(m.send('a', { fetch: [`/one-${i}`, `/two-${i}`] }));
      await clock.advance(249);
      expect(send.done).toBe(false);
      expect(hitsOf(`/one-${i}`)).toBe(0);
      await clock.advance(1); // its token: the send goes, and its fetches with no further wait
      await within(send.promise, `send ${i}`);
      expect([hitsOf(`/one-${i}`), hitsOf(`/two-${i}`)]).toEqual([1, 1]);
    }
    expect(clock.now() - t0).toBe(1_750);
    expect((await m.stats('a')).messagesOut).toBe(8);
  });

  it('a fetch outside send still takes its token', async () => {
    const { m, clock, ctx } = await setup({ rateLimit: { perSecond: 1, burst: 1 } });
    await within(m.send('a', { note: 'takes the only token' }), 'send');
    const fetched = watch(ctx().fetch(`${target.url}/outside`));
    await clock.advance(999);
    expect(hitsOf('/outside')).toBe(0);
    await clock.advance(1);
    await within(fetched.promise, 'the fetch');
    expect(hitsOf('/outside')).toBe(1);
  });

  it('a long poll takes no token: it neither waits for one nor delays the sends', async () => {
    const { m, clock, ctx } = await setup({ rateLimit: { perSecond: 1, burst: 1 } });
    await within(m.send('a', { note: 'takes the only token' }), 'send');
    await within(ctx().fetch(`${target.url}/poll-1`, { longPoll: true }), 'a long poll with an empty bucket');
    await within(ctx().fetch(`${target.url}/poll-2`, { longPoll: true }), 'another');
    const send = watch(m.send('a', { note: 'next' }));
    await clock.advance(1_000); // the next token is due when it was before the polls
    await within(send.promise, 'the send after the polls');
  });
});

describe('ctx.rateLimit.pause: a platform says "slow down"', () => {
  it('send() rejects with the RateLimitError the adapter threw (not an AdapterError), and the pause holds all outbound traffic', async () => {
    const { m, clock, ctx } = await setup(); // no rateLimit in the config: a pause applies all the same
    const errors: unknown[] = [];
    m.on('session.error', (e) => errors.push(e.error));
    const error = await m.send('a', { slowDown: 3_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error).not.toBeInstanceOf(AdapterError);
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 3_000, context: { sessionId: 'a', reason: 'HTTP 429 Too Many Requests' } });
    expect(errors).toEqual([]); // a flow-control answer, logged, not a session error
    expect((await m.logs('a')).map((l) => l.msg).join('\n')).toContain('paused for 3000 ms');
    expect(ctx().rateLimit.pausedMs()).toBe(3_000);

    const send = watch(m.send('a', { fetch: ['/after-pause'] }));
    const fetched = watch(ctx().fetch(`${target.url}/fetch-after-pause`));
    const poll = watch(ctx().fetch(`${target.url}/poll-after-pause`, { longPoll: true }));
    await clock.advance(2_999);
    expect([send.done, fetched.done, poll.done]).toEqual([false, false, false]);
    expect(hitsOf('/after-pause') + hitsOf('/fetch-after-pause') + hitsOf('/poll-after-pause')).toBe(0);
    await clock.advance(1);
    await within(Promise.all([send.promise, fetched.promise, poll.promise]), 'the traffic after the pause');
    expect(ctx().rateLimit.pausedMs()).toBe(0);
  });

  it('a send whose pause outlasts rateLimit.maxWaitMs fails at once, naming the reason and when to retry', async () => {
    const { m } = await setup({ rateLimit: { perSecond: 10, maxWaitMs: 5_000 } });
    await m.send('a', { slowDown: 60_000 }).catch(() => undefined);
    const error = await m.send('a', { note: 'too soon' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 60_000, context: { maxWaitMs: 5_000, reason: 'HTTP 429 Too Many Requests' } });
    expect((error as Error).message).toContain('HTTP 429 Too Many Requests');
  });

  it('a pause outlives a restart (reconnecting never resets a flood wait), and a longer pause is kept', async () => {
    const { m, clock, ctx } = await setup();
    await m.send('a', { slowDown: 10_000 }).catch(() => undefined);
    expect(ctx().rateLimit.pause(1_000, 'a shorter one')).toMatchObject({ retryAfterMs: 10_000 });
    await m.restart('a');
    expect(ctx().rateLimit.pausedMs()).toBe(10_000);
    const send = watch(m.send('a', { note: 'after restart' }));
    await clock.advance(9_999);
    expect(send.done).toBe(false);
    await clock.advance(1);
    await within(send.promise, 'the send');
  });

  it('refuses a pause that is not a number of ms from 0 to a day', async () => {
    const { ctx } = await setup();
    for (const bad of [-1, Number.NaN, Infinity, 86_400_001, '5' as unknown as number]) {
      expect(() => ctx().rateLimit.pause(bad, 'x')).toThrow(ValidationError);
    }
  });

  it('works the same in connectForTest: the pause is recorded and holds the kit’s ctx.fetch on its clock', async () => {
    const clock = createManualClock();
    const t = connectForTest(flowAdapter().adapter, { clock });
    await t.connection.start();
    const error = await t.connection.send({ slowDown: 2_000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 2_000 });
    expect(t.pauses).toEqual([{ ms: 2_000, reason: 'HTTP 429 Too Many Requests' }]);
    const fetched = watch(t.ctx.fetch(`${target.url}/kit-after-pause`));
    await clock.advance(1_999);
    expect(fetched.done).toBe(false);
    await clock.advance(1);
    await within(fetched.promise, 'the kit fetch');
    await t.stop();
  });
});
