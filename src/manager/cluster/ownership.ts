import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { OwnerUnavailableError, ValidationError } from '../../errors.js';
import type { JsonValue } from '../../types.js';
import type { SessionRuntime } from '../runtime/session-runtime.js';
import type { RemoteOp } from './commands.js';

/** A node of the cluster as `manager.nodes()` lists it. */
export interface NodeInfo {
  nodeId: string;
  host: string;
  pid: number;
  startedAt: number;
  /** When its last heartbeat reached the store (the database's clock). */
  lastSeenAt: number;
  /** Its heartbeat is younger than the lease TTL. */
  live: boolean;
  /** Sessions it holds leases for. */
  running: number;
  maxRunning: number | null;
  draining: boolean;
}

/**
 * Which node runs each session. One node alone (a store without the `cluster` capability) owns
 * every session it starts; a cluster node holds an ownership lease in the store for each session
 * it runs (see `ClusterOwnership`).
 */
export interface Ownership {
  readonly nodeId: string;
  /** Joins the cluster (before the stored sessions are loaded): a duplicate live node id fails here. */
  join(): Promise<void>;
  /** The stored sessions are loaded: run those that should run (placement, or a local restore). */
  begin(toStart: SessionRuntime[]): Promise<void>;
  /** Takes the session for this node before a start here; false when another node runs it (or will). */
  claim(rt: SessionRuntime): boolean | Promise<boolean>;
  /** After a stop here: gives the session up (its pending writes are stored first). */
  release(rt: SessionRuntime): Promise<void>;
  /** Stops every session this node (or the node `nodeId`) runs, hands them to the others, and takes no new ones. */
  drain(nodeId?: string): Promise<void>;
  /** After every runtime stopped: releases what is left and leaves the cluster. */
  close(): Promise<void>;
  nodes(): Promise<NodeInfo[]>;
  /** Offers an event this manager emits to the other nodes (those of sessions this node runs). */
  relay(event: string, payload: object): void;
  /** Runs a call on the node that runs the session (when it is another node). */
  forward(rt: SessionRuntime, op: RemoteOp, args: JsonValue[]): Promise<JsonValue | undefined>;
}

/** The single node of a store without the `cluster` capability (memory, custom drivers). */
export class SoloOwnership implements Ownership {
  readonly nodeId: string;
  readonly #startedAt: number;
  readonly #now: () => number;
  readonly #restore: (runtimes: SessionRuntime[]) => Promise<void>;
  readonly #running: () => SessionRuntime[];
  readonly #stop: (rt: SessionRuntime) => Promise<void>;
  readonly #maxRunning: number | null;
  #draining = false;

  constructor(deps: {
    nodeId: string | undefined;
    now: () => number;
    maxRunning: number | null;
    restore: (runtimes: SessionRuntime[]) => Promise<void>;
    running: () => SessionRuntime[];
    stop: (rt: SessionRuntime, reason: string) => Promise<void>;
  }) {
    this.nodeId = deps.nodeId ?? `node-${randomUUID().slice(0, 8)}`;
    this.#now = deps.now;
    this.#startedAt = deps.now();
    this.#restore = deps.restore;
    this.#running = deps.running;
    this.#stop = (rt) => deps.stop(rt, 'draining');
    this.#maxRunning = deps.maxRunning;
  }

  async join(): Promise<void> {}

  begin(toStart: SessionRuntime[]): Promise<void> {
    return this.#restore(toStart);
  }

  claim(rt: SessionRuntime): boolean {
    if (this.#draining) return false;
    // One node: the owner is shown on the snapshot, but there is no other node to announce it to.
    if (!rt.owner) rt.setOwner({ nodeId: this.nodeId, since: this.#now(), local: true }, null);
    return true;
  }

  async release(rt: SessionRuntime): Promise<void> {
    rt.setOwner(null, null);
  }

  async drain(nodeId?: string): Promise<void> {
    if (nodeId !== undefined && nodeId !== this.nodeId) throw unknownNode(nodeId, [this.nodeId]);
    this.#draining = true;
    await Promise.all(this.#running().map(this.#stop));
  }

  async close(): Promise<void> {}

  relay(): void {}

  async forward(rt: SessionRuntime): Promise<JsonValue | undefined> {
    throw new OwnerUnavailableError(rt.id, null, 'there is no other node');
  }

  async nodes(): Promise<NodeInfo[]> {
    const now = this.#now();
    return [
      { nodeId: this.nodeId, host: hostName(), pid: process.pid, startedAt: this.#startedAt, lastSeenAt: now, live: true, running: this.#running().length, maxRunning: this.#maxRunning, draining: this.#draining },
    ];
  }
}

export function hostName(): string {
  return hostname();
}

/**
 * Which pid namespace this process is in (Linux: `/proc/self/ns/pid`), so a node can tell that
 * another node row on its host names a process it can see: two containers with one host name have
 * their own. Empty where it cannot be known.
 */
export function pidSpace(): string {
  if (space === undefined) {
    try {
      space = readlinkSync('/proc/self/ns/pid');
    } catch {
      space = '';
    }
  }
  return space;
}
let space: string | undefined;

/**
 * Whether a node row names a process that is certainly gone: on this host, in this pid namespace,
 * and no process with its pid. A pid reused by another process only makes it look alive (the
 * safe side: its leases then expire as usual).
 */
export function certainlyDead(node: { host: string; pid: number; incarnation: string }, here: { host: string; space: string }): boolean {
  if (!here.space || node.host !== here.host || !node.incarnation.endsWith(`@${here.space}`) || node.pid === process.pid) return false;
  try {
    process.kill(node.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** A node id that names no node of the store. */
export function unknownNode(nodeId: string, known: string[]): ValidationError {
  return new ValidationError('drain options', [{ path: ['nodeId'], message: `no node "${nodeId}" shares this store (nodes: ${known.join(', ') || 'none'})` }]);
}
