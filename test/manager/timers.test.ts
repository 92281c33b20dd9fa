import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager, defineAdapter, type HealthReport } from 'multisession';
import { createManualClock } from 'multisession/testing';
import { z } from 'zod';

/**
 * The manager's timers (one timing wheel of 10 ms slots, and a heap for what lies beyond it)
 * seen through the sessions they drive: health checks, idle expiry, back-offs and auth timeouts
 * fire when due — never early, at most one slot late — near and far, with time moved in small
 * steps or in one leap.
 */
let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

/** An adapter that records when each session's health is checked. */
function probed() {
  const checks = new Map<string, number[]>();
  let clockNow = () => 0;
  const adapter = defineAdapter({
    name: 'probed',
    credentials: z.undefined(),
    config: z.object({}),
    connect: (ctx) => ({
      async start() {},
      async stop() {},
      async health(): Promise<HealthReport> {
        checks.set(ctx.id, [...(checks.get(ctx.id) ?? []), clockNow()]);
        return { status: 'healthy' };
      },
      async send() {},
    }),
  });
  return { adapter, checks, bind: (now: () => number) => (clockNow = now) };
}

async function manager(options: ConstructorParameters<typeof SessionManager>[0]) {
  const clock = createManualClock(0);
  const p = probed();
  p.bind(() => clock.now());
  const m = new SessionManager({ adapters: [p.adapter], clock, ...options });
  open.push(m);
  await m.open();
  return { m, clock, checks: p.checks };
}

describe('timers, near and far', () => {
  it('checks health every interval, for an interval beyond the wheel (120 s) as for a short one', async () => {
    const { m, clock, checks } = await manager({ health: { intervalMs: 120_000, timeoutMs: 1_000, jitter: 0, unhealthyThreshold: 1 } });
    await m.create({ id: 'far', platform: 'probed' });
    await m.start('far');
    await clock.advance(1_000_000); // one leap over eight intervals
    expect(checks.get('far')).toEqual([120_000, 240_000, 360_000, 480_000, 600_000, 720_000, 840_000, 960_000]);
  });

  it('checks many sessions on their own schedules, each never early and at most one slot late', async () => {
    const { m, clock, checks } = await manager({ health: { intervalMs: 1_000, timeoutMs: 100, jitter: 0.9, unhealthyThreshold: 1 } });
    for (let i = 0; i < 200; i++) {
      await m.create({ id: `s${i}`, platform: 'probed' });
      await m.start(`s${i}`);
      await clock.advance(7); // started at different times
    }
    const startedAt = clock.now();
    for (let step = 0; step < 100; step++) await clock.advance(50);
    for (let i = 0; i < 200; i++) {
      const times = checks.get(`s${i}`)!;
      expect(times.length).toBeGreaterThanOrEqual(5);
      // Consecutive checks are at least the shortest jittered interval apart (100 ms), at most a full one plus a slot.
      for (let k = 1; k < times.length; k++) {
        const gap = times[k]! - times[k - 1]!;
        expect(gap).toBeGreaterThanOrEqual(100);
        expect(gap).toBeLessThanOrEqual(1_000 + 10);
      }
      expect(times.at(-1)!).toBeGreaterThan(startedAt);
    }
  });

  it('spreads the first checks of sessions started at once over the jitter window, in start order, then keeps each one\'s phase', async () => {
    const { m, clock, checks } = await manager({ health: { intervalMs: 1_000, timeoutMs: 100, jitter: 0.5, unhealthyThreshold: 1 } });
    await Promise.all(
      Array.from({ length: 3_000 }, async (_, i) => {
        await m.create({ id: `s${String(i).padStart(4, '0')}`, platform: 'probed' });
        await m.start(`s${String(i).padStart(4, '0')}`);
      }),
    );
    expect(clock.now()).toBe(0); // all started at the same instant
    for (let step = 0; step < 40; step++) await clock.advance(100);
    const first = [...checks.keys()].sort().map((id) => checks.get(id)![0]!);
    // Not before the window opens (500 ms), never after a full interval, in start order…
    expect(Math.min(...first)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...first)).toBeLessThanOrEqual(1_000 + 10);
    for (let i = 1; i < first.length; i++) expect(first[i]!).toBeGreaterThanOrEqual(first[i - 1]!);
    // …and spread: no 10 ms slot holds more than a few percent of them.
    const perSlot = new Map<number, number>();
    for (const t of first) perSlot.set(Math.floor(t / 10), (perSlot.get(Math.floor(t / 10)) ?? 0) + 1);
    expect(Math.max(...perSlot.values())).toBeLessThanOrEqual(110);
    // Later checks keep the phase: one interval apart (at most a slot late, never drifting).
    for (const id of ['s0000', 's1500', 's2999']) {
      const times = checks.get(id)!;
      expect(times.length).toBeGreaterThanOrEqual(3);
      for (let k = 1; k < times.length; k++) expect(Math.abs(times[k]! - (times[0]! + 1_000 * k))).toBeLessThanOrEqual(10);
    }
  });

  it('expires an idle session after an hour, within one slot, also when time leaps past it', async () => {
    const { m, clock } = await manager({ idleTimeoutMs: 3_600_000, health: { intervalMs: 600_000, timeoutMs: 1_000, jitter: 0, unhealthyThreshold: 1 } });
    await m.create({ id: 'a', platform: 'probed' });
    await m.create({ id: 'b', platform: 'probed' });
    await m.start('a');
    await m.start('b');
    const stoppedAt = new Map<string, number>();
    m.on('session.state', (e) => {
      if (e.to === 'stopped') stoppedAt.set(e.id, clock.now());
    });
    await clock.advance(3_599_990);
    expect((await m.get('a')).state).toBe('ready');
    await m.touch('b'); // b's hour starts again
    await clock.advance(20);
    expect(stoppedAt.get('a')).toBeGreaterThanOrEqual(3_600_000);
    expect(stoppedAt.get('a')).toBeLessThanOrEqual(3_600_010);
    await clock.advance(10 * 3_600_000); // far past b's expiry in one step
    expect(stoppedAt.get('b')).toBe(3_599_990 + 3_600_000);
  });

  it('cancels a timer for good: a session stopped before its next check is never checked again', async () => {
    const { m, clock, checks } = await manager({ health: { intervalMs: 1_000, timeoutMs: 100, jitter: 0, unhealthyThreshold: 1 } });
    await m.create({ id: 'a', platform: 'probed' });
    await m.start('a');
    await clock.advance(2_500);
    expect(checks.get('a')).toEqual([1_000, 2_000]);
    await m.stop('a');
    await m.start('a'); // a new attempt: its own schedule from now
    await m.stop('a');
    await clock.advance(100_000);
    expect(checks.get('a')).toEqual([1_000, 2_000]);
  });
});
