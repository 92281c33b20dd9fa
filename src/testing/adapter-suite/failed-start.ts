import { settle, type SuiteHarness } from './harness.js';

/** The `failed-start` group of the adapter conformance suite. */
export function failedStartGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { options, waitMs, connect } = h;
  it('stops safely after a start that was aborted before it began', async () => {
    const t = connect({ auth: null });
    t.controller.abort();
    const result = await settle(t.connection.start(), waitMs, 'start() with an aborted signal');
    expect(['fulfilled', 'rejected']).toContain(result.status);
    expect((await settle(t.stop(), waitMs, 'stop()')).status).toBe('fulfilled');
  });

  if (options.failingStart) {
    const failing = options.failingStart;
    it('rejects start() for the failing input, then stops safely', async () => {
      const t = connect({
        credentials: 'credentials' in failing ? failing.credentials : options.credentials,
        config: 'config' in failing ? failing.config : options.config,
      });
      const result = await settle(t.connection.start(), waitMs, 'start()');
      expect(result.status).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(Error);
      expect((await settle(t.stop(), waitMs, 'stop() after a failed start')).status).toBe('fulfilled');
    });
  }
}
