import { secretStrings } from '../../security/redact.js';
import type { JsonValue } from '../../types.js';
import { drain, type SuiteHarness } from './harness.js';

/** The `secrets` group of the adapter conformance suite. */
export function secretsGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { adapter, options, action, connect, started } = h;
  it('never writes the credentials into logs, messages, health or results', async () => {
    const secrets = secretStrings(adapter.credentials.parse(options.credentials)).filter((s) => s.length >= 4);
    const t = connect();
    await started(t);
    const health = await t.connection.health();
    const sent = await Promise.resolve(t.connection.send(adapter.action.parse(action) as JsonValue)).catch((e: unknown) => String(e));
    await t.stop();
    await drain();
    const seen = JSON.stringify({ logs: t.logs, messages: t.messages, health, sent, stats: t.stats, expired: t.expired, qrs: t.qrs, requests: t.requests });
    for (const secret of secrets) expect(seen.includes(secret) ? `credential "${secret.slice(0, 2)}…" leaked` : 'clean').toBe('clean');
  });
}
