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
  /** How long a call may take to settle before it counts as hung. Default 5,000 ms. */
  settleTimeoutMs?: number;
  /** Suite title suffix; default the adapter's name. */
  name?: string;
  skip?: readonly AdapterSuiteGroup[];
}
