import type { JsonValue } from '../../types.js';
import { drain, settle, type SuiteHarness } from './harness.js';

/** The `unhandled` group of the adapter conformance suite. */
export function unhandledGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { adapter, waitMs, action, connect, started } = h;
  it('leaves no unhandled rejection across start, health, send, failure and stop', async () => {
    const seen: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      seen.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      const t = connect();
      await started(t);
      await t.connection.health();
      await Promise.resolve(t.connection.send(adapter.action.parse(action) as JsonValue)).catch(() => {});
      await t.stop();
      await t.connection.health().catch(() => {});
      const aborted = connect({ auth: null, id: 'conformance-2' });
      const start = aborted.connection.start().catch(() => {});
      await drain();
      await aborted.stop();
      await settle(start, waitMs, 'start() after stop');
      await drain();
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(seen.map((r) => (r instanceof Error ? r.message : String(r)))).toEqual([]);
  });
}
