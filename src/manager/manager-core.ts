import type { Adapter } from '../adapters/contract.js';
import type { SessionUnits } from '../adapters/units.js';
import { sealPolicy } from '../adapters/session-kv.js';
import { SealedKvStore } from '../security/sealed-kv.js';
import { requireCapability } from '../storage/contract.js';
import { AdapterNotFoundError, type MultisessionError, ValidationError } from '../errors.js';
import type { CredentialVault } from '../security/credential-vault.js';
import type { Logger, Clock } from '../types.js';
import { HealthPacer } from './runtime/health-monitor.js';
import type { SessionRecord, StorageDriver } from '../storage/contract.js';
import type { Persister } from './persister.js';
import type { Scheduler } from './scheduler.js';
import type { ResolvedManagerOptions } from './schemas.js';
import type { EventHub, SessionManagerEventName, SessionManagerEventPayload, SessionManagerEvents } from './events.js';

/** What a session runtime needs from its manager (kept narrow so the runtime stays testable). */
export interface ManagerCore {
  readonly options: ResolvedManagerOptions;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly persister: Persister;
  /** Spreads the first health checks of sessions started together. */
  readonly healthPacer: HealthPacer;
  readonly storage: StorageDriver;
  /** The store fences runtime writes (cluster mode): a runtime without a lease writes nothing. */
  readonly fencing: boolean;
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
  kvStore(): SealedKvStore;
  /** The names of the registered adapters (for `AdapterNotFoundError`). */
  adapterNames(): string[];
  /** `ctx.units` of a connection of the session. */
  unitsView(id: string, signal: AbortSignal): SessionUnits;
}

/** The core of a manager from its parts. */
export function buildCore(p: {
  options: ResolvedManagerOptions;
  clock: Clock;
  storage: StorageDriver;
  persister: Persister;
  scheduler: Scheduler;
  logger: Logger;
  vault: CredentialVault;
  adapters: ReadonlyMap<string, Adapter>;
  emit: ManagerCore['emit'];
  emitAndWait: ManagerCore['emitAndWait'];
  stopForIdle: ManagerCore['stopForIdle'];
  unitsView: ManagerCore['unitsView'];
}): ManagerCore {
  let sealed: SealedKvStore | null = null;
  // The store's KV with values sealed (auth state always, context data unless turned off).
  const kvStore = () => (sealed ??= new SealedKvStore(requireCapability(p.storage, 'kv'), p.vault.values, p.vault, sealPolicy(p.options.encryptContextData)));
  return {
    options: p.options,
    clock: p.clock,
    scheduler: p.scheduler,
    persister: p.persister,
    healthPacer: new HealthPacer(),
    storage: p.storage,
    fencing: p.storage.cluster !== undefined,
    logger: p.logger,
    emit: p.emit,
    emitAndWait: p.emitAndWait,
    openCredentials: (record) => p.vault.open(record, p.adapters.get(record.platform)?.credentials ?? null),
    secretStringsOf: (record) => p.vault.secretStringsOf(record),
    stopForIdle: p.stopForIdle,
    kvStore,
    adapterNames: () => [...p.adapters.keys()],
    unitsView: p.unitsView,
  };
}

/** The adapters by name; two with one name are refused. */
export function adapterMap(adapters: readonly Adapter[]): ReadonlyMap<string, Adapter> {
  const map = new Map<string, Adapter>();
  for (const adapter of adapters) {
    if (map.has(adapter.name)) throw new ValidationError('SessionManager options', [{ path: ['adapters'], message: `two adapters are named "${adapter.name}"` }]);
    map.set(adapter.name, adapter);
  }
  return map;
}

/** The adapter of a platform; a `ValidationError` at `platform` naming the registered ones. */
export function adapterFor(adapters: ReadonlyMap<string, Adapter>, platform: string): Adapter {
  const adapter = adapters.get(platform);
  if (adapter) return adapter;
  const err = new AdapterNotFoundError(platform, [...adapters.keys()]);
  throw new ValidationError('session input', [{ path: ['platform'], message: err.message }]);
}

/** A failure no caller is waiting for: logged and emitted as `manager.error`. */
export function reportManagerError(logger: Logger, events: EventHub<SessionManagerEvents>, clock: Clock, error: unknown): void {
  const err = error instanceof Error ? error : new Error(String(error));
  try {
    logger.error({ err: { message: err.message, code: (err as MultisessionError).code } }, 'multisession: manager error');
  } catch {
    // a throwing logger changes nothing
  }
  events.emit('manager.error', { error: err, at: clock.now() });
}
