import type { TestRunner } from '../runner.js';
import { abortGroup } from './abort.js';
import { definitionGroup } from './definition.js';
import { deliveryGroup } from './delivery.js';
import { expiryGroup } from './expiry.js';
import { failedStartGroup } from './failed-start.js';
import { makeHarness, type SuiteHarness } from './harness.js';
import { isolationGroup } from './isolation.js';
import { lifecycleGroup } from './lifecycle.js';
import { ADAPTER_SUITE_GROUPS, type AdapterSuiteGroup, type AdapterSuiteOptions } from './options.js';
import { rateLimitGroup } from './rate-limit.js';
import { schemasGroup } from './schemas.js';
import { secretsGroup } from './secrets.js';
import { stopGroup } from './stop.js';
import { unhandledGroup } from './unhandled.js';

export { ADAPTER_SUITE_GROUPS, type AdapterSuiteGroup, type AdapterSuiteOptions };

/** Each group's tests, in the order they run. `isolation` comes before `lifecycle` on purpose (see its file). */
const GROUPS: Record<AdapterSuiteGroup, (h: SuiteHarness) => void> = {
  definition: definitionGroup,
  schemas: schemasGroup,
  isolation: isolationGroup,
  lifecycle: lifecycleGroup,
  'failed-start': failedStartGroup,
  stop: stopGroup,
  abort: abortGroup,
  unhandled: unhandledGroup,
  secrets: secretsGroup,
  expiry: expiryGroup,
  'rate-limit': rateLimitGroup,
  delivery: deliveryGroup,
};

/**
 * The adapter conformance suite, for third-party adapters made with `defineAdapter`. It runs the
 * adapter against the same `AdapterContext` the manager gives it, built by `connectForTest`
 * (in-memory KV, recorded logs, stats, QR codes and auth requests, an `AbortController`), and
 * checks: the definition is valid and its schemas convert to JSON Schema; config defaults apply
 * and parse stably; bad credentials and config are refused; start → health → send → stop works and
 * leaves no ref'd timer; stop after a failed start, and stop twice, are safe; aborting
 * `ctx.signal` ends a waiting start; nothing rejects unhandled; `health()` returns a valid report;
 * a session never sees another's KV or login; credentials never reach the logs; refused
 * credentials end in `expired` with no restart loop (`revocable`); a platform's "slow down"
 * reaches the rate limiter (`slowDown`); inbound messages are delivered at least once (`inbound`).
 * The last three need a hook into the platform; without it their test fails and says so.
 *
 * @example
 * ```ts
 * import { describe, it, expect, beforeEach, afterEach } from 'vitest';
 * import { adapterConformanceSuite } from 'multisession/testing';
 * import { myAdapter } from '../src/my-adapter.js';
 *
 * adapterConformanceSuite({ describe, it, expect, beforeEach, afterEach }, {
 *   adapter: myAdapter,
 *   credentials: { apiKey: 'test-key-123' },
 *   config: { region: 'eu' },
 *   action: { type: 'message', text: 'hi' },
 *   auth: { code: '12345' },
 * });
 * ```
 */
export function adapterConformanceSuite(runner: TestRunner, options: AdapterSuiteOptions): void {
  const skip = new Set<string>(options.skip ?? []);
  runner.describe(`adapter conformance: ${options.name ?? options.adapter.name}`, () => {
    const harness = makeHarness(runner, options);
    for (const name of ADAPTER_SUITE_GROUPS) {
      if (!skip.has(name)) runner.describe(name, () => GROUPS[name](harness));
    }
  });
}
