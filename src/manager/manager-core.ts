import type { Logger, Clock } from '../types.js';
import type { KvStore, SessionRecord, StorageDriver } from '../storage/contract.js';
import type { Persister } from './persister.js';
import type { HealthPacer } from './runtime/health-monitor.js';
import type { Scheduler } from './scheduler.js';
import type { ResolvedManagerOptions } from './schemas.js';
import type { SessionManagerEventName, SessionManagerEventPayload } from './events.js';

/** What a session runtime needs from its manager (kept narrow so the runtime stays testable). */
export interface ManagerCore {
  readonly options: ResolvedManagerOptions;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly persister: Persister;
  /** Spreads the first health checks of sessions started together. */
  readonly healthPacer: HealthPacer;
  readonly storage: StorageDriver;
  readonly logger: Logger;
  emit<E extends SessionManagerEventName>(event: E, payload: SessionManagerEventPayload<E>): void;
  /** Emits and resolves once the promises the listeners returned have settled (never rejects). */
  emitAndWait<E extends SessionManagerEventName>(event: E, payload: SessionManagerEventPayload<E>): Promise<void>;
  /** Decrypts and validates the session's credentials for its adapter. */
  openCredentials(record: SessionRecord): unknown;
  /** The string values of the session's credentials, to scrub from messages. */
  secretStringsOf(record: SessionRecord): string[];
  /** Idle expiry: stop the session (desired state stopped) with reason `idle`. */
  stopForIdle(id: string): void;
  /** The store's `kv` capability (`UnsupportedError` when it has none). */
  kvStore(): KvStore;
  /** The names of the registered adapters (for `AdapterNotFoundError`). */
  adapterNames(): string[];
}
