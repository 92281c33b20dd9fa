import type { HealthStatus, SessionState } from '../lifecycle.js';
import type { UnitsHost } from './host.js';
import { UnitMoves } from './moves.js';
import { placeMany, PLACEMENT_STATES } from './placement.js';

/** Health values that start the failover clock. */
const UNHEALTHY: readonly HealthStatus[] = ['unhealthy', 'expired', 'unauthorized'];
/** States whose units move at once. */
const DEAD: readonly SessionState[] = ['failed', 'expired'];

/**
 * Failover: the units of a session that is `failed` or `expired` move at once to the best other
 * sessions, and those of a session unhealthy (health `unhealthy`, `expired` or `unauthorized`)
 * for `failoverAfterMs` move then; audit reason `health`, event `units.moved`. Only what fits
 * moves (never past a session's capacity); the rest stays and is tried again every
 * `failoverAfterMs` while the session stays down. Every node watches; the store's
 * compare-and-swap lets one of them move each unit.
 */
export class Failover {
  readonly #host: UnitsHost;
  readonly #moves: UnitMoves;
  readonly #afterMs: number;
  /** Sessions waiting to fail over: session id → cancel. */
  readonly #timers = new Map<string, () => void>();

  constructor(host: UnitsHost, afterMs: number) {
    this.#host = host;
    this.#moves = new UnitMoves(host);
    this.#afterMs = afterMs;
  }

  /** What the manager emits, as it emits it. */
  observe(event: string, payload: { id?: string; to?: SessionState; health?: HealthStatus }): void {
    const id = payload.id;
    if (typeof id !== 'string') return;
    if (event === 'session.state' && payload.to) {
      if (DEAD.includes(payload.to)) this.#soon(id, 0);
      else if (payload.to === 'ready' || payload.to === 'stopped') this.#cancel(id);
    } else if (event === 'session.health' && payload.health) {
      if (UNHEALTHY.includes(payload.health)) this.#soon(id, this.#afterMs);
      else if (payload.health === 'healthy') this.#cancel(id);
    } else if (event === 'session.deleted') {
      this.#cancel(id);
    }
  }

  close(): void {
    for (const cancel of this.#timers.values()) cancel();
    this.#timers.clear();
  }

  #soon(id: string, ms: number): void {
    if (this.#timers.has(id) && ms > 0) return; // the clock already runs
    this.#cancel(id);
    this.#timers.set(id, this.#host.schedule(ms, () => {
      this.#timers.delete(id);
      void this.#run(id).catch((error: unknown) => this.#host.onError(error));
    }));
  }

  #cancel(id: string): void {
    this.#timers.get(id)?.();
    this.#timers.delete(id);
  }

  /** Moves what fits of the session's units, if it is still down; tries again later for the rest. */
  async #run(id: string): Promise<void> {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const s = this.#host.session(id);
      if (!s || !this.#hasToMove(s.state, s.health)) return;
      const store = this.#moves.store;
      const units = await store.list({ sessionId: id });
      if (units.length === 0) return;
      const candidates = this.#moves.candidates(await store.counts(), { exclude: new Set([id]) });
      let placed = placeMany(candidates, units.length);
      if ('fits' in placed) placed = placeMany(candidates, placed.fits);
      const list = 'targets' in placed ? placed.targets : [];
      if (list.length > 0) {
        const moves = list.map((to, i) => ({ id: units[i]!.id, from: id, to }));
        const done = await this.#moves.apply(moves, { accept: { states: PLACEMENT_STATES }, actor: null, reason: 'health', retry: true }).catch((error: unknown) => {
          if ((error as { code?: string }).code === 'CAPACITY') return null; // filled meanwhile: plan again
          throw error;
        });
        if (!done) continue;
      }
      if (list.length < units.length) this.#soon(id, this.#afterMs); // the rest, later
      return;
    }
  }

  #hasToMove(state: SessionState, health: HealthStatus): boolean {
    return DEAD.includes(state) || UNHEALTHY.includes(health);
  }
}
