import { CapacityError, ConflictError, ValidationError } from '../errors.js';
import { requireCapability, type AuditInput } from '../storage/contract.js';
import type { UnitProblem, UnitRecord, UnitStore, UnitWriteOptions } from '../storage/units-contract.js';
import type { UnitSession, UnitsHost } from './host.js';
import type { SessionCandidate, UnitMoveInfo } from './types.js';

/** The audit action of every unit that changes session. */
export const MOVE_ACTION = 'unit.move';

/** The message of a unit that does not fit: names the session, its capacity and its units. */
export function capacityError(sessionId: string, capacity: number, units: number, adding: number, path?: (string | number)[]): CapacityError {
  return new CapacityError(
    `Session "${sessionId}" has capacity ${capacity} and holds ${units} units; ${adding} more do not fit. Raise its capacity, move fewer units, or pick another session.`,
    { context: { sessionId, capacity, units, adding, ...(path ? { path } : {}) } },
  );
}

/** The typed error of a refused unit write (`where` names the input field of the target). */
export function problemError(problem: UnitProblem, where: (string | number)[] = ['to']): Error {
  switch (problem.kind) {
    case 'capacity':
      return capacityError(problem.sessionId, problem.capacity, problem.units, problem.adding);
    case 'unit-moved':
      return new ConflictError(`Unit "${problem.unitId}" was moved by someone else meanwhile (it is on ${problem.sessionId === null ? 'no session' : `"${problem.sessionId}"`} now); nothing changed, read it again and retry.`, {
        context: { unitId: problem.unitId, sessionId: problem.sessionId },
      });
    case 'unit-missing':
      return new ValidationError('units', [{ path: ['ids'], message: `unit "${problem.unitId}" does not exist; add it first or check the id` }]);
    case 'unit-exists':
      return new ValidationError('units', [{ path: ['units'], message: `unit "${problem.unitId}" already exists; choose another id or remove it first` }]);
    case 'session-missing':
      return new ValidationError('units', [{ path: where, message: `session "${problem.sessionId}" does not exist` }]);
    case 'session-unfit':
      return new ValidationError('units', [{ path: where, message: `session "${problem.sessionId}" is ${problem.state} with health ${problem.health}; it cannot take units now (start it, or pick another session)` }]);
  }
}

/** Reads and writes the units share: the store, placement candidates, a checked move with its audit entries. */
export class UnitMoves {
  readonly #host: UnitsHost;

  constructor(host: UnitsHost) {
    this.#host = host;
  }

  get store(): UnitStore {
    return requireCapability(this.#host.storage, 'units');
  }

  /** Sessions as placement candidates, with their unit counts, filtered. */
  candidates(counts: Record<string, number>, filter: { platform?: string; labels?: Record<string, string>; exclude?: ReadonlySet<string> } = {}): SessionCandidate[] {
    const out: SessionCandidate[] = [];
    for (const s of this.#host.sessions()) {
      if (filter.exclude?.has(s.id)) continue;
      if (filter.platform !== undefined && s.platform !== filter.platform) continue;
      if (filter.labels && !Object.entries(filter.labels).every(([k, v]) => s.labels[k] === v)) continue;
      out.push(candidateOf(s, counts[s.id] ?? 0));
    }
    return out;
  }

  /** The audit entries of `moves` (none on a store without the audit log). */
  audit(moves: readonly UnitMoveInfo[], actor: string | null, reason: string, at: number, action = MOVE_ACTION): AuditInput[] | undefined {
    if (!this.#host.storage.audit) return undefined;
    return moves.map((m) => ({ at, sessionId: m.to ?? m.from, action, actor, details: { unit: m.id, from: m.from, to: m.to, reason } }));
  }

  /**
   * Moves units in one checked write; `null` when a unit was moved meanwhile and `retry` is set
   * (the caller plans again). Other refusals throw their typed error. Announces what moved.
   */
  async apply(moves: UnitMoveInfo[], o: { accept?: UnitWriteOptions['accept']; actor: string | null; reason: string; where?: (string | number)[]; retry?: boolean }): Promise<UnitRecord[] | null> {
    const host = this.#host;
    if (o.accept) await host.flush(); // the store judges the state and health it holds
    const at = host.clock.now();
    const real = moves.filter((m) => m.from !== m.to);
    const result = await this.store.move(moves, { at, ...(o.accept ? { accept: o.accept } : {}), ...(real.length ? { audit: this.audit(real, o.actor, o.reason, at) } : {}) });
    if (!result.ok) {
      if (o.retry && result.problem.kind === 'unit-moved') return null;
      throw problemError(result.problem, o.where);
    }
    host.board.written(result.units);
    if (real.length) host.emitMoved({ moves: real, reason: o.reason, actor: o.actor, at });
    return result.units;
  }
}

export function candidateOf(s: UnitSession, units: number): SessionCandidate {
  return { id: s.id, state: s.state, health: s.health, priority: s.priority, capacity: s.capacity, units, spare: s.capacity === null ? null : s.capacity - units };
}
