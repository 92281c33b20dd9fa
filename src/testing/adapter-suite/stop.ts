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

  it('finds ctx.signal already aborted when stop() is called (the manager aborts it first), and settles', async () => {
    const t = connect();
    await started(t);
    const connection = t.connection as { stop(): Promise<void> };
    const stop = connection.stop;
    let abortedAtStop: boolean | null = null;
    try {
      // Watch the call (a frozen connection cannot be watched: its stop is then only checked to settle).
      connection.stop = function (this: unknown) {
        abortedAtStop = t.ctx.signal.aborted;
        return stop.call(this);
      };
    } catch {
      abortedAtStop = true;
    }
    expect((await settle(t.stop(), waitMs, 'stop()')).status).toBe('fulfilled');
    expect(abortedAtStop).toBe(true);
  });
}
