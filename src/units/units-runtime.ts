import { CapacityError, ConflictError } from '../errors.js';
import type { SessionUnits } from '../adapters/units.js';
import type { UnitsHost } from './host.js';
import { Failover } from './failover.js';
import { UnitMoves } from './moves.js';
import { placeMany, PLACEMENT_STATES } from './placement.js';
import type { WorkerStatus } from './types.js';
import { WorkUnits } from './work-units.js';

/**
 * What a manager holds for its units: `manager.units`, failover, the checks of a session's
 * delete and capacity change, `ctx.units` and `workerStatus()`. Inactive (each call refused with
 * `UnsupportedError`) on a store without the `units` capability.
 */
export class UnitsRuntime {
  readonly api: WorkUnits;
  readonly #host: UnitsHost;
  readonly #moves: UnitMoves;
  readonly #failover: Failover;

  constructor(host: UnitsHost, options: { failoverAfterMs: number }) {
    this.#host = host;
    this.api = new WorkUnits(host);
    this.#moves = new UnitMoves(host);
    this.#failover = new Failover(host, options.failoverAfterMs);
  }

  get #active(): boolean {
    return this.#host.storage.units !== undefined;
  }

  /** Loads every unit at open (the board `ctx.units` reads). */
  async open(): Promise<void> {
    if (this.#active) await this.#host.board.load();
  }

  close(): void {
    this.#failover.close();
  }

  /** Sees every event the manager emits (failover, and a deleted session's view). */
  observe(event: string, payload: object): void {
    if (!this.#active) return;
    this.#failover.observe(event, payload);
    if (event === 'session.deleted') this.#host.board.forget((payload as { id: string }).id);
  }

  /** A change of these sessions in the cluster's feed: their units are read again. */
  changed(sessionIds: string[]): void {
    if (this.#active && sessionIds.length) void this.#host.board.refresh(sessionIds);
  }

  /** `ctx.units` of a connection of `sessionId`. */
  view(sessionId: string, signal: AbortSignal): SessionUnits {
    return this.#host.board.view(sessionId, signal);
  }

  /**
   * Before a session is deleted: without `force`, a session holding units is refused with
   * `ConflictError` naming how many; with it, its units move to the best other sessions first
   * (all or nothing: `CapacityError` and no change when they do not fit).
   */
  async vacate(id: string, force: boolean, actor: string | undefined): Promise<void> {
    if (!this.#active) return;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const store = this.#moves.store;
      const units = await store.list({ sessionId: id });
      if (units.length === 0) return;
      if (!force) {
        throw new ConflictError(`Session "${id}" holds ${units.length} units; reassign them first (manager.units.reassign), or delete with { force: true } to move them to the best other sessions.`, {
          context: { sessionId: id, units: units.length },
        });
      }
      const placed = placeMany(this.#moves.candidates(await store.counts(), { exclude: new Set([id]) }), units.length);
      if ('fits' in placed) {
        throw new CapacityError(`Session "${id}" holds ${units.length} units and the other sessions have room for ${placed.fits}; nothing was deleted. Add or start sessions, or raise capacities.`, {
          context: { sessionId: id, units: units.length, fits: placed.fits },
        });
      }
      const moves = placed.targets.map((to, i) => ({ id: units[i]!.id, from: id, to }));
      if (await this.#moves.apply(moves, { accept: { states: PLACEMENT_STATES }, actor: actor ?? null, reason: 'session deleted', retry: attempt < 3 })) return;
    }
  }

  /** Before a capacity change: below the units the session holds → `CapacityError` at `capacity`. */
  async checkCapacity(id: string, capacity: number | null | undefined): Promise<void> {
    if (!this.#active || capacity === undefined || capacity === null) return;
    const units = (await this.#moves.store.counts())[id] ?? 0;
    if (units > capacity) {
      throw new CapacityError(`Session "${id}" holds ${units} units, more than the capacity ${capacity} asked for; move ${units - capacity} of them first or ask for at least ${units}.`, {
        context: { sessionId: id, capacity, units, path: ['capacity'] },
      });
    }
  }

  /** Every session with its worker groups, units and last activity. */
  workerStatus(): WorkerStatus[] {
    const board = this.#host.board;
    return this.#host.sessions().map((s) => ({
      sessionId: s.id,
      state: s.state,
      health: s.health,
      node: s.node,
      capacity: s.capacity,
      units: board.count(s.id),
      groups: board.groups(s.id),
      lastActivityAt: s.lastActivityAt,
    }));
  }
}
