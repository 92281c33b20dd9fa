import type { HealthReport } from '../../adapters/contract.js';
import { SessionManager } from '../../manager/session-manager.js';
import { createManualClock } from '../manual-clock.js';
import { drain, missing, settle, type SuiteHarness } from './harness.js';

/**
 * The `expiry` group of the adapter conformance suite: credentials the platform refuses end in
 * `expired`, reported the way the manager understands, with no restart loop.
 */
export function expiryGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { adapter, options, waitMs, connect, started } = h;
  it('refused credentials end in expired with no restart loop (health or ctx.expired reports it; start() rejects after ctx.expired())', async () => {
    const revocable = options.revocable;
    if (!revocable) throw missing('revocable', 'expiry', 'credentials the platform accepts and a revoke() that makes it refuse them');

    // A live connection whose credentials the platform revokes reports it.
    const live = connect({ id: 'conformance-expiry-live', credentials: revocable.credentials });
    await started(live);
    await revocable.revoke();
    const health = (await settle(live.connection.health(), waitMs, 'health() after revoke()')) as PromiseSettledResult<HealthReport>;
    const status = health.status === 'fulfilled' ? health.value.status : 'a rejection';
    const reported = status === 'expired' || status === 'unauthorized' || live.expired.length > 0;
    expect(reported ? 'reported' : `health() answered ${status} and ctx.expired() was not called`).toBe('reported');
    await settle(live.stop(), waitMs, 'stop()');

    // A new connection with the refused credentials: ctx.expired(), then start() rejects.
    const refused = connect({ id: 'conformance-expiry-start', credentials: revocable.credentials });
    const start = await settle(refused.connection.start(), waitMs, 'start() with refused credentials');
    expect(refused.expired.length > 0 ? 'ctx.expired() called' : 'ctx.expired() was not called').toBe('ctx.expired() called');
    expect(start.status === 'rejected' ? 'rejected' : 'start() resolved after ctx.expired()').toBe('rejected');
    await settle(refused.stop(), waitMs, 'stop() after a refused start');

    // Under a manager: expired, started once, and never again however long it waits.
    const clock = createManualClock();
    const manager = new SessionManager({
      adapters: [adapter],
      clock,
      restart: { retries: 5, minDelayMs: 1_000, maxDelayMs: 1_000, factor: 1 },
      health: { intervalMs: 1_000, timeoutMs: waitMs, jitter: 0 },
    });
    try {
      await manager.open();
      const id = 'conformance-expiry-manager';
      await manager.create({ id, platform: adapter.name, credentials: revocable.credentials as never, config: (options.config ?? {}) as never });
      const first = await settle(manager.start(id), waitMs, 'manager.start() with refused credentials');
      expect(first.status).toBe('fulfilled');
      for (let i = 0; i < 10; i++) {
        await clock.advance(1_000); // past every back-off step
        await drain();
      }
      const snapshot = await manager.get(id);
      expect({ state: snapshot.state, starts: (await manager.stats(id)).starts }).toEqual({ state: 'expired', starts: 1 });
    } finally {
      await manager.close();
    }
  });
}
