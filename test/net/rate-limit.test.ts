import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError, RateLimitError, SessionManager, type JsonValue } from 'multisession';
import { createManualClock, type ManualClock } from 'multisession/testing';
import { startTarget, type Target } from './servers.js';
import { webAdapter } from './web-adapter.js';

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

async function setup() {
  const clock: ManualClock = createManualClock();
  const web = webAdapter();
  const m = new SessionManager({
    adapters: [web.adapter],
    clock,
    health: { intervalMs: 3_600_000, timeoutMs: 1_000, unhealthyThreshold: 3, jitter: 0 },
  });
  managers.push(m);
  await m.open();
  let n = 0;
  const session = async (id: string, config: Record<string, JsonValue> = {}) => {
    await m.create({ id, platform: 'web', credentials: { token: `t-${id}-${n++}` }, config });
    expect((await m.start(id)).state).toBe('ready');
  };
  return { m, web, clock, session };
}

/** A promise with its outcome visible synchronously. */
function watch<T>(p: Promise<T>) {
  const w = { done: false, value: undefined as T | undefined, error: undefined as unknown, promise: p };
  p.then(
    (v) => {
      w.done = true;
      w.value = v;
    },
    (e: unknown) => {
      w.done = true;
      w.error = e;
    },
  );
  return w;
}

describe('per-session outbound rate limit', () => {
  it('sends beyond the burst wait exactly as the bucket says (perSecond 2, burst 3)', async () => {
    const { m, web, clock, session } = await setup();
    await session('a', { rateLimit: { perSecond: 2, burst: 3 } });
    const sends = Array.from({ length: 6 }, (_, i) => watch(m.send('a', { n: i })));
    await clock.advance(0);
    expect(web.sent('a')).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    expect(sends.map((s) => s.done)).toEqual([true, true, true, false, false, false]);
    await clock.advance(499);
    expect(web.sent('a')).toHaveLength(3);
    await clock.advance(1); // t = 500: the 4th token
    expect(web.sent('a')).toHaveLength(4);
    await clock.advance(499);
    expect(web.sent('a')).toHaveLength(4);
    await clock.advance(1); // t = 1000
    expect(web.sent('a')).toHaveLength(5);
    await clock.advance(500); // t = 1500
    expect(web.sent('a')).toEqual([0, 1, 2, 3, 4, 5].map((n) => ({ n })));
    await Promise.all(sends.map((s) => s.promise));
    expect(sends.every((s) => s.error === undefined)).toBe(true);
    // Quiet for a while: the bucket refills up to the burst, not beyond.
    await clock.advance(10_000);
    const again = Array.from({ length: 4 }, (_, i) => watch(m.send('a', { again: i })));
    await clock.advance(0);
    expect(again.map((s) => s.done)).toEqual([true, true, true, false]);
    await clock.advance(500);
    expect(again[3]!.done).toBe(true);
  });

  it("each session has its own bucket: one session's flood wait never holds up another", async () => {
    const { m, web, clock, session } = await setup();
    await session('a', { rateLimit: { perSecond: 1 } });
    await session('b', { rateLimit: { perSecond: 1 } });
    await session('free');
    await m.send('a', { n: 1 });
    const aWaits = watch(m.send('a', { n: 2 }));
    await clock.advance(0);
    expect(aWaits.done).toBe(false);
    await m.send('b', { n: 1 }); // b's first token is its own
    for (let i = 0; i < 20; i++) await m.send('free', { i }); // no rate limit: never waits
    const bWaits = watch(m.send('b', { n: 2 }));
    await clock.advance(999);
    expect([aWaits.done, bWaits.done]).toEqual([false, false]);
    await clock.advance(1);
    expect([aWaits.done, bWaits.done]).toEqual([true, true]);
    expect(web.sent('a')).toHaveLength(2);
    expect(web.sent('b')).toHaveLength(2);
    expect(web.sent('free')).toHaveLength(20);
  });

  it('throws RateLimitError with retryAfterMs when the wait would exceed rateLimit.maxWaitMs; nothing is sent', async () => {
    const { m, web, clock, session } = await setup();
    await session('a', { rateLimit: { perSecond: 1, burst: 1, maxWaitMs: 2_000 } });
    const first = watch(m.send('a', { n: 1 })); // now
    const second = watch(m.send('a', { n: 2 })); // waits 1000
    const third = watch(m.send('a', { n: 3 })); // waits 2000 (= the bound)
    const error = await m.send('a', { n: 4 }).catch((e: unknown) => e); // would wait 3000
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 3_000, context: { sessionId: 'a', retryAfterMs: 3_000, maxWaitMs: 2_000 } });
    expect((error as Error).message).toContain('rateLimit.maxWaitMs');
    await clock.advance(2_000);
    expect([first.done, second.done, third.done]).toEqual([true, true, true]);
    expect(web.sent('a')).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]); // the refused one never reached the adapter
    // The refused call took no token: one second later the next one goes at once.
    await clock.advance(1_000);
    const next = watch(m.send('a', { n: 5 }));
    await clock.advance(0);
    expect(next.done).toBe(true);
    expect((await m.stats('a')).messagesOut).toBe(4);
  });

  it('maxWaitMs 0 never waits: an empty bucket is a RateLimitError at once', async () => {
    const { m, session } = await setup();
    await session('a', { rateLimit: { perSecond: 4, burst: 2, maxWaitMs: 0 } });
    await m.send('a', 1);
    await m.send('a', 2);
    await expect(m.send('a', 3)).rejects.toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 250 });
  });

  it('a send waiting for its token is aborted when the session stops, and never reaches the adapter', async () => {
    const { m, web, clock, session } = await setup();
    await session('a', { rateLimit: { perSecond: 1 } });
    await m.send('a', { n: 1 });
    const waiting = watch(m.send('a', { n: 2 }));
    await clock.advance(0);
    await m.stop('a');
    await clock.advance(0);
    expect(waiting.done).toBe(true);
    expect(waiting.error).toBeInstanceOf(AbortedError);
    await clock.advance(5_000);
    expect(web.sent('a')).toEqual([{ n: 1 }]);
  });

  it('a config update with another rate applies to the next sends', async () => {
    const { m, web, clock, session } = await setup();
    await session('a', { rateLimit: { perSecond: 1 } });
    await m.update('a', { config: { rateLimit: { perSecond: 10, burst: 1 } } }); // restarts the running session
    expect((await m.waitFor('a', 'ready')).config).toMatchObject({ rateLimit: { perSecond: 10, burst: 1 } });
    const sends = Array.from({ length: 3 }, (_, i) => watch(m.send('a', i)));
    await clock.advance(0);
    expect(web.sent('a')).toHaveLength(1);
    await clock.advance(100);
    expect(web.sent('a')).toHaveLength(2);
    await clock.advance(100);
    expect(web.sent('a')).toHaveLength(3);
    await Promise.all(sends.map((s) => s.promise));
    await m.update('a', { config: { rateLimit: null } });
    await m.waitFor('a', 'ready');
    for (let i = 0; i < 10; i++) await m.send('a', i); // no limit any more
    expect(web.sent('a')).toHaveLength(13);
  });

  it('ctx.fetch takes tokens from the same bucket as send, and gives one back when aborted while waiting', async () => {
    const { m, web, clock, session } = await setup();
    await session('a', { rateLimit: { perSecond: 1, burst: 1 } });
    const ctx = web.ctx('a');
    await m.send('a', { n: 1 }); // t = 0, the only token
    const fetched = watch(ctx.fetch(`${target.url}/shared`, { headers: { 'x-session': 'a' } }));
    await clock.advance(999);
    expect(fetched.done).toBe(false);
    expect(target.hits.some((h) => h.path === '/shared')).toBe(false); // not even started
    await clock.advance(1); // t = 1000: its token
    const res = await fetched.promise;
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ path: '/shared', session: 'a' });

    // t = 1000, next token at 2000: a fetch waits for it, and is aborted by its caller.
    const controller = new AbortController();
    const aborted = watch(ctx.fetch(`${target.url}/never`, { signal: controller.signal }));
    await clock.advance(500);
    controller.abort(new Error('no longer needed'));
    await clock.advance(0);
    expect(aborted.error).toMatchObject({ message: 'no longer needed' });
    await clock.advance(500); // t = 2000: the token it gave back is free again
    const send = watch(m.send('a', { n: 2 }));
    await clock.advance(0);
    expect(send.done).toBe(true);
    expect(target.hits.some((h) => h.path === '/never')).toBe(false);
  });

  it("a fetch waiting for its token is aborted by the session's stop", async () => {
    const { m, web, clock, session } = await setup();
    await session('a', { rateLimit: { perSecond: 1, burst: 1 } });
    const ctx = web.ctx('a');
    await m.send('a', 0);
    const waiting = watch(ctx.fetch(`${target.url}/stopped`));
    await clock.advance(0);
    await m.stop('a');
    await clock.advance(0);
    expect(waiting.error).toBeInstanceOf(AbortedError);
    await clock.advance(2_000);
    expect(target.hits.some((h) => h.path === '/stopped')).toBe(false);
  });
});
