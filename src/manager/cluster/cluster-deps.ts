import type { OwnershipLostError } from '../../errors.js';
import type { KvValueCodec } from '../../security/kv-values.js';
import type { ClusterStore } from '../../storage/cluster-contract.js';
import type { SessionRecord } from '../../storage/contract.js';
import type { Clock, JsonObject } from '../../types.js';
import type { ManagerCore } from '../manager-core.js';
import type { SessionRuntime } from '../runtime/session-runtime.js';
import type { CommandChannel } from './commands.js';

/** What the cluster node needs from its manager. */
export interface ClusterDeps {
  core: ManagerCore;
  store: ClusterStore;
  nodeId: string | undefined;
  leaseTtlMs: number;
  maxRunning: number | null;
  changePollMs: number;
  /**
   * The clock of the heartbeat, the feed and the commands: real time, whatever the manager's
   * clock is, because leases expire by the database's clock.
   */
  timers: Clock;
  /** The runtime of a session, if this node knows it. */
  find(id: string): SessionRuntime | undefined;
  /** Runtimes this node knows, running here or not. */
  all(): SessionRuntime[];
  /** Starts runtimes whose leases this node just took (a few at a time). */
  startPlaced(runtimes: SessionRuntime[]): void;
  /** Stops a runtime and releases its lease (drain). */
  stopAndRelease(rt: SessionRuntime, reason: string): Promise<void>;
  /** Stops a runtime whose lease is gone (it writes nothing more). */
  stopLost(rt: SessionRuntime, error: OwnershipLostError): void;
  /** Brings this node's view of a session up to date with its stored record (null: deleted). */
  refresh(id: string, record: SessionRecord | null): Promise<SessionRuntime | undefined>;
  onError(error: unknown): void;
  /** Seals and opens relayed `session.auth` and `session.message` events (the manager's secret key). */
  values: KvValueCodec;
  /** Relay `session.message` events to the other nodes (`cluster.relayMessages`). */
  relayMessages: boolean;
  /** Emits here an event another node relayed (as plain JSON, its name in `type`). */
  emitRelayed(event: JsonObject): void;
  /** The channel to the other nodes (made once the node id is known). */
  commands(nodeId: string): CommandChannel;
}
