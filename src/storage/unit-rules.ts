import type { HealthStatus, SessionState } from '../lifecycle.js';
import type { UnitMove, UnitProblem, UnitWriteOptions } from './units-contract.js';

/**
 * The checks of a unit write, the same on every bundled driver: each driver reads what they need
 * inside its transaction (the units' current sessions, the receiving sessions, their unit counts)
 * and asks {@link judgeMoves}; a problem found means nothing is written.
 */

/** What a check needs of a session that receives units. */
export interface ReceivingSession {
  state: SessionState;
  health: HealthStatus;
  capacity: number | null;
}

/** Sessions that receive units in `moves` (a move onto the session a unit is already on receives nothing). */
export function receivers(moves: readonly UnitMove[]): string[] {
  const out = new Set<string>();
  for (const m of moves) if (m.to !== null && m.to !== m.from) out.add(m.to);
  return [...out];
}

/**
 * The first problem of `moves`, or null. `current(id)` is the session a unit is on now (`null`:
 * unassigned, `undefined`: no such unit); `mustExist` false for an add (each unit must be new).
 */
export function judgeMoves(
  moves: readonly UnitMove[],
  current: (id: string) => string | null | undefined,
  session: (id: string) => ReceivingSession | undefined,
  count: (id: string) => number,
  accept: UnitWriteOptions['accept'],
  mustExist: boolean,
): UnitProblem | null {
  const gain = new Map<string, number>();
  const loss = new Map<string, number>();
  for (const m of moves) {
    const now = current(m.id);
    if (!mustExist) {
      if (now !== undefined) return { kind: 'unit-exists', unitId: m.id };
    } else if (now === undefined) {
      return { kind: 'unit-missing', unitId: m.id };
    } else if (now !== m.from) {
      return { kind: 'unit-moved', unitId: m.id, sessionId: now };
    }
    if (m.to === m.from) continue;
    if (m.to !== null) gain.set(m.to, (gain.get(m.to) ?? 0) + 1);
    if (m.from !== null && mustExist) loss.set(m.from, (loss.get(m.from) ?? 0) + 1);
  }
  for (const [id, adding] of [...gain].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const s = session(id);
    if (!s) return { kind: 'session-missing', sessionId: id };
    if ((accept?.states && !accept.states.includes(s.state)) || (accept?.health && !accept.health.includes(s.health))) {
      return { kind: 'session-unfit', sessionId: id, state: s.state, health: s.health };
    }
    const units = count(id) - (loss.get(id) ?? 0);
    if (s.capacity !== null && units + adding > s.capacity) return { kind: 'capacity', sessionId: id, capacity: s.capacity, units, adding };
  }
  return null;
}

/** Sessions a write touches (gained or lost units): their change rows in a cluster's feed. */
export function touchedSessions(moves: readonly UnitMove[]): string[] {
  const out = new Set<string>();
  for (const m of moves) {
    if (m.to === m.from) continue;
    if (m.from !== null) out.add(m.from);
    if (m.to !== null) out.add(m.to);
  }
  return [...out].sort();
}
