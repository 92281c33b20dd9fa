import { randomUUID } from 'node:crypto';
import { NodeIdInUseError, OwnerUnavailableError, OwnershipLostError } from '../../errors.js';
import type { ClusterStore, OwnershipLease } from '../../storage/cluster-contract.js';
import type { KvValueCodec } from '../../security/kv-values.js';
import type { SessionRecord } from '../../storage/contract.js';
import type { Clock, JsonObject, JsonValue } from '../../types.js';
import type { CommandChannel, RemoteOp } from './commands.js';
import type { ManagerCore } from '../manager-core.js';
import type { SessionRuntime } from '../runtime/session-runtime.js';
import { EventRelay } from './event-relay.js';
import { certainlyDead, hostName, pidSpace, unknownNode, type NodeInfo, type Ownership } from './ownership.js';

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

/** A read of the feed the store asked for waits this long, so a burst of commits is read at once. */
const WAKE_MS = 10;
/** Changes read from the feed per query. */
const FEED_PAGE = 500;

/**
 * One node of a cluster on a store with the `cluster` capability. It keeps a lease for every
 * session it runs and renews them all in one heartbeat every third of the TTL; takes unowned
 * sessions that should run up to its fair share (⌈runnable / live nodes⌉, and never past
 * `maxRunning`), sheds what is past the share + 1 while another node has room; stops a runtime the
 * moment its lease is found gone, and every runtime when it cannot renew for two thirds of the
 * TTL, so it never runs a session past its lease. It also reads the store's change feed, so
 * sessions created, changed, started, stopped or deleted on other nodes show here.
 */
export class ClusterOwnership implements Ownership {
  readonly nodeId: string;
  /** Random per manager, with the pid namespace: tells a restarted process from a second live one. */
  readonly incarnation = `${randomUUID()}@${pidSpace()}`;
  readonly #d: ClusterDeps;
  /** The leases this node holds: session id → token. */
  readonly #held = new Map<string, number>();
  #lastRenewed = 0;
  #draining = false;
  #closed = false;
  #seq = 0;
  #tickTimer: unknown = null;
  #pollTimer: unknown = null;
  /** A read of the feed is under way; `#again`: read once more when it ends. */
  #polling = false;
  #again = false;
  #woken = false;
  #unwatch: (() => Promise<void>) | null = null;
  #ticking: Promise<void> | null = null;
  #placing: Promise<void> | null = null;
  readonly #commands: CommandChannel;
  /** Takes (acquire calls) under way. */
  #acquiring = 0;
  readonly #relay: EventRelay;
  /** From the last placement: live nodes taking sessions, and this node's fair share. */
  #liveNodes = 1;
  #share = Infinity;

  constructor(deps: ClusterDeps) {
    this.#d = deps;
    this.nodeId = deps.nodeId ?? `node-${this.incarnation.slice(0, 8)}`;
    this.#commands = deps.commands(this.nodeId);
    this.#relay = new EventRelay({ store: deps.store, nodeId: this.nodeId, timers: deps.timers, values: deps.values, relayMessages: deps.relayMessages, onError: deps.onError });
  }

  get #now(): number {
    return this.#d.timers.now();
  }

  async join(): Promise<void> {
    const d = this.#d;
    const registration = { nodeId: this.nodeId, incarnation: this.incarnation, host: hostName(), pid: process.pid, maxRunning: d.maxRunning, ttlMs: d.leaseTtlMs };
    // Nodes of this machine whose process is gone (a SIGKILL, a crash) let their sessions go now,
    // not at their leases' expiry: a restart on one machine brings its sessions back at once.
    const evicted = await this.#evictDead();
    try {
      await d.store.join(registration);
    } catch (error) {
      if (!(error instanceof NodeIdInUseError) || evicted.includes(this.nodeId)) throw error;
      if (!(await this.#evictDead()).includes(this.nodeId)) throw error;
      await d.store.join(registration);
    }
    this.#lastRenewed = this.#now;
    // Read the feed from now on: what happened before is in the records about to be loaded.
    this.#seq = (await d.store.changes(Number.MAX_SAFE_INTEGER, 1)).seq;
  }

  /** Removes the rows of this machine's nodes whose processes are gone; returns their ids. */
  async #evictDead(): Promise<string[]> {
    const here = { host: hostName(), space: pidSpace() };
    const { nodes } = await this.#d.store.nodes();
    const dead = nodes.filter((n) => n.incarnation !== this.incarnation && certainlyDead(n, here));
    for (const n of dead) await this.#d.store.leave(n.nodeId, n.incarnation);
    return dead.map((n) => n.nodeId);
  }

  async begin(): Promise<void> {
    this.#commands.start();
    await this.#runTick();
    this.#schedulePoll();
    // Woken by the store as changes commit (PostgreSQL LISTEN/NOTIFY); the timer stays as the fallback.
    this.#unwatch = (await this.#d.store.watch?.(() => this.#wake(), this.#d.onError).catch((error: unknown) => void this.#d.onError(error))) ?? null;
  }

  relay(event: string, payload: object): void {
    const id = (payload as { id?: unknown }).id;
    if (typeof id === 'string' && this.#held.has(id) && !this.#closed) this.#relay.push(event, id, payload);
  }

  forward(rt: SessionRuntime, op: RemoteOp, args: JsonValue[]): Promise<JsonValue | undefined> {
    const owner = rt.owner;
    if (!owner || owner.local) return Promise.reject(new OwnerUnavailableError(rt.id, null, 'no node runs it now'));
    return this.#commands.call(owner.nodeId, op, rt.id, args);
  }

  async claim(rt: SessionRuntime): Promise<boolean> {
    // A burst of creates and starts on a store whose calls never yield (SQLite) starves the
    // heartbeat's timer: renew here when it is overdue, so no lease expires under a busy node.
    if (this.#now - this.#lastRenewed > this.#d.leaseTtlMs / 3 + 100) await this.#runTick();
    const held = this.#held.get(rt.id);
    if (held !== undefined && held === rt.lease) return true;
    // Held for an earlier runtime of this id (deleted and created again): that lease went with the row.
    if (held !== undefined) this.#held.delete(rt.id);
    if (this.#draining || this.#closed) return false;
    const max = this.#d.maxRunning;
    if (max !== null && this.#held.size >= max) return false;
    // Alone, a node runs what it is asked to; with others, a start past its share is left to placement.
    if (this.#liveNodes > 1 && this.#held.size >= this.#share + 1) {
      this.#placeSoon();
      return false;
    }
    const [lease] = await this.#acquire({ limit: 1, ids: [rt.id] });
    if (lease) {
      this.#hold(rt, lease);
      return true;
    }
    await this.#learnOwners([rt]);
    return false;
  }

  async release(rt: SessionRuntime): Promise<void> {
    const token = this.#held.get(rt.id);
    if (token === undefined) return;
    await this.#d.core.persister.flush(); // its last states land before another node may write
    if (this.#held.get(rt.id) !== token) return;
    this.#held.delete(rt.id);
    rt.setLease(null);
    rt.setOwner(null, 'released');
    await this.#d.store.release(this.nodeId, [{ sessionId: rt.id, token }]);
  }

  async drain(nodeId?: string): Promise<void> {
    if (nodeId !== undefined && nodeId !== this.nodeId) {
      const nodes = (await this.#d.store.nodes()).nodes;
      if (!nodes.some((n) => n.nodeId === nodeId && n.live)) throw unknownNode(nodeId, nodes.filter((n) => n.live).map((n) => n.nodeId));
      await this.#commands.call(nodeId, 'drain', '', []);
      return;
    }
    this.#draining = true;
    await this.#beat().catch(this.#d.onError);
    await Promise.all(this.#d.all().filter((rt) => this.#held.has(rt.id) || rt.running).map((rt) => this.#d.stopAndRelease(rt, 'draining')));
  }

  async close(): Promise<void> {
    this.#draining = true;
    this.#closed = true;
    this.#clearTimers();
    await this.#unwatch?.().catch(this.#d.onError);
    this.#commands.close();
    await this.#relay.flush();
    await this.#ticking?.catch(() => undefined);
    await this.#placing?.catch(() => undefined);
    await this.#d.core.persister.flush();
    const leases = [...this.#held].map(([sessionId, token]) => ({ sessionId, token }));
    this.#held.clear();
    if (leases.length) await this.#d.store.release(this.nodeId, leases).catch(this.#d.onError);
    await this.#d.store.leave(this.nodeId, this.incarnation).catch(this.#d.onError);
  }

  async nodes(): Promise<NodeInfo[]> {
    const { nodes } = await this.#d.store.nodes();
    return nodes.map((n) => ({
      nodeId: n.nodeId,
      host: n.host,
      pid: n.pid,
      startedAt: n.startedAt,
      lastSeenAt: n.lastSeenAt,
      live: n.live,
      running: n.leases,
      maxRunning: n.maxRunning,
      draining: n.draining,
    }));
  }

  // ------------------------------------------------------------------ the heartbeat and placement

  #runTick(): Promise<void> {
    this.#ticking ??= this.#tick().finally(() => {
      this.#ticking = null;
      this.#scheduleTick();
    });
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#beat();
    } catch (error) {
      this.#d.onError(error);
      // Never run a session past its lease: give everything up well before it can expire.
      if (this.#now - this.#lastRenewed >= (this.#d.leaseTtlMs * 2) / 3) this.#loseAll('its leases could not be renewed');
      return;
    }
    if (!this.#draining) await this.#runPlace();
  }

  /** One placement at a time; a call while one runs waits for it. */
  #runPlace(): Promise<void> {
    this.#placing ??= this.#place()
      .catch(this.#d.onError)
      .finally(() => {
        this.#placing = null;
      });
    return this.#placing;
  }

  /** Something changed that may leave a session without a node: place now rather than at the next beat. */
  #placeSoon(): void {
    if (!this.#draining && !this.#closed) void this.#runPlace();
  }

  /** Renews every lease; a runtime whose lease is gone is stopped. */
  async #beat(): Promise<void> {
    const d = this.#d;
    // Only leases held before the heartbeat was sent are judged by it: one taken while it runs
    // may be missing from its answer (it read the leases before the take committed).
    const before = new Map(this.#held);
    const res = await d.store.heartbeat({ nodeId: this.nodeId, incarnation: this.incarnation, running: this.#held.size, draining: this.#draining, ttlMs: d.leaseTtlMs });
    if (!res.member) {
      this.#loseAll('this node was removed from the cluster');
      if (!this.#closed) await this.join();
      return;
    }
    this.#lastRenewed = this.#now;
    const still = new Map(res.leases.map((l) => [l.sessionId, l.token]));
    for (const [id, token] of before) {
      if (still.get(id) !== token && this.#held.get(id) === token) this.#lose(id, 'its lease was taken over or the session deleted');
    }
    // A lease in the store this node does not hold (given up meanwhile, or left by a failed call): let it go.
    // (Not while a take is under way: its leases are in the store before they are in `#held`.)
    const stray = this.#acquiring ? [] : res.leases.filter((l) => !this.#held.has(l.sessionId) && !before.has(l.sessionId));
    if (stray.length) await d.store.release(this.nodeId, stray);
  }

  async #place(): Promise<void> {
    const d = this.#d;
    const [{ nodes: all }, runnable] = await Promise.all([d.store.nodes(), d.store.countRunnable()]);
    // A node of this machine whose process is gone: its sessions are free now, not at expiry.
    const here = { host: hostName(), space: pidSpace() };
    const gone = all.filter((n) => n.live && n.incarnation !== this.incarnation && certainlyDead(n, here));
    for (const n of gone) await d.store.leave(n.nodeId, n.incarnation);
    const nodes = all.filter((n) => !gone.includes(n));
    const live = nodes.filter((n) => n.live && !n.draining);
    const share = Math.ceil(runnable / Math.max(1, live.length));
    this.#liveNodes = Math.max(1, live.length);
    this.#share = share;
    const held = this.#held.size;
    const cap = d.maxRunning ?? Infinity;
    const room = Math.min(share, cap) - held;
    if (room > 0) {
      const placed: SessionRuntime[] = [];
      this.#acquiring++; // until the leases are held
      try {
        for (const lease of await this.#acquire({ limit: room })) {
          const rt = d.find(lease.sessionId) ?? (await d.refresh(lease.sessionId, await d.core.storage.sessions.get(lease.sessionId)));
          if (!rt || !rt.adapter || rt.deleted) {
            await d.store.release(this.nodeId, [lease]);
            continue;
          }
          this.#hold(rt, lease);
          // A row that cannot be read is held (and shown failed) here, never started.
          if (!rt.record.readError) placed.push(rt);
        }
      } finally {
        this.#acquiring--;
      }
      if (placed.length) d.startPlaced(placed);
      return;
    }
    // Past the share + 1 while another node has room: hand the extra sessions over.
    const excess = held - (share + 1);
    const roomElsewhere = live.some((n) => n.nodeId !== this.nodeId && n.leases < share && (n.maxRunning === null || n.leases < n.maxRunning));
    if (excess > 0 && roomElsewhere) {
      const shed = [...this.#held.keys()].slice(-excess);
      await Promise.all(shed.map((id) => d.find(id)).filter((rt) => rt !== undefined).map((rt) => d.stopAndRelease(rt, 'handed to a node with room')));
    }
  }

  async #acquire(request: { limit: number; ids?: string[] }): Promise<OwnershipLease[]> {
    this.#acquiring++;
    try {
      return await this.#d.store.acquire({ nodeId: this.nodeId, incarnation: this.incarnation, ttlMs: this.#d.leaseTtlMs, ...request });
    } finally {
      this.#acquiring--;
    }
  }

  #hold(rt: SessionRuntime, lease: OwnershipLease): void {
    this.#held.set(rt.id, lease.token);
    rt.setLease(lease.token);
    rt.setOwner({ nodeId: this.nodeId, since: this.#d.core.clock.now(), local: true }, 'lease taken');
  }

  /** The lease of `id` is gone: its runtime stops, and writes nothing more (its token is stale). */
  #lose(id: string, why: string): void {
    const token = this.#held.get(id);
    this.#held.delete(id);
    const rt = this.#d.find(id);
    if (!rt || rt.lease !== token) return; // a later runtime of this id (deleted and created again) never held it
    rt.setOwner(null, 'lease lost');
    this.#d.stopLost(rt, new OwnershipLostError(id, why));
  }

  #loseAll(why: string): void {
    for (const id of [...this.#held.keys()]) this.#lose(id, why);
  }

  // ------------------------------------------------------------------ the change feed

  async #poll(): Promise<void> {
    const d = this.#d;
    for (;;) {
      const batch = await d.store.changes(this.#seq, FEED_PAGE);
      let ids = batch.ids;
      if (batch.reset) {
        const stored = await d.core.storage.sessions.list();
        ids = [...new Set([...stored.map((r) => r.id), ...d.all().map((rt) => rt.id)])];
      }
      this.#seq = batch.seq;
      const runtimes: SessionRuntime[] = [];
      for (const id of ids) {
        if (this.#closed) return;
        const record = await d.core.storage.sessions.get(id);
        const rt = await d.refresh(id, record);
        if (rt) runtimes.push(rt);
      }
      await this.#learnOwners(runtimes);
      for (const e of batch.events) {
        const event = e.nodeId === this.nodeId ? null : this.#relay.received(e.event);
        if (event) d.emitRelayed(event);
      }
      if (ids.length) this.#placeSoon();
      if (!batch.more) return;
    }
  }

  /** Who runs these sessions now (for their snapshots), unless this node does. */
  async #learnOwners(runtimes: SessionRuntime[]): Promise<void> {
    const remote = runtimes.filter((rt) => !this.#held.has(rt.id));
    if (remote.length === 0) return;
    const owners = new Map((await this.#d.store.owners(remote.map((rt) => rt.id))).map((o) => [o.sessionId, o]));
    for (const rt of remote) {
      if (this.#held.has(rt.id)) continue; // taken by this node meanwhile
      const o = owners.get(rt.id);
      rt.setOwner(o ? { nodeId: o.nodeId, since: o.since, local: false } : null, 'seen in the store');
    }
  }

  // ------------------------------------------------------------------ timers (the manager's clock)

  #scheduleTick(): void {
    if (this.#closed) return;
    const clock = this.#d.timers;
    this.#tickTimer = clock.setTimeout(() => void this.#runTick(), Math.max(1, Math.floor(this.#d.leaseTtlMs / 3)));
  }

  #schedulePoll(): void {
    if (this.#closed) return;
    this.#pollTimer = this.#d.timers.setTimeout(() => this.#readFeed(), this.#d.changePollMs);
  }

  #readFeed(): void {
    this.#pollTimer = null;
    this.#woken = false;
    this.#polling = true;
    void this.#poll()
      .catch(this.#d.onError)
      .finally(() => {
        this.#polling = false;
        if (this.#again && !this.#closed) {
          this.#again = false;
          this.#readFeed();
        } else this.#schedulePoll();
      });
  }

  /** The store says the feed has news: read it now (or right after the read under way). */
  #wake(): void {
    if (this.#closed || this.#woken) return;
    if (this.#polling) {
      this.#again = true;
      return;
    }
    // A few ms later: the changes of a burst of commits are read together.
    this.#woken = true;
    if (this.#pollTimer !== null) this.#d.timers.clearTimeout(this.#pollTimer as never);
    this.#pollTimer = this.#d.timers.setTimeout(() => this.#readFeed(), WAKE_MS);
  }

  #clearTimers(): void {
    const clock = this.#d.timers;
    if (this.#tickTimer !== null) clock.clearTimeout(this.#tickTimer as never);
    if (this.#pollTimer !== null) clock.clearTimeout(this.#pollTimer as never);
    this.#tickTimer = this.#pollTimer = null;
  }
}
