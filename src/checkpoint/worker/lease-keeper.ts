import type { Clock } from '../../types.js';
import { TimerSlot } from './timer-slot.js';

/** Why a lease is lost: the store refused its renewal, or its local deadline passed first. */
export type LeaseLossReason = 'renew' | 'deadline';

export interface LeaseKeeperOptions<L> {
  clock: Clock;
  /** Lease length. Every held lease is renewed every third of it (at least every 10 ms). */
  leaseMs: number;
  /**
   * Renews `leases` by `leaseMs` in ONE store call; resolves with each one's new expiry, or null
   * (or nothing) where the store refused (the lease is no longer held).
   */
  renew(leases: readonly L[], leaseMs: number): Promise<readonly (number | null | undefined)[]>;
  /** A renewal succeeded: `expiresAt` is the store's new expiry. */
  renewed?(lease: L, expiresAt: number): void;
  /**
   * A held lease's renewal was refused, or its deadline passed. The keeper keeps holding it (and
   * reports it again) until {@link LeaseKeeper.release}: the holder decides what a loss means.
   */
  lost(lease: L, reason: LeaseLossReason): void;
  /** A renewal call failed (or a callback threw): the leases keep their deadlines. */
  error(error: unknown): void;
  /** Sees each renewal call's promise, settled or not (to wait for it, or count it as work). */
  track?(renewal: Promise<unknown>): void;
}

/** Leases claimed or renewed together: one deadline, one timer. */
interface Group<L> {
  readonly deadline: number;
  readonly members: Set<L>;
  readonly timer: TimerSlot;
}

/**
 * Keeps leases alive: renews every held lease at a third of the lease in one store call per
 * tick, and holds a local deadline for each (the start of its claim or latest renewal plus
 * `leaseMs`, on the injected clock). Leases that start together share one deadline timer, so a
 * batch of 200 costs one timer, not 200. A lease is reported lost when its renewal is refused or
 * its deadline passes before a renewal lands.
 *
 * Generic over what a lease is (`L`, compared by identity): the checkpoint worker's held items
 * today, a node's session ownership leases tomorrow.
 *
 * @example
 * ```ts
 * const keeper = new LeaseKeeper<Ref>({ clock, leaseMs: 30_000, renew: (refs, ms) => store.renew(refs, ms), lost: stop, error: log });
 * const startedAt = clock.now();
 * const refs = await store.claim(…);
 * keeper.hold(refs, startedAt);
 * // … work; keeper.expired(ref) before writing; keeper.release(ref) when done …
 * keeper.stop();
 * ```
 */
export class LeaseKeeper<L> {
  readonly #o: LeaseKeeperOptions<L>;
  readonly #groups = new Map<L, Group<L>>();
  readonly #tick: TimerSlot;
  #renewing = false;
  #stopped = false;

  constructor(options: LeaseKeeperOptions<L>) {
    this.#o = options;
    this.#tick = new TimerSlot(options.clock, this.#renewAll);
  }

  /** How many leases it holds. */
  get size(): number {
    return this.#groups.size;
  }

  /**
   * Holds `leases` (or moves them, if held already) under one deadline: `startedAt + leaseMs`.
   * Pass the clock's time from before the claim or renewal call, so the deadline never outlives
   * the store's lease.
   */
  hold(leases: readonly L[], startedAt: number): void {
    if (!leases.length || this.#stopped) return;
    const clock = this.#o.clock;
    const group: Group<L> = {
      deadline: startedAt + this.#o.leaseMs,
      members: new Set(),
      timer: new TimerSlot(clock, () => this.#deadlinePassed(group)),
    };
    for (const lease of leases) {
      this.#leave(lease);
      this.#groups.set(lease, group);
      group.members.add(lease);
    }
    group.timer.arm(Math.max(0, group.deadline - clock.now()));
    this.#tick.arm(this.#interval());
  }

  /** Stops holding `lease` (done with it, or given up): no more renewals or reports. */
  release(lease: L): void {
    this.#leave(lease);
    this.#groups.delete(lease);
    if (this.#groups.size === 0) this.#tick.clear();
  }

  /** Its local deadline, or undefined when it is not held. */
  deadline(lease: L): number | undefined {
    return this.#groups.get(lease)?.deadline;
  }

  /** True when `lease` is held and its deadline has passed (by the clock, now). */
  expired(lease: L): boolean {
    const group = this.#groups.get(lease);
    return group !== undefined && this.#o.clock.now() >= group.deadline;
  }

  /** Clears every timer and forgets every lease. A renewal in flight still settles (and reports nothing). */
  stop(): void {
    this.#stopped = true;
    this.#tick.clear();
    for (const group of this.#groups.values()) group.timer.clear();
    this.#groups.clear();
  }

  #interval(): number {
    return Math.max(10, Math.floor(this.#o.leaseMs / 3));
  }

  #leave(lease: L): void {
    const group = this.#groups.get(lease);
    if (!group) return;
    group.members.delete(lease);
    if (group.members.size === 0) group.timer.clear();
  }

  readonly #deadlinePassed = (group: Group<L>): void => {
    for (const lease of [...group.members]) this.#o.lost(lease, 'deadline');
  };

  /** One tick: one renewal call for every lease held now (skipped while the last is in flight). */
  readonly #renewAll = (): void => {
    if (this.#groups.size === 0) return;
    this.#tick.arm(this.#interval());
    if (this.#renewing) return;
    this.#renewing = true;
    const o = this.#o;
    const leases = [...this.#groups.keys()];
    const startedAt = o.clock.now();
    const renewal = o
      .renew(leases, o.leaseMs)
      .then((expiries) => {
        const renewed: L[] = [];
        leases.forEach((lease, i) => {
          if (!this.#groups.has(lease)) return; // released meanwhile
          const expiresAt = expiries[i];
          if (expiresAt === null || expiresAt === undefined) {
            o.lost(lease, 'renew');
            return;
          }
          o.renewed?.(lease, expiresAt);
          renewed.push(lease);
        });
        // A callback may have released some of them: move only those still held.
        this.hold(renewed.filter((lease) => this.#groups.has(lease)), startedAt);
      })
      .catch((error: unknown) => o.error(error))
      .finally(() => {
        this.#renewing = false;
      });
    o.track?.(renewal);
  };
}
