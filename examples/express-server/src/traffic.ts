import type { SessionManager, SessionManagerEventPayload } from 'multisession';

/** Minutes of traffic kept per session. */
export const TRAFFIC_MINUTES = 60;
const MINUTE = 60_000;

/** One minute of a session's messages. */
export interface TrafficBucket {
  /** Start of the minute (epoch ms). */
  at: number;
  in: number;
  out: number;
}

interface Ring {
  /** Counts by minute slot: `in` at 2 × slot, `out` at 2 × slot + 1. */
  readonly counts: Uint32Array;
  /** The minute (epoch ms / 60,000) each slot holds. */
  readonly minutes: Float64Array;
  last: number;
}

/**
 * Messages in and out per minute for each session, the last hour, from the manager's
 * `session.message` events: what the web page draws as a chart. Only sessions with traffic in the
 * last hour take room (about 1.5 KB each); a deleted session's counts go with it.
 */
export class TrafficCounter {
  readonly #rings = new Map<string, Ring>();
  readonly #now: () => number;
  readonly #off: () => void;
  #sweptAt = 0;

  constructor(manager: SessionManager, now: () => number) {
    this.#now = now;
    const onMessage = (e: SessionManagerEventPayload<'session.message'>) => this.#count(e.id, e.direction, e.at);
    const onDeleted = (e: SessionManagerEventPayload<'session.deleted'>) => void this.#rings.delete(e.id);
    manager.on('session.message', onMessage);
    manager.on('session.deleted', onDeleted);
    this.#off = () => {
      manager.off('session.message', onMessage);
      manager.off('session.deleted', onDeleted);
    };
  }

  /** The last {@link TRAFFIC_MINUTES} minutes of a session, oldest first, ending with the current one. */
  buckets(id: string): TrafficBucket[] {
    const current = Math.floor(this.#now() / MINUTE);
    const ring = this.#rings.get(id);
    const out: TrafficBucket[] = [];
    for (let m = current - TRAFFIC_MINUTES + 1; m <= current; m++) {
      const slot = m % TRAFFIC_MINUTES;
      const held = ring !== undefined && ring.minutes[slot] === m;
      out.push({ at: m * MINUTE, in: held ? ring.counts[2 * slot]! : 0, out: held ? ring.counts[2 * slot + 1]! : 0 });
    }
    return out;
  }

  close(): void {
    this.#off();
    this.#rings.clear();
  }

  #count(id: string, direction: 'in' | 'out', at: number): void {
    const minute = Math.floor(at / MINUTE);
    let ring = this.#rings.get(id);
    if (!ring) {
      ring = { counts: new Uint32Array(2 * TRAFFIC_MINUTES), minutes: new Float64Array(TRAFFIC_MINUTES).fill(-1), last: minute };
      this.#rings.set(id, ring);
    }
    const slot = minute % TRAFFIC_MINUTES;
    if (ring.minutes[slot] !== minute) {
      ring.minutes[slot] = minute;
      ring.counts[2 * slot] = 0;
      ring.counts[2 * slot + 1] = 0;
    }
    ring.counts[2 * slot + (direction === 'in' ? 0 : 1)]! += 1;
    ring.last = Math.max(ring.last, minute);
    if (minute - this.#sweptAt >= TRAFFIC_MINUTES) this.#sweep(minute);
  }

  /** Forgets sessions quiet for the whole window (checked at most once an hour, on traffic). */
  #sweep(minute: number): void {
    this.#sweptAt = minute;
    for (const [id, ring] of this.#rings) if (minute - ring.last >= TRAFFIC_MINUTES) this.#rings.delete(id);
  }
}
