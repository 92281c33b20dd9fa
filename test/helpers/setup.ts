import { SessionManager, memoryStorage, type Adapter, type SessionManagerOptions, type StorageDriver } from 'multisession';
import { createManualClock } from 'multisession/testing';
import { scriptedAdapter } from './scripted-adapter.js';

/**
 * A manager on a manual clock with the scripted adapter; tight timings for tests.
 * `extraAdapters` are registered beside the scripted one.
 */
export async function setup(overrides: Partial<SessionManagerOptions> = {}, extraAdapters: Adapter[] = []) {
  const clock = createManualClock();
  const scripted = scriptedAdapter();
  const storage = overrides.storage ?? memoryStorage();
  const manager = new SessionManager({
    storage,
    adapters: [scripted.adapter, ...extraAdapters],
    clock,
    health: { intervalMs: 1_000, timeoutMs: 500, unhealthyThreshold: 2, jitter: 0 },
    restart: { retries: 2, minDelayMs: 100, maxDelayMs: 1_000, factor: 2 },
    authTimeoutMs: 5_000,
    startTimeoutMs: 3_000,
    ...overrides,
  });
  stores.set(manager, storage);
  await manager.open();
  const edges = new Set<string>();
  const reasons: { id: string; from: string; to: string; reason: string }[] = [];
  manager.on('session.state', (e) => {
    edges.add(`${e.from}->${e.to}`);
    reasons.push({ id: e.id, from: e.from, to: e.to, reason: e.reason });
  });
  return { manager, clock, scripted, edges, reasons, storage };
}

const stores = new WeakMap<SessionManager, StorageDriver>();

/** The store a manager made by {@link setup} keeps its sessions in (to check what was written). */
export function storageOf(manager: SessionManager): StorageDriver {
  const storage = stores.get(manager);
  if (!storage) throw new Error('storageOf() knows only managers made by setup()');
  return storage;
}
