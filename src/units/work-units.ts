import { CapacityError, ValidationError } from '../errors.js';
import { requireCapability } from '../storage/contract.js';
import type { UnitRecord, UnitWriteOptions } from '../storage/units-contract.js';
import { parseWith } from '../validation.js';
import type { UnitsHost } from './host.js';
import { capacityError, problemError, UnitMoves } from './moves.js';
import { HEALTHY_TARGET, LIVE_TARGET_STATES, PLACEMENT_STATES, placeMany, rank } from './placement.js';
import {
  actorOptionsSchema,
  addUnitsSchema,
  assignOptionsSchema,
  pickQuerySchema,
  reassignOptionsSchema,
  targetSchema,
  unitIdsInput,
  unitListSchema,
  type AssignOptions,
  type PickQuery,
  type ReassignOptions,
  type UnitActorOptions,
  type UnitInput,
  type UnitListQuery,
} from './schemas.js';
import { checkSelector, unitIdSchema } from './selector.js';
import type { ReassignPlan, SessionCandidate, Unit, UnitMoveInfo, UnitPage, UnitSelector } from './types.js';

const requireUnits = (host: UnitsHost) => requireCapability(host.storage, 'units');

/** Plans lost to a concurrent move are made again this many times before `ConflictError`. */
const ATTEMPTS = 3;

const encodeCursor = (id: string): string => Buffer.from(id, 'utf8').toString('base64url');
function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!id || encodeCursor(id) !== cursor) throw new ValidationError('unit list query', [{ path: ['cursor'], message: 'is not a cursor this list returned; start again without it' }]);
  return id;
}

/**
 * `manager.units`: work units (seed 003's forwarding pairs, seed 004's chats) assigned to
 * sessions by health, priority and spare capacity; moved in bulk, all or nothing, audited. Every
 * write is one transaction of the store that checks what it relies on again (the units are where
 * they were, the target can take them), so two nodes cannot overfill a session.
 *
 * @example
 * ```ts
 * await manager.units.add([{ id: '1', kind: 'pair', data: { from: -100123, to: '9876' } }]);
 * await manager.units.assign(['1']);                     // to the best session
 * const plan = await manager.units.reassign(parseUnitSelector('1-10'), 'backup', { dryRun: true });
 * ```
 */
export class WorkUnits {
  readonly #host: UnitsHost;
  readonly #moves: UnitMoves;

  constructor(host: UnitsHost) {
    this.#host = host;
    this.#moves = new UnitMoves(host);
  }

  /** Adds units (all or none), unassigned or on the session each names. Audited as `unit.add`. */
  async add(units: UnitInput | UnitInput[], options: UnitActorOptions = {}): Promise<Unit[]> {
    this.#host.assertOpen();
    const list = parseWith(addUnitsSchema, Array.isArray(units) ? units : [units], 'units to add');
    const { actor = null } = parseWith(actorOptionsSchema, options, 'unit options');
    this.#knownSessions(list.map((u) => u.sessionId), (i) => [i, 'sessionId']);
    if (list.some((u) => u.sessionId !== null)) await this.#host.flush();
    const at = this.#host.clock.now();
    const store = this.#moves.store;
    const result = await store.add(
      list.map((u) => ({ id: u.id, kind: u.kind, data: u.data, sessionId: u.sessionId, createdAt: at })),
      { at, accept: { states: LIVE_TARGET_STATES }, audit: this.#moves.audit(list.map((u) => ({ id: u.id, from: null, to: u.sessionId })), actor, 'add', at, 'unit.add') },
    );
    if (!result.ok) throw problemError(result.problem, ['sessionId']);
    this.#host.board.written(result.units);
    return result.units.map((u) => this.#unit(u));
  }

  /** Removes units (all or none; an unknown id is a `ValidationError`). Audited as `unit.remove`. */
  async remove(ids: string[], options: UnitActorOptions = {}): Promise<number> {
    this.#host.assertOpen();
    const list = parseWith(unitIdsInput, ids, 'unit ids');
    const { actor = null } = parseWith(actorOptionsSchema, options, 'unit options');
    const at = this.#host.clock.now();
    const current = await this.#existing(list, ['ids']);
    const audit = this.#moves.audit(current.map((u) => ({ id: u.id, from: u.sessionId, to: null })), actor, 'remove', at, 'unit.remove');
    const result = await this.#moves.store.remove(list, { at, ...(audit ? { audit } : {}) });
    if (!result.ok) throw problemError(result.problem);
    this.#host.board.written([], result.units);
    return result.units.length;
  }

  /** The unit, or `null`. */
  async get(id: string): Promise<Unit | null> {
    this.#host.assertOpen();
    const record = await this.#moves.store.get(parseWith(unitIdSchema, id, 'unit id'));
    return record ? this.#unit(record) : null;
  }

  /** Units matching every filter, by id; a page of `limit` (default 100) and the cursor of the next. */
  async list(query: UnitListQuery = {}): Promise<UnitPage> {
    this.#host.assertOpen();
    const q = parseWith(unitListSchema, query, 'unit list query');
    const limit = q.limit ?? 100;
    const rows = await this.#moves.store.list({
      ...(q.sessionId !== undefined ? { sessionId: q.sessionId } : {}),
      ...(q.unassigned ? { unassigned: true } : {}),
      ...(q.kind !== undefined ? { kind: q.kind } : {}),
      ...(q.cursor !== undefined ? { after: decodeCursor(q.cursor) } : {}),
      limit: limit + 1,
    });
    const items = rows.slice(0, limit).map((u) => this.#unit(u));
    return { items, nextCursor: rows.length > limit ? encodeCursor(items.at(-1)!.id) : null };
  }

  /**
   * The best session for a new unit (see docs/units.md for the order): `ready` and healthy
   * before `degraded`, higher priority, more spare capacity, fewer units. `null` when none fits.
   */
  async pickSession(query: PickQuery = {}): Promise<SessionCandidate | null> {
    this.#host.assertOpen();
    const q = parseWith(pickQuerySchema, query, 'pick query');
    requireUnits(this.#host);
    // This node's view of the counts (a write checks the capacity again in its transaction).
    return rank(this.#moves.candidates(this.#host.board.counts(), q))[0] ?? null;
  }

  /**
   * Puts units on the session `to` (`null`: no session), or each on the best session when `to`
   * is left out. All or nothing: a unit past a session's capacity is a `CapacityError` naming
   * the session, its capacity and its units. Audited per unit (`unit.move`).
   */
  async assign(ids: string[], options: AssignOptions = {}): Promise<Unit[]> {
    this.#host.assertOpen();
    const list = parseWith(unitIdsInput, ids, 'unit ids');
    const o = parseWith(assignOptionsSchema, options, 'assign options');
    const reason = o.reason ?? 'assign';
    if (o.to) this.#knownSessions([o.to], () => ['to']);
    for (let attempt = 1; ; attempt++) {
      const current = await this.#existing(list, ['ids']);
      let moves: UnitMoveInfo[];
      if (o.to !== undefined) {
        moves = current.map((u) => ({ id: u.id, from: u.sessionId, to: o.to! }));
      } else {
        const counts = await this.#moves.store.counts();
        const placed = placeMany(this.#moves.candidates(counts), current.length);
        if ('fits' in placed) throw new CapacityError(`No sessions have room for ${current.length} units (${placed.fits} fit); add sessions, raise capacities or start stopped sessions.`, { context: { units: current.length, fits: placed.fits } });
        moves = current.map((u, i) => ({ id: u.id, from: u.sessionId, to: placed.targets[i]! }));
      }
      // Placement takes ready or degraded sessions; a named one may be stopped (its units wait), not failed or expired.
      const accept: UnitWriteOptions['accept'] = o.to === undefined ? { states: PLACEMENT_STATES } : o.to === null ? undefined : { states: LIVE_TARGET_STATES };
      const done = await this.#moves.apply(moves, { accept, actor: o.actor ?? null, reason, retry: attempt < ATTEMPTS });
      if (done) return done.map((u) => this.#unit(u));
    }
  }

  /**
   * Moves the units `selector` names (`{ ids }`, `{ range: [from, to] }`, `{ fromSession }`; read
   * seed 003's text forms with `parseUnitSelector`) to the session `to`. Pre-flight checks (the
   * units and `to` exist, `to` is `ready` and healthy, it has the capacity) and the move are one
   * transaction: all or nothing. With `dryRun` it checks and returns the plan, changing nothing.
   * One audit entry per moved unit, with the actor and reason.
   */
  async reassign(selector: UnitSelector, to: string, options: ReassignOptions = {}): Promise<ReassignPlan> {
    this.#host.assertOpen();
    const sel = checkSelector(selector);
    const target = parseWith(targetSchema, to, 'reassign target');
    const o = parseWith(reassignOptionsSchema, options, 'reassign options');
    const session = this.#knownSessions([target], () => ['to'])[0]!;
    if ('fromSession' in sel) this.#knownSessions([sel.fromSession], () => ['selector', 'fromSession']);
    for (let attempt = 1; ; attempt++) {
      const units = await this.#select(sel);
      const moves = units.filter((u) => u.sessionId !== target).map((u) => ({ id: u.id, from: u.sessionId, to: target }));
      const before = (await this.#moves.store.counts())[target] ?? 0;
      const plan: ReassignPlan = {
        dryRun: o.dryRun,
        to: target,
        moves,
        unchanged: units.filter((u) => u.sessionId === target).map((u) => u.id),
        capacity: session.capacity,
        unitsBefore: before,
        unitsAfter: before + moves.length,
      };
      if (!HEALTHY_TARGET.states.includes(session.state) || !HEALTHY_TARGET.health.includes(session.health)) {
        throw problemError({ kind: 'session-unfit', sessionId: target, state: session.state, health: session.health });
      }
      if (session.capacity !== null && plan.unitsAfter > session.capacity) throw capacityError(target, session.capacity, before, moves.length, ['to']);
      if (o.dryRun || moves.length === 0) return plan;
      const done = await this.#moves.apply(moves, { accept: HEALTHY_TARGET, actor: o.actor ?? null, reason: o.reason ?? 'reassign', retry: attempt < ATTEMPTS });
      if (done) return plan;
    }
  }

  /** The units a selector names: every id must exist; a range or a session may hold none. */
  async #select(sel: UnitSelector): Promise<UnitRecord[]> {
    if ('ids' in sel) return this.#existing(sel.ids, ['selector', 'ids']);
    if ('range' in sel) return this.#moves.store.list({ range: sel.range });
    return this.#moves.store.list({ sessionId: sel.fromSession });
  }

  /** The stored units of `ids`, in that order; an unknown one is a `ValidationError` at its index. */
  async #existing(ids: string[], path: (string | number)[]): Promise<UnitRecord[]> {
    const found = new Map((await this.#moves.store.list({ ids })).map((u) => [u.id, u]));
    const missing = ids.map((id, i) => [id, i] as const).filter(([id]) => !found.has(id));
    if (missing.length) {
      throw new ValidationError('units', missing.slice(0, 20).map(([id, i]) => ({ path: [...path, i], message: `unit "${id}" does not exist; add it first or check the id` })));
    }
    return ids.map((id) => found.get(id)!);
  }

  /** The sessions of `ids` (nulls skipped); an unknown one is a `ValidationError` at `pathOf(index)`. */
  #knownSessions(ids: (string | null)[], pathOf: (i: number) => (string | number)[]) {
    const out = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === null || id === undefined) continue;
      const s = this.#host.session(id);
      if (!s) throw new ValidationError('units', [{ path: pathOf(i), message: `session "${id}" does not exist` }]);
      out.push(s);
    }
    return out;
  }

  #unit(u: UnitRecord): Unit {
    return { ...u, group: this.#host.board.groupOf(u) };
  }
}
