import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SessionManager, defineAdapter } from 'multisession';
import { createManualClock } from 'multisession/testing';

/** An adapter that counts health checks per session. */
function countingAdapter() {
  const checks = new Map<string, number>();
  const adapter = defineAdapter({
    name: 'counting',
    credentials: z.unknown(),
    config: z.object({}),
    connect(ctx) {
      return {
        async start() {},
        async stop() {},
        async health() {
          checks.set(ctx.id, (checks.get(ctx.id) ?? 0) + 1);
          return { status: 'healthy' as const };
        },
        async send() {
          return null;
        },
      };
    },
  });
  return { adapter, checks };
}

describe('many sessions on one scheduler', () => {
  it('every running session is checked at its jittered interval; stopped ones never again, idle ones stop on time', async () => {
    const N = 600;
    const clock = createManualClock(Date.UTC(2026, 0, 1), { yieldRounds: 1 });
    const { adapter, checks } = countingAdapter();
    const m = new SessionManager({
      adapters: [adapter],
      clock,
      health: { intervalMs: 1_000, timeoutMs: 500, unhealthyThreshold: 3, jitter: 0.5 },
      maxSessions: N,
    });
    await m.open();
    const errors: unknown[] = [];
    m.on('manager.error', (e) => errors.push(e.error));
    const ids = Array.from({ length: N }, (_, i) => `s${String(i).padStart(4, '0')}`);
    for (const [i, id] of ids.entries()) {
      await m.create({ id, platform: 'counting', idleTimeoutMs: i % 10 === 0 ? 7_000 : null });
    }
    await Promise.all(ids.map((id) => m.start(id)));
    expect((await m.list({ state: 'ready' })).items.length).toBe(N);

    // 10 s: every session checked every 500–1,000 ms → 10 to 20 checks; every tenth one idles out at 7 s.
    const idled = ids.filter((_, i) => i % 10 === 0);
    await clock.advance(6_990);
    for (const id of idled) expect((await m.get(id)).state, id).toBe('ready');
    await clock.advance(10);
    for (const id of idled) expect((await m.get(id)).state, id).toBe('stopped');
    await clock.advance(3_000);
    for (const id of ids) {
      const n = checks.get(id) ?? 0;
      if (idled.includes(id)) expect(n, id).toBeGreaterThanOrEqual(7);
      else {
        expect(n, id).toBeGreaterThanOrEqual(10);
        expect(n, id).toBeLessThanOrEqual(20);
      }
    }

    // Stop half of the rest (lots of cancelled timers), then 10 s more.
    const running = ids.filter((_, i) => i % 10 !== 0);
    const stopped = running.filter((_, i) => i % 2 === 0);
    await Promise.all(stopped.map((id) => m.stop(id)));
    const before = new Map(ids.map((id) => [id, checks.get(id) ?? 0]));
    for (let t = 0; t < 10; t++) await clock.advance(1_000);
    for (const id of [...stopped, ...idled]) expect(checks.get(id) ?? 0, id).toBe(before.get(id));
    for (const id of running.filter((x) => !stopped.includes(x))) {
      const n = (checks.get(id) ?? 0) - before.get(id)!;
      expect(n, id).toBeGreaterThanOrEqual(10);
      expect(n, id).toBeLessThanOrEqual(20);
      expect((await m.get(id)).state).toBe('ready');
    }
    expect(errors).toEqual([]);
    await m.close();
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('idle expiry of many sessions with different timeouts and activity', () => {
  it('each session stops exactly when it has been quiet for its own idle timeout', async () => {
    const N = 300;
    const clock = createManualClock(Date.UTC(2026, 0, 1), { yieldRounds: 1 });
    const { adapter } = countingAdapter();
    const m = new SessionManager({ adapters: [adapter], clock, health: { intervalMs: 700, timeoutMs: 300, jitter: 0.5 }, maxSessions: N });
    await m.open();
    let seed = 7;
    const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
    const plan = new Map<string, { timeout: number; touchAt: number | null }>();
    for (let i = 0; i < N; i++) {
      const id = `s${i}`;
      const timeout = 1_000 + 10 * Math.floor(rand() * 500); // 1–6 s, on the 10 ms grid
      const touchAt = rand() < 0.5 ? 10 * Math.floor(rand() * 100) : null; // a touch within the first second
      plan.set(id, { timeout, touchAt });
      await m.create({ id, platform: 'counting', idleTimeoutMs: timeout });
    }
    await Promise.all([...plan.keys()].map((id) => m.start(id)));
    const t0 = clock.now();
    const stopsAt = new Map<string, number>();
    m.on('session.state', (e) => {
      if (e.to === 'stopping') stopsAt.set(e.id, e.at - t0);
    });
    // Touch at the planned times, in order.
    const touches = [...plan.entries()].filter(([, p]) => p.touchAt !== null).sort((a, b) => a[1].touchAt! - b[1].touchAt!);
    for (const [id, p] of touches) {
      await clock.advance(p.touchAt! - (clock.now() - t0));
      await m.touch(id);
    }
    await clock.advance(8_000 - (clock.now() - t0));
    for (const [id, p] of plan) {
      const expected = (p.touchAt ?? 0) + p.timeout;
      const at = stopsAt.get(id);
      expect(at, id).toBeGreaterThanOrEqual(expected);
      expect(at! - expected, `${id} stopped late`).toBeLessThanOrEqual(10); // one scheduler grid step at most
      expect((await m.get(id)).state).toBe('stopped');
    }
    await m.close();
  });
});

