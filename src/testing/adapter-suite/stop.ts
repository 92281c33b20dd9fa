import { settle, type SuiteHarness } from './harness.js';

/** The `stop` group of the adapter conformance suite. */
export function stopGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { waitMs, connect, started } = h;
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
}
