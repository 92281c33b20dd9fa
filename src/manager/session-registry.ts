import { CapacityError, SessionNotFoundError, ValidationError } from '../errors.js';
import type { SessionRuntime } from './runtime/session-runtime.js';
import { sessionIdSchema, type SessionFilter } from './schemas.js';
import type { SessionRecord } from '../storage/contract.js';

type ParsedFilter = Exclude<SessionFilter, undefined>;

/** A page cursor: the last id of the page, opaque to callers. */
export function encodeCursor(id: string): string {
  return Buffer.from(`s:${id}`).toString('base64url');
}

/** The id a cursor of {@link encodeCursor} holds; `ValidationError` for anything else. */
export function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = text.startsWith('s:') ? text.slice(2) : '';
  if (!sessionIdSchema.safeParse(id).success || encodeCursor(id) !== cursor) {
    throw new ValidationError('session list query', [{ path: ['cursor'], message: 'is not a cursor returned by list(); pass nextCursor unchanged' }]);
  }
  return id;
}

const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The index of the first id greater than `after` in sorted `ids`. */
function firstAfter(ids: readonly string[], after: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Two sorted id lists as one (an id in both, deleted and created again, appears twice: pages skip the copy). */
function mergeSorted(a: readonly string[], b: readonly string[]): string[] {
  const out = new Array<string>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i]! <= b[j]! ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

/**
 * The runtimes of a manager's sessions by id, with the `maxSessions` limit and the ordered,
 * filtered pages of `list()`. The id order is kept without sorting every session on every page:
 * ids added wait in a short list that is sorted and merged in when it is full or on the next
 * page, and deleted ids are skipped until enough of them pile up to compact.
 */
export class SessionRegistry {
  readonly #runtimes = new Map<string, SessionRuntime>();
  /** Ids in code-point order (some may be deleted: check `#runtimes`). */
  #sorted: string[] = [];
  /** Ids added since `#sorted` was last brought up to date. */
  #added: string[] = [];
  #deletedInSorted = 0;
  readonly #maxSessions: number;
  /** Creates in flight: they count against the limit too, so concurrent creates cannot pass it together. */
  #creating = 0;

  constructor(maxSessions: number) {
    this.#maxSessions = maxSessions;
  }

  get size(): number {
    return this.#runtimes.size;
  }

  all(): SessionRuntime[] {
    return [...this.#runtimes.values()];
  }

  /** The live runtime of `id`; `ValidationError` for a malformed id, `SessionNotFoundError` for an unknown one. */
  get(id: string): SessionRuntime {
    const checked = sessionIdSchema.safeParse(id);
    if (!checked.success) throw new ValidationError('session id', [{ path: ['id'], message: checked.error.issues[0]?.message ?? 'invalid' }]);
    const rt = this.#runtimes.get(id);
    if (!rt || rt.deleted) throw new SessionNotFoundError(id);
    return rt;
  }

  find(id: string): SessionRuntime | undefined {
    return this.#runtimes.get(id);
  }

  add(rt: SessionRuntime): void {
    if (!this.#runtimes.has(rt.id) && this.#added.push(rt.id) >= MERGE_AT) this.#mergeAdded();
    this.#runtimes.set(rt.id, rt);
  }

  delete(id: string): void {
    if (this.#runtimes.delete(id)) this.#deletedInSorted++;
  }

  clear(): void {
    this.#runtimes.clear();
    this.#sorted = [];
    this.#added = [];
    this.#deletedInSorted = 0;
  }

  /** Holds a place for a session being created (`CapacityError` past `maxSessions`); call the result when done. */
  reserve(): () => void {
    if (this.#runtimes.size + this.#creating >= this.#maxSessions) {
      throw new CapacityError(`The manager holds ${this.#runtimes.size} sessions, its maxSessions; delete one or raise maxSessions.`, {
        context: { maxSessions: this.#maxSessions },
      });
    }
    this.#creating++;
    let released = false;
    return () => {
      if (!released) this.#creating--;
      released = true;
    };
  }

  /** Runtimes ordered by id. */
  sorted(): SessionRuntime[] {
    return this.page({}, Infinity, null).items;
  }

  /**
   * Up to `limit` runtimes matching every given filter, ordered by id, after the id `after`
   * (exclusive; `null`: from the start), and whether more match beyond them.
   */
  page(f: ParsedFilter, limit: number, after: string | null): { items: SessionRuntime[]; more: boolean } {
    const states = f.state === undefined ? null : new Set(Array.isArray(f.state) ? f.state : [f.state]);
    const healths = f.health === undefined ? null : new Set(Array.isArray(f.health) ? f.health : [f.health]);
    const labels = f.labels ? Object.entries(f.labels) : [];
    const matches = (rt: SessionRuntime, r: SessionRecord): boolean =>
      (!states || states.has(rt.shownState)) &&
      (!healths || healths.has(rt.shownHealth)) &&
      (!f.platform || r.platform === f.platform) &&
      (!f.desiredState || r.desiredState === f.desiredState) &&
      !labels.some(([k, v]) => !Object.hasOwn(r.labels, k) || r.labels[k] !== v);
    // Restricted to given ids: walk those (sorted) instead of every session.
    const ids = f.ids ? [...new Set(f.ids)].sort(byKey) : this.#ordered();
    const items: SessionRuntime[] = [];
    for (let i = after === null ? 0 : firstAfter(ids, after); i < ids.length; i++) {
      if (i > 0 && ids[i - 1] === ids[i]) continue; // deleted and created again: listed once
      const rt = this.#runtimes.get(ids[i]!);
      if (!rt || rt.deleted || !matches(rt, rt.record)) continue;
      if (items.length === limit) return { items, more: true };
      items.push(rt);
    }
    return { items, more: false };
  }

  /** `#sorted`, with the ids added since merged in and, when many were deleted, compacted. */
  #ordered(): string[] {
    if (this.#added.length) this.#mergeAdded();
    if (this.#deletedInSorted > 64 && this.#deletedInSorted * 4 > this.#sorted.length) {
      this.#sorted = this.#sorted.filter((id, i, all) => this.#runtimes.has(id) && (i === 0 || all[i - 1] !== id));
      this.#deletedInSorted = 0;
    }
    return this.#sorted;
  }

  #mergeAdded(): void {
    const added = this.#added.sort(byKey);
    this.#added = [];
    this.#sorted = mergeSorted(this.#sorted, added);
  }
}

/**
 * Ids added are merged into the order every this many (and on the next page): no page waits for
 * a sort of every session created since the last one (100,000 ids: ~50 ms), and a burst of creates
 * pays a merge per 4,096 (a few milliseconds in all for 100,000).
 */
const MERGE_AT = 4096;
