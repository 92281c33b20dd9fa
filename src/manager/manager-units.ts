import { createCheckpoint, type Checkpoint, type CheckpointOptions } from '../checkpoint/checkpoint.js';
import { requireCapability, type StorageDriver } from '../storage/contract.js';
import type { Clock } from '../types.js';
import type { EventHub, SessionManagerEvents } from './events.js';
import type { ManagerCore } from './manager-core.js';
import type { SessionRuntime } from './runtime/session-runtime.js';
import type { SessionRegistry } from './session-registry.js';
import { UnitBoard } from '../units/board.js';
import type { UnitSession, UnitsHost } from '../units/host.js';
import { UnitsRuntime } from '../units/units-runtime.js';

export type { UnitsRuntime } from '../units/units-runtime.js';
export type { WorkUnits } from '../units/work-units.js';
export type { WorkerStatus } from '../units/types.js';

/** A session as the units see it: its stored spec, and its state and health as this node shows them. */
function unitSession(rt: SessionRuntime): UnitSession {
  const r = rt.record;
  return {
    id: rt.id,
    platform: r.platform,
    labels: r.labels,
    priority: r.priority,
    capacity: r.capacity,
    state: rt.shownState,
    health: rt.shownHealth,
    lastActivityAt: rt.remote ? r.lastActivityAt : rt.lastActivityAt,
    node: rt.owner?.nodeId ?? null,
  };
}

/** The manager's units and its checkpoint view: the parts of the facade kept out of session-manager.ts. */

/** The manager's units (`manager.units`, failover, `ctx.units`, `workerStatus()`) over its sessions. */
export function makeUnits(deps: { core: ManagerCore; sessions: SessionRegistry; events: EventHub<SessionManagerEvents>; assertOpen: () => void; onError: (error: unknown) => void }): UnitsRuntime {
  const { core, sessions, events, onError } = deps;
  const live = (rt: SessionRuntime | undefined): rt is SessionRuntime => rt !== undefined && !rt.deleted;
  const host: UnitsHost = {
    storage: core.storage,
    clock: core.clock,
    board: new UnitBoard(core.storage.units, core.options.units.groupSize, onError),
    sessions: () => sessions.sorted().filter(live).map(unitSession),
    session: (id) => {
      const rt = sessions.find(id);
      return live(rt) ? unitSession(rt) : undefined;
    },
    assertOpen: deps.assertOpen,
    emitMoved: (event) => void events.emit('units.moved', event),
    schedule: (ms, fn) => {
      const task = core.scheduler.schedule(ms, fn);
      return () => task.cancel();
    },
    onError,
    flush: () => core.persister.flush(),
  };
  return new UnitsRuntime(host, { failoverAfterMs: core.options.units.failoverAfterMs });
}

/**
 * `manager.checkpoint(stream)`: the store's lifecycle is the manager's, so the checkpoint gets a
 * view whose init() opens nothing (it cannot reopen the store after close(); its calls are refused then).
 */
export function managerCheckpoint(storage: StorageDriver, clock: Clock, stream: string, options: Omit<CheckpointOptions, 'storage' | 'stream'>): Checkpoint {
  const view = { kind: storage.kind, init: async () => {}, checkpoint: requireCapability(storage, 'checkpoint') };
  return createCheckpoint({ clock, ...options, storage: view, stream } as CheckpointOptions);
}
