/**
 * `multisession/testing`: tools to test code built on multisession and to check third-party
 * drivers and adapters against the same suites our own implementations pass.
 *
 * @example
 * ```ts
 * import { createManualClock } from 'multisession/testing';
 * const clock = createManualClock();
 * clock.setTimeout(() => console.log('fired at', clock.now()), 1_000);
 * await clock.advance(1_000);
 * ```
 */
export { createManualClock } from './manual-clock.js';
export type { ManualClock, ManualClockOptions } from './manual-clock.js';
export { storageConformanceSuite, sampleSessionRecord, STORAGE_SUITE_GROUPS } from './storage-suite/index.js';
export type { StorageSuiteGroup, StorageSuiteOptions } from './storage-suite/index.js';
export type { TestRunner, SuiteAssertion } from './runner.js';
export {
  simulatedAdapter,
  parseSimulatedQr,
  simulatedConfigSchema,
  simulatedCredentialsSchema,
  SIMULATED_AUTH_KEY,
} from './simulated-adapter.js';
export type {
  SimulatedAdapter,
  SimulatedAdapterOptions,
  SimulatedHealthStep,
  SimulatedConfig,
  SimulatedCredentials,
} from './simulated-adapter.js';
export { checkpointConformanceSuite, CHECKPOINT_SUITE_GROUPS } from './checkpoint-suite/index.js';
export type { CheckpointSuiteGroup, CheckpointSuiteOptions, CheckpointSuiteTarget } from './checkpoint-suite/index.js';
export { connectForTest, createAdapterTestStore } from './adapter-context.js';
export type { AdapterTestContext, AdapterTestStore, AuthAnswers, ConnectForTestOptions, RecordedLog } from './adapter-context.js';
export { adapterConformanceSuite, ADAPTER_SUITE_GROUPS } from './adapter-suite/index.js';
export type { AdapterSuiteGroup, AdapterSuiteOptions } from './adapter-suite/index.js';
