import type { JsonValue } from '../types.js';

/** One work unit as an adapter sees it (`ctx.units`). */
export interface AdapterUnit {
  id: string;
  kind: string;
  data: JsonValue;
  /** Its worker group (0-based). */
  group: number;
  /** When it came to this session (epoch ms). */
  assignedAt: number | null;
}

/** One worker group of a session: at most `units.groupSize` units. */
export interface UnitGroup {
  index: number;
  units: AdapterUnit[];
}

/** What changed in a session's units (and their groups). */
export interface UnitsChange {
  /** Every unit of the session now, in id order. */
  units: AdapterUnit[];
  groups: UnitGroup[];
  /** Ids that came, left, or changed group or data. */
  added: string[];
  removed: string[];
  changed: string[];
}

/**
 * `ctx.units`: the work units of this session, split into worker groups of at most
 * `units.groupSize` (the manager's option, default 30). Run one worker loop per group and
 * reconcile on each change: a change only names the units that came, left or moved group.
 *
 * @example
 * ```ts
 * const loops = new Map<number, AbortController>();
 * const sync = (groups: UnitGroup[]) => { ... start a loop per new group, stop the loops of gone ones ... };
 * sync(ctx.units.groups);
 * ctx.units.onChange((change) => sync(change.groups));
 * ```
 */
export interface SessionUnits {
  /** The session's units now, in id order. */
  readonly list: readonly AdapterUnit[];
  /** The worker groups now, by index. */
  readonly groups: readonly UnitGroup[];
  /** Calls `listener` after every change until the connection stops; returns a function that unsubscribes. */
  onChange(listener: (change: UnitsChange) => void): () => void;
  /** The changes as an async iterator; it ends when the connection stops or `signal` aborts. */
  changes(signal?: AbortSignal): AsyncIterableIterator<UnitsChange>;
}
