import type { HealthReport } from '../../adapters/contract.js';
import { findJsonProblem } from '../../json.js';
import type { JsonValue } from '../../types.js';
import { createAdapterTestStore } from '../adapter-context.js';
import { drain, settle, trackTimers, healthSchema, type SuiteHarness } from './harness.js';

/** The `lifecycle` group of the adapter conformance suite. */
export function lifecycleGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { adapter, waitMs, action, connect, started } = h;
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
}
