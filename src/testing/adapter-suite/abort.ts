import { drain, settle, type SuiteHarness } from './harness.js';

/** The `abort` group of the adapter conformance suite. */
export function abortGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { waitMs, connect } = h;
  it('ends a start that waits (for login or anything) when ctx.signal aborts', async () => {
    const t = connect({ auth: null });
    const start = settle(t.connection.start(), waitMs, 'start() after ctx.signal aborted');
    await drain();
    t.controller.abort();
    const result = await start;
    expect(['fulfilled', 'rejected']).toContain(result.status);
    expect(t.ctx.signal.aborted).toBe(true);
    expect((await settle(t.connection.stop(), waitMs, 'stop()')).status).toBe('fulfilled');
  });
}
