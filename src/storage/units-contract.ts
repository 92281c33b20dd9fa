import type { HealthStatus, SessionState } from '../lifecycle.js';
import type { JsonValue } from '../types.js';
import type { AuditInput } from './contract.js';

/**
 * The `units` capability of a storage driver: work units (seed 003's forwarding pairs, seed
 * 004's chats), each assigned to at most one session. The memory, SQLite and PostgreSQL drivers
 * have it; `manager.units` needs it.
 *
 * Invariants (checked by the `units` group of `storageConformanceSuite`):
 * - **Every write is all or nothing, checks included.** `add`, `move` and `remove` check, in the
 *   same transaction as the change: the units exist (or, for `add`, do not), each moved unit is
 *   still on the session the move says it comes `from` (a compare-and-swap per unit), each session
 *   that receives units exists, is in a state and health that `accept` allows, and holds no more
 *   than its `capacity` units afterwards (a `null` capacity has no limit; a session that only
 *   loses units is never checked). When a check fails nothing is written and the result is
 *   `{ ok: false, problem }` (an outcome, not an error); faults and bad input throw.
 * - The `audit` entries a write is given are stored in the same transaction, exactly when the
 *   change is.
 * - A unit's `assignedAt` is the write's `at` when it gets a session, `null` when it has none.
 * - Deleting a session leaves its units unassigned (`sessionId` and `assignedAt` null).
 * - A `cluster` store puts a change of every session that gained or lost units in its change
 *   feed, so the node that runs it learns of the change.
 * - A unit whose id is a canonical integer (`0`, `42`, `-7`; no leading zeros, at most 15
 *   digits) is found by `list({ range })`; other ids never are.
 * - `list` orders by id (code point order), pages with `after` and `limit`.
 */
export interface UnitStore {
  add(units: NewUnitRecord[], options: UnitWriteOptions): Promise<UnitWriteResult>;
  move(moves: UnitMove[], options: UnitWriteOptions): Promise<UnitWriteResult>;
  remove(ids: string[], options: UnitWriteOptions): Promise<UnitWriteResult>;
  get(id: string): Promise<UnitRecord | null>;
  list(query: UnitQuery): Promise<UnitRecord[]>;
  /** How many units each session holds (sessions without units are left out). */
  counts(): Promise<Record<string, number>>;
}

export interface UnitRecord {
  id: string;
  kind: string;
  data: JsonValue;
  sessionId: string | null;
  /** When it got its session (epoch ms); `null` while unassigned. */
  assignedAt: number | null;
  createdAt: number;
}

/** A unit to add: unassigned (`sessionId: null`) or straight onto a session (checked like a move). */
export interface NewUnitRecord {
  id: string;
  kind: string;
  data: JsonValue;
  sessionId: string | null;
  createdAt: number;
}

/** One unit's move: from the session it must be on now (`null`: unassigned) to another (or none). */
export interface UnitMove {
  id: string;
  from: string | null;
  to: string | null;
}

export interface UnitWriteOptions {
  /** The write's time: `assignedAt` of the units that get a session. */
  at: number;
  /**
   * What a session receiving units must be: its stored `state` among `states` and its `health`
   * among `health` (each unchecked when absent).
   */
  accept?: { states?: readonly SessionState[]; health?: readonly HealthStatus[] };
  /** Entries of the audit log, stored with the change (ignored without the `audit` capability). */
  audit?: AuditInput[];
}

export interface UnitQuery {
  sessionId?: string;
  /** Only units without a session. */
  unassigned?: boolean;
  kind?: string;
  ids?: readonly string[];
  /** Units whose ids are integers from `range[0]` to `range[1]`, both included. */
  range?: readonly [number, number];
  /** Only ids after this one (the previous page's last id). */
  after?: string;
  limit?: number;
}

export type UnitWriteResult = { ok: true; units: UnitRecord[] } | { ok: false; problem: UnitProblem };

/** Why a unit write changed nothing. */
export type UnitProblem =
  | { kind: 'unit-exists'; unitId: string }
  | { kind: 'unit-missing'; unitId: string }
  /** The unit is no longer on the session the move said (someone moved it meanwhile). */
  | { kind: 'unit-moved'; unitId: string; sessionId: string | null }
  | { kind: 'session-missing'; sessionId: string }
  | { kind: 'session-unfit'; sessionId: string; state: SessionState; health: HealthStatus }
  | { kind: 'capacity'; sessionId: string; capacity: number; units: number; adding: number };

/** The integer a unit id stands for in ranges, or null. */
export function unitNumber(id: string): number | null {
  return /^-?(0|[1-9][0-9]{0,14})$/.test(id) && id !== '-0' ? Number(id) : null;
}
