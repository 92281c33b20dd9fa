import type { HealthStatus, SessionState } from '../lifecycle.js';
import type { JsonValue } from '../types.js';

/** A work unit as `manager.units` returns it. */
export interface Unit {
  id: string;
  kind: string;
  data: JsonValue;
  sessionId: string | null;
  /** When it got its session (epoch ms); `null` while unassigned. */
  assignedAt: number | null;
  createdAt: number;
  /** Its worker group on its session (0-based); `null` while unassigned. */
  group: number | null;
}

export interface UnitPage {
  items: Unit[];
  /** Pass as `cursor` for the next page; `null` after the last. */
  nextCursor: string | null;
}

/** Which units a reassignment moves: a list of ids, an integer range of ids, or all units of a session. */
export type UnitSelector = { ids: string[] } | { range: [number, number] } | { fromSession: string };

/** A session as placement sees it (`pickSession`, `assign` without `to`, failover, forced delete). */
export interface SessionCandidate {
  id: string;
  state: SessionState;
  health: HealthStatus;
  priority: number;
  capacity: number | null;
  /** Units it holds now. */
  units: number;
  /** Capacity minus units (`null`: no limit). */
  spare: number | null;
}

/** One unit's move in a plan or an event. */
export interface UnitMoveInfo {
  id: string;
  from: string | null;
  to: string | null;
}

/** What `reassign` does (or, with `dryRun`, would do). */
export interface ReassignPlan {
  dryRun: boolean;
  to: string;
  /** The units that move (those already on `to` are in `unchanged`). */
  moves: UnitMoveInfo[];
  unchanged: string[];
  /** The target's capacity and units before and after the move. */
  capacity: number | null;
  unitsBefore: number;
  unitsAfter: number;
}

/** `units.moved`: units changed session (a reassignment, an assignment, failover, a forced delete). */
export interface UnitsMovedEvent {
  moves: UnitMoveInfo[];
  /** `assign`, `reassign`, `health` (failover), `session deleted`, or the reason the caller gave. */
  reason: string;
  actor: string | null;
  at: number;
}

/** One session in `manager.workerStatus()`. */
export interface WorkerStatus {
  sessionId: string;
  state: SessionState;
  health: HealthStatus;
  /** The node that runs it (`null`: none). */
  node: string | null;
  capacity: number | null;
  units: number;
  groups: { index: number; units: string[] }[];
  lastActivityAt: number | null;
}
