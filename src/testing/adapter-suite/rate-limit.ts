import type { JsonValue } from '../../types.js';
import { missing, settle, type SuiteHarness } from './harness.js';

/** The `rate-limit` group of the adapter conformance suite: a platform's "slow down" reaches the session's rate limiter. */
export function rateLimitGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { adapter, options, waitMs, action, connect, started } = h;
  it("a platform's slow-down reaches the rate limiter: send() rejects with RateLimitError and the session is paused", async () => {
    const slowDown = options.slowDown;
    if (!slowDown) throw missing('slowDown', 'rate-limit', "a function that makes the platform answer the next send with its 'slow down' (HTTP 429 …)");
    const t = connect({ id: 'conformance-rate-limit' });
    await started(t);
    await slowDown();
    const sent = await settle(
      Promise.resolve().then(() => t.connection.send(adapter.action.parse(action) as JsonValue)),
      waitMs,
      'send() after slowDown()',
    );
    const error = (sent.status === 'rejected' ? sent.reason : null) as { code?: unknown; retryAfterMs?: unknown } | null;
    const retryAfterMs = error?.retryAfterMs;
    expect({
      code: error?.code ?? 'send() resolved',
      retryAfterMs: typeof retryAfterMs === 'number' && retryAfterMs > 0 ? 'a positive number' : String(retryAfterMs),
    }).toEqual({ code: 'RATE_LIMITED', retryAfterMs: 'a positive number' });
    expect(t.pauses.length > 0 ? 'paused' : 'ctx.rateLimit.pause() was not called').toBe('paused');
    await settle(t.stop(), waitMs, 'stop()');
  });
}
