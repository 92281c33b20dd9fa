import type { KvValueCodec } from '../../security/kv-values.js';
import type { Adapter } from '../../adapters/contract.js';
import { createCheckpoint, type Checkpoint } from '../../checkpoint/checkpoint.js';
import { requireCapability } from '../../storage/contract.js';
import { systemClock, type JsonValue } from '../../types.js';
import { MultisessionError, type ErrorCode } from '../../errors.js';
import type { SessionManagerEventName } from '../events.js';
import { CommandChannel, type RemoteOp } from './commands.js';
import type { OwnershipLostError } from '../../errors.js';
import type { SessionRecord } from '../../storage/contract.js';
import type { ManagerCore } from '../manager-core.js';
import { restoreRuntimes } from '../restore.js';
import { SessionRuntime } from '../runtime/session-runtime.js';
import type { SessionRegistry } from '../session-registry.js';
import { ClusterOwnership } from './cluster-ownership.js';
import { SoloOwnership, type Ownership } from './ownership.js';

/**
 * The manager's {@link Ownership}: a cluster node on a store with the `cluster` capability, else
 * the one node. What a node does with what it learns of other nodes' sessions lives here.
 */
export function makeOwnership(deps: {
  core: ManagerCore;
  sessions: SessionRegistry;
  adapters: ReadonlyMap<string, Adapter>;
  /** Seals the `session.auth` and `session.message` events relayed to other nodes. */
  values: KvValueCodec;
  isOpen: () => boolean;
  onError: (error: unknown) => void;
  /** Runs a forwarded call here (the manager's own method). */
  execute: (op: RemoteOp, id: string, args: JsonValue[]) => Promise<JsonValue | undefined>;
  /** Sessions the feed named: their units may have changed. */
  unitsChanged?: (ids: string[]) => void;
}): Ownership {
  const { core, sessions, adapters, isOpen, onError } = deps;
  const opts = core.options.cluster;
  const restore = (runtimes: SessionRuntime[]) => restoreRuntimes(runtimes, core.options.restore.concurrency, isOpen, onError);
  const store = core.storage.cluster;
  const stop = (rt: SessionRuntime, reason: string) => rt.enqueue(() => rt.stop(reason)).catch(onError);
  const running = () => sessions.all().filter((rt) => rt.running);
  if (!store) return new SoloOwnership({ nodeId: opts.nodeId, now: () => core.clock.now(), maxRunning: opts.maxRunning, restore, running, stop });

  const refresh = async (id: string, record: SessionRecord | null): Promise<SessionRuntime | undefined> => {
    const rt = sessions.find(id);
    const at = core.clock.now();
    if (record) deps.unitsChanged?.([id]);
    if (!record) {
      if (!rt || rt.deleted) return undefined;
      if (rt.running) await stop(rt, 'deleted on another node');
      sessions.delete(id);
      core.emit('session.deleted', { id, at });
      return undefined;
    }
    if (!rt) {
      const made = new SessionRuntime(core, adapters.get(record.platform) ?? null, record, { fresh: false });
      sessions.add(made);
      core.emit('session.created', { id, session: made.snapshot(), at });
      return made;
    }
    const before = rt.record;
    if (record.version < before.version) return rt; // read before a newer write of this node's own

    rt.adoptRecord(record);
    if (rt.remote && before.state !== record.state) {
      core.emit('session.state', { id, from: before.state, to: record.state, reason: `on node ${rt.owner?.nodeId ?? '?'}`, at });
    }
    if (record.version !== before.version) {
      core.emit('session.updated', { id, session: rt.snapshot(), changed: changedFields(before, record), at });
      if (rt.running && record.desiredState === 'stopped') {
        void rt.enqueue(async () => {
          await rt.stop('stopped on another node');
          await ownership.release(rt);
        }).catch(onError);
      } else if (rt.running && (before.credentials !== record.credentials || JSON.stringify(before.config) !== JSON.stringify(record.config))) {
        void rt.enqueue(async () => {
          await rt.stop('changed on another node');
          return rt.start('changed on another node');
        }).catch(onError);
      }
    }
    return rt;
  };
  const ownership = new ClusterOwnership({
    core,
    store,
    nodeId: opts.nodeId,
    leaseTtlMs: opts.leaseTtlMs,
    maxRunning: opts.maxRunning,
    changePollMs: opts.changePollMs,
    relayMessages: opts.relayMessages,
    values: deps.values,
    timers: systemClock,
    find: (id) => sessions.find(id),
    all: () => sessions.all(),
    startPlaced: (runtimes) => void restore(runtimes),
    stopAndRelease: (rt, reason) =>
      rt
        .enqueue(async () => {
          await rt.stop(reason);
          await ownership.release(rt);
        })
        .catch(onError),
    stopLost: (rt: SessionRuntime, error: OwnershipLostError) => {
      rt.reportError(error);
      void stop(rt, 'ownership lost');
    },
    refresh,
    onError,
    emitRelayed: (event) => {
      const { type, ...payload } = event;
      if (typeof type !== 'string' || typeof payload.id !== 'string') return;
      const error = payload.error as { name?: string; code?: string; message?: string } | undefined;
      if (type === 'session.error' && error) {
        const rebuilt = new MultisessionError((error.code ?? 'ERROR') as ErrorCode, error.message ?? '');
        Object.defineProperty(rebuilt, 'name', { value: error.name ?? 'Error' });
        (payload as Record<string, unknown>).error = rebuilt;
      }
      core.emit(type as SessionManagerEventName, payload as never);
    },
    commands: (nodeId) => {
      const streams = new Map<string, Checkpoint>();
      const storage = { kind: core.storage.kind, init: async () => {}, checkpoint: requireCapability(core.storage, 'checkpoint') };
      const stream = (name: string) => {
        let cp = streams.get(name);
        if (!cp) streams.set(name, (cp = createCheckpoint({ storage, stream: name, clock: systemClock, maxAttempts: 1 })));
        return cp;
      };
      const pollMs = Math.min(100, Math.max(20, Math.floor(opts.changePollMs / 5)));
      return new CommandChannel({ nodeId, clock: systemClock, stream, execute: deps.execute, onError, pollMs, timeoutMs: opts.commandTimeoutMs });
    },
  });
  return ownership;
}

const FIELDS = ['config', 'labels', 'metadata', 'priority', 'capacity', 'autoStart', 'idleTimeoutMs', 'allowSharedCredentials', 'desiredState', 'credentials'] as const;

function changedFields(a: SessionRecord, b: SessionRecord): string[] {
  return FIELDS.filter((f) => JSON.stringify(a[f]) !== JSON.stringify(b[f]));
}
