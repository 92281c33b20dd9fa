import type { AdapterUnit, SessionUnits, UnitGroup, UnitsChange } from '../adapters/units.js';
import type { UnitRecord, UnitStore } from '../storage/units-contract.js';
import { regroup } from './placement.js';

type Listener = (change: UnitsChange) => void;

/** One session's units as this node knows them, with their groups. */
interface Slot {
  units: Map<string, UnitRecord>;
  groups: Map<string, number>;
  list: AdapterUnit[];
  grouped: UnitGroup[];
  listeners: Set<Listener>;
  /** `units` changed since `groups`, `list` and `grouped` were made (they are made when read, or for a listener). */
  dirty: boolean;
}

const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * This node's view of every session's units and worker groups: loaded at open, changed by this
 * node's writes (from what the store returned) and, in a cluster, refreshed from the store when the
 * change feed names a session. It is what `ctx.units` reads and what it announces changes through.
 */
export class UnitBoard {
  readonly #slots = new Map<string, Slot>();
  /** The session each known unit is on. */
  readonly #owner = new Map<string, string>();
  readonly #store: UnitStore | undefined;
  readonly #groupSize: number;
  readonly #onError: (error: unknown) => void;
  /** Bumped by each write of this node to a session: a read begun before it is stale. */
  readonly #epoch = new Map<string, number>();
  /** Refreshes per session run one after another. */
  readonly #refreshing = new Map<string, Promise<void>>();

  constructor(store: UnitStore | undefined, groupSize: number, onError: (error: unknown) => void) {
    this.#store = store;
    this.#groupSize = groupSize;
    this.#onError = onError;
  }

  async load(): Promise<void> {
    if (!this.#store) return;
    const bySession = new Map<string, UnitRecord[]>();
    for (const u of await this.#store.list({})) if (u.sessionId !== null) (bySession.get(u.sessionId) ?? bySession.set(u.sessionId, []).get(u.sessionId)!).push(u);
    for (const [id, units] of bySession) this.#apply(id, units);
  }

  /** Re-reads the units of `sessionIds` from the store (a change another node made). */
  refresh(sessionIds: Iterable<string>): Promise<void> {
    const store = this.#store;
    if (!store) return Promise.resolve();
    const runs: Promise<void>[] = [];
    for (const id of sessionIds) {
      const next = (this.#refreshing.get(id) ?? Promise.resolve())
        .then(async () => {
          for (;;) {
            const epoch = this.#epoch.get(id) ?? 0;
            const units = await store.list({ sessionId: id });
            if ((this.#epoch.get(id) ?? 0) === epoch) return this.#apply(id, units);
          }
        })
        .catch(this.#onError)
        .finally(() => {
          if (this.#refreshing.get(id) === next) this.#refreshing.delete(id);
        });
      this.#refreshing.set(id, next);
      runs.push(next);
    }
    return Promise.all(runs).then(() => undefined);
  }

  /** Applies units as a write of this node returned them (their sessions now), and units removed. */
  written(units: readonly UnitRecord[], removed: readonly UnitRecord[] = []): void {
    const touched = new Map<string, Map<string, UnitRecord>>();
    const slotUnits = (id: string) => touched.get(id) ?? touched.set(id, new Map(this.#slots.get(id)?.units)).get(id)!;
    for (const u of [...units, ...removed]) {
      const was = this.#owner.get(u.id);
      if (was !== undefined) slotUnits(was).delete(u.id);
    }
    for (const u of units) if (u.sessionId !== null) slotUnits(u.sessionId).set(u.id, u);
    for (const [id, map] of touched) {
      this.#epoch.set(id, (this.#epoch.get(id) ?? 0) + 1);
      this.#apply(id, [...map.values()]);
    }
  }

  /** A session is gone: its view empties. */
  forget(sessionId: string): void {
    this.#apply(sessionId, []);
    this.#slots.delete(sessionId);
  }

  /** Units per session, as this node knows them (placement plans with it; the store checks again). */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [id, slot] of this.#slots) if (slot.units.size) out[id] = slot.units.size;
    return out;
  }

  count(sessionId: string): number {
    return this.#slots.get(sessionId)?.units.size ?? 0;
  }

  groupOf(unit: UnitRecord): number | null {
    const slot = unit.sessionId === null ? undefined : this.#slots.get(unit.sessionId);
    return slot ? (this.#made(slot).groups.get(unit.id) ?? null) : null;
  }

  groups(sessionId: string): { index: number; units: string[] }[] {
    const slot = this.#slots.get(sessionId);
    return (slot ? this.#made(slot).grouped : []).map((g) => ({ index: g.index, units: g.units.map((u) => u.id) }));
  }

  #slot(id: string): Slot {
    let slot = this.#slots.get(id);
    if (!slot) this.#slots.set(id, (slot = { units: new Map(), groups: new Map(), list: [], grouped: [], listeners: new Set(), dirty: false }));
    return slot;
  }

  /** The slot with its groups and lists made for its current units (kept as they are when nothing changed). */
  #made(slot: Slot): Slot {
    if (!slot.dirty) return slot;
    const units = [...slot.units.values()].sort(byId);
    const groups = regroup(units.map((u) => u.id), slot.groups, this.#groupSize);
    slot.groups = groups;
    slot.list = units.map((u) => ({ id: u.id, kind: u.kind, data: u.data, group: groups.get(u.id)!, assignedAt: u.assignedAt }));
    const grouped: UnitGroup[] = [];
    for (const u of slot.list) (grouped[u.group] ??= { index: u.group, units: [] }).units.push(u);
    slot.grouped = grouped;
    slot.dirty = false;
    return slot;
  }

  /**
   * The session's units are now `units`. Its groups are made again at once when a connection
   * listens (which hears what changed), else when they are next read.
   */
  #apply(sessionId: string, units: UnitRecord[]): void {
    const slot = this.#slot(sessionId);
    const next = new Map(units.map((u) => [u.id, u]));
    const before = slot.units;
    for (const id of before.keys()) if (!next.has(id) && this.#owner.get(id) === sessionId) this.#owner.delete(id);
    for (const id of next.keys()) this.#owner.set(id, sessionId);
    if (slot.listeners.size === 0) {
      slot.units = next;
      slot.dirty = true;
      return;
    }
    const previous = this.#made(slot).groups;
    slot.units = next;
    slot.dirty = true;
    const groups = this.#made(slot).groups;
    const added: string[] = [];
    const changed: string[] = [];
    for (const u of slot.list) {
      const was = before.get(u.id);
      if (!was) added.push(u.id);
      else if (previous.get(u.id) !== groups.get(u.id) || JSON.stringify(was.data) !== JSON.stringify(u.data) || was.kind !== u.kind) changed.push(u.id);
    }
    const removed = [...before.keys()].filter((id) => !next.has(id)).sort();
    if (added.length + removed.length + changed.length === 0) return;
    const change: UnitsChange = { units: slot.list, groups: slot.grouped, added, removed, changed };
    for (const listener of [...slot.listeners]) {
      try {
        listener(change);
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  /** `ctx.units` of one connection: its listeners go when `signal` aborts. */
  view(sessionId: string, signal: AbortSignal): SessionUnits {
    const slot = () => this.#slot(sessionId);
    const subscribe = (listener: Listener): (() => void) => {
      if (signal.aborted) return () => undefined;
      const s = this.#made(slot()); // a listener hears changes from what it can read now
      s.listeners.add(listener);
      const off = () => {
        s.listeners.delete(listener);
        signal.removeEventListener('abort', off);
      };
      signal.addEventListener('abort', off, { once: true });
      return off;
    };
    const made = () => this.#made(slot());
    return {
      get list() {
        return made().list;
      },
      get groups() {
        return made().grouped;
      },
      onChange: (listener) => {
        if (typeof listener !== 'function') throw new TypeError('ctx.units.onChange needs a function');
        return subscribe(listener);
      },
      changes: (stop) => changeIterator(subscribe, signal, stop),
    };
  }
}

/** The changes as an async iterator that ends when either signal aborts. */
function changeIterator(subscribe: (l: Listener) => () => void, signal: AbortSignal, stop?: AbortSignal): AsyncIterableIterator<UnitsChange> {
  const queue: UnitsChange[] = [];
  let wake: (() => void) | null = null;
  let done = signal.aborted || !!stop?.aborted;
  const end = () => {
    done = true;
    wake?.();
  };
  const off = subscribe((change) => {
    queue.push(change);
    wake?.();
  });
  signal.addEventListener('abort', end, { once: true });
  stop?.addEventListener('abort', end, { once: true });
  const finish = (): IteratorResult<UnitsChange> => {
    off();
    signal.removeEventListener('abort', end);
    stop?.removeEventListener('abort', end);
    return { done: true, value: undefined };
  };
  const iterator: AsyncIterableIterator<UnitsChange> = {
    async next() {
      while (!done && queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      if (queue.length) return { done: false, value: queue.shift()! };
      return finish();
    },
    async return() {
      done = true;
      return finish();
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
