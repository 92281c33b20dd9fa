import type { z } from 'zod';
import type { Adapter } from '../../adapters/contract.js';
import type { JsonValue } from '../../types.js';
import type { AuthAnswers } from '../adapter-context.js';

/**
 * Groups of {@link adapterConformanceSuite}; pass names in `skip` to switch groups off.
 *
 * @example
 * ```ts
 * adapterConformanceSuite(runner, { adapter, credentials, skip: ['isolation'] });
 * ```
 */
export const ADAPTER_SUITE_GROUPS = [
  'definition',
  'schemas',
  'isolation',
  'lifecycle',
  'failed-start',
  'stop',
  'abort',
  'unhandled',
  'secrets',
  'expiry',
  'rate-limit',
  'delivery',
] as const;
export type AdapterSuiteGroup = (typeof ADAPTER_SUITE_GROUPS)[number];

/** Options of {@link adapterConformanceSuite}. */
export interface AdapterSuiteOptions {
  adapter: Adapter<z.ZodType, z.ZodType, any>;
  /** Valid credentials (raw, as a user would pass them to `manager.create`). */
  credentials: unknown;
  /** Valid config (raw; defaults are applied by the adapter's schema). Default `{}`, as the manager does. */
  config?: unknown;
  /** An action `send()` accepts. Default `{ text: 'conformance check' }`. */
  action?: JsonValue;
  /** Answers to the adapter's login steps (QR scan, code, password). */
  auth?: AuthAnswers;
  /** Credentials the schema must refuse. Default: a number, a string, an array and null. */
  badCredentials?: unknown[];
  /** Configs the schema must refuse. Default: a number, a string and an array. */
  badConfig?: unknown[];
  /** Credentials/config that pass the schemas but make start() reject (e.g. a revoked token). */
  failingStart?: { credentials?: unknown; config?: unknown };
  /**
   * For the `expiry` group: credentials the platform accepts (used by no other test), and
   * `revoke()`, which makes the platform refuse them from then on (a revoked token). The group
   * checks that the refusal is reported (`health()` says `expired` or `unauthorized`, or
   * `ctx.expired()` is called), that `start()` rejects after calling `ctx.expired()`, and that a
   * `SessionManager` leaves such a session `expired` without a restart loop.
   */
  revocable?: { credentials: unknown; revoke(): void | Promise<void> };
  /**
   * For the `rate-limit` group: makes the platform answer the adapter's next `send()` request with
   * its "slow down" (HTTP 429 with a retry-after, a flood wait). The group checks that `send()`
   * rejects with `RateLimitError` (`retryAfterMs`) and that the adapter paused the session
   * (`ctx.rateLimit.pause`).
   */
  slowDown?: () => void | Promise<void>;
  /**
   * For the `delivery` group: makes the platform deliver one inbound message containing `text`
   * to the account of `credentials`. The group checks at-least-once delivery: a message whose
   * listener had not finished when the connection went down comes again on the next connection
   * of the session (its cursor was not committed), and a handled one does not.
   */
  inbound?: (text: string) => void | Promise<void>;
  /** How long a call may take to settle before it counts as hung. Default 5,000 ms. */
  settleTimeoutMs?: number;
  /** Suite title suffix; default the adapter's name. */
  name?: string;
  skip?: readonly AdapterSuiteGroup[];
}
