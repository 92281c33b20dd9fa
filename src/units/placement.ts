import type { HealthStatus, SessionState } from '../lifecycle.js';
import type { SessionCandidate } from './types.js';

/**
 * Placement: which session gets a unit. The order, documented in docs/units.md:
 * 1. sessions `ready` with health `healthy` (or not yet checked: `unknown`), before sessions
 *    `degraded` (or `ready` but judged unhealthy); no other state takes units by itself;
 * 2. higher `priority` first;
 * 3. more spare capacity (capacity − units; no capacity counts as unlimited);
 * 4. fewer units; then the id, so the pick is the same on every node.
 */

/** The tier of a session for placement: 0 best, 1 degraded, null none. */
export function tierOf(state: SessionState, health: HealthStatus): 0 | 1 | null {
  if (state === 'ready') return health === 'healthy' || health === 'unknown' ? 0 : 1;
  if (state === 'degraded') return 1;
  return null;
}

/** States and health a session must have to take units by placement (checked again in the store's transaction). */
export const PLACEMENT_STATES: readonly SessionState[] = ['ready', 'degraded'];
/** What a named target of `reassign` must be: ready and healthy (or not yet checked). */
export const HEALTHY_TARGET = { states: ['ready'] as SessionState[], health: ['healthy', 'unknown'] as HealthStatus[] };
/** What a named target of `assign` or `add` must not be: units may wait on a stopped session, not on a dead one. */
export const LIVE_TARGET_STATES: readonly SessionState[] = ['stopped', 'starting', 'authenticating', 'ready', 'degraded', 'backoff', 'stopping'];

const spareOf = (c: SessionCandidate): number => (c.capacity === null ? Infinity : c.capacity - c.units);

/** Negative when `a` goes before `b`. */
export function compareCandidates(a: SessionCandidate, b: SessionCandidate): number {
  return (
    (tierOf(a.state, a.health) ?? 9) - (tierOf(b.state, b.health) ?? 9) ||
    b.priority - a.priority ||
    (spareOf(b) === spareOf(a) ? 0 : spareOf(b) > spareOf(a) ? 1 : -1) ||
    a.units - b.units ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

/** The candidates that may take units, best first. */
export function rank(candidates: readonly SessionCandidate[]): SessionCandidate[] {
  return candidates.filter((c) => tierOf(c.state, c.health) !== null && spareOf(c) > 0).sort(compareCandidates);
}

/**
 * Places `count` units one by one on the best candidate at each step (its counts updated as it
 * fills): returns the session of each unit, or the number that fit when not all do.
 */
export function placeMany(candidates: readonly SessionCandidate[], count: number): { targets: string[] } | { fits: number } {
  const pool = rank(candidates).map((c) => ({ ...c }));
  const targets: string[] = [];
  while (targets.length < count && pool.length > 0) {
    let best = 0;
    for (let i = 1; i < pool.length; i++) if (compareCandidates(pool[i]!, pool[best]!) < 0) best = i;
    const c = pool[best]!;
    // Fill this one while it stays the best: the order only changes when its spare drops below the next.
    c.units++;
    if (c.spare !== null) c.spare--;
    targets.push(c.id);
    if (spareOf(c) <= 0) pool.splice(best, 1);
  }
  return targets.length === count ? { targets } : { fits: targets.length };
}

/**
 * Worker groups: `ids` (the session's units) in groups of at most `size`, as even as they can be,
 * changing as few units as it can from `previous` (unit id → group): units that left free their
 * place, units that came go to the smallest groups, and a unit moves only when the number of
 * groups shrinks or the groups differ by more than one.
 */
export function regroup(ids: readonly string[], previous: ReadonlyMap<string, number>, size: number): Map<string, number> {
  const n = ids.length;
  const count = n === 0 ? 0 : Math.ceil(n / size);
  const groups: string[][] = Array.from({ length: count }, () => []);
  const fresh: string[] = [];
  for (const id of ids) {
    const g = previous.get(id);
    if (g !== undefined && g < count) groups[g]!.push(id);
    else fresh.push(id);
  }
  // Groups past the even size give their newest units back; then fill every group to the even
  // size (`base`, then `base + 1`) in group order; rarely a last pass evens out what is left.
  const base = Math.floor(n / Math.max(1, count));
  const cap = Math.ceil(n / Math.max(1, count));
  for (const g of groups) while (g.length > cap) fresh.push(g.pop()!);
  let next = 0;
  for (const target of [base, cap]) {
    for (const g of groups) while (g.length < target && next < fresh.length) g.push(fresh[next++]!);
  }
  const smallest = () => groups.reduce((best, g, i) => (g.length < groups[best]!.length ? i : best), 0);
  const largest = () => groups.reduce((best, g, i) => (g.length > groups[best]!.length ? i : best), 0);
  while (next < fresh.length) groups[smallest()]!.push(fresh[next++]!);
  for (;;) {
    const lo = smallest();
    const hi = largest();
    if (count === 0 || groups[hi]!.length - groups[lo]!.length <= 1) break;
    groups[lo]!.push(groups[hi]!.pop()!);
  }
  const out = new Map<string, number>();
  groups.forEach((g, i) => g.forEach((id) => out.set(id, i)));
  return out;
}
