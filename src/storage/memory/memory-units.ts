import { cloneJson } from '../../types.js';
import type { AuditInput, SessionRecord } from '../contract.js';
import * as check from '../unit-checks.js';
import { judgeMoves } from '../unit-rules.js';
import { unitNumber, type NewUnitRecord, type UnitMove, type UnitQuery, type UnitRecord, type UnitStore, type UnitWriteOptions, type UnitWriteResult } from '../units-contract.js';
import { byKey } from './memory-sessions.js';

/** The units of one memory store, with an index of each session's units. */
export class MemoryUnitData {
  readonly units = new Map<string, UnitRecord>();
  readonly bySession = new Map<string, Set<string>>();

  place(unit: UnitRecord, sessionId: string | null, at: number | null): void {
    if (unit.sessionId !== null) {
      const set = this.bySession.get(unit.sessionId);
      set?.delete(unit.id);
      if (set?.size === 0) this.bySession.delete(unit.sessionId);
    }
    unit.sessionId = sessionId;
    unit.assignedAt = sessionId === null ? null : at;
    if (sessionId !== null) (this.bySession.get(sessionId) ?? this.bySession.set(sessionId, new Set()).get(sessionId)!).add(unit.id);
  }

  /** A deleted session's units become unassigned. */
  release(sessionId: string): void {
    for (const id of this.bySession.get(sessionId) ?? []) {
      const u = this.units.get(id)!;
      u.sessionId = null;
      u.assignedAt = null;
    }
    this.bySession.delete(sessionId);
  }
}

const copy = (u: UnitRecord): UnitRecord => ({ id: u.id, kind: u.kind, data: cloneJson(u.data), sessionId: u.sessionId, assignedAt: u.assignedAt, createdAt: u.createdAt });

/** The `units` capability of the memory driver: each write checks and applies in one synchronous step. */
export class MemoryUnits implements UnitStore {
  readonly #data: MemoryUnitData;
  readonly #sessions: Map<string, SessionRecord>;
  readonly #audit: (entry: AuditInput) => void;

  constructor(data: MemoryUnitData, sessions: Map<string, SessionRecord>, audit: (entry: AuditInput) => void) {
    this.#data = data;
    this.#sessions = sessions;
    this.#audit = audit;
  }

  #judge(moves: UnitMove[], options: UnitWriteOptions, mustExist: boolean) {
    const d = this.#data;
    return judgeMoves(
      moves,
      (id) => d.units.get(id)?.sessionId,
      (id) => this.#sessions.get(id),
      (id) => d.bySession.get(id)?.size ?? 0,
      options.accept,
      mustExist,
    );
  }

  #audited(options: UnitWriteOptions): void {
    for (const e of options.audit ?? []) this.#audit(e);
  }

  async add(input: NewUnitRecord[], options: UnitWriteOptions): Promise<UnitWriteResult> {
    const units = check.checkNewUnits(input);
    check.checkUnitWriteOptions(options);
    const problem = this.#judge(units.map((u) => ({ id: u.id, from: null, to: u.sessionId })), options, false);
    if (problem) return { ok: false, problem };
    const out: UnitRecord[] = [];
    for (const u of units) {
      const stored: UnitRecord = { id: u.id, kind: u.kind, data: cloneJson(u.data), sessionId: null, assignedAt: null, createdAt: u.createdAt };
      this.#data.units.set(u.id, stored);
      this.#data.place(stored, u.sessionId, options.at);
      out.push(copy(stored));
    }
    this.#audited(options);
    return { ok: true, units: out };
  }

  async move(input: UnitMove[], options: UnitWriteOptions): Promise<UnitWriteResult> {
    const moves = check.checkMoves(input);
    check.checkUnitWriteOptions(options);
    const problem = this.#judge(moves, options, true);
    if (problem) return { ok: false, problem };
    const out: UnitRecord[] = [];
    for (const m of moves) {
      const stored = this.#data.units.get(m.id)!;
      if (m.to !== m.from) this.#data.place(stored, m.to, options.at);
      out.push(copy(stored));
    }
    this.#audited(options);
    return { ok: true, units: out };
  }

  async remove(input: string[], options: UnitWriteOptions): Promise<UnitWriteResult> {
    const ids = check.checkUnitIds(input);
    check.checkUnitWriteOptions(options);
    const missing = ids.find((id) => !this.#data.units.has(id));
    if (missing !== undefined) return { ok: false, problem: { kind: 'unit-missing', unitId: missing } };
    const out: UnitRecord[] = [];
    for (const id of ids) {
      const stored = this.#data.units.get(id)!;
      out.push(copy(stored));
      this.#data.place(stored, null, null);
      this.#data.units.delete(id);
    }
    this.#audited(options);
    return { ok: true, units: out };
  }

  async get(id: string): Promise<UnitRecord | null> {
    const u = this.#data.units.get(check.checkUnitId(id));
    return u ? copy(u) : null;
  }

  async list(query: UnitQuery): Promise<UnitRecord[]> {
    const q = check.checkUnitQuery(query);
    const d = this.#data;
    let ids: Iterable<string>;
    if (q.ids) ids = q.ids;
    else if (q.sessionId !== undefined) ids = d.bySession.get(q.sessionId) ?? [];
    else ids = d.units.keys();
    const picked: UnitRecord[] = [];
    for (const id of ids) {
      const u = d.units.get(id);
      if (!u) continue;
      if (q.sessionId !== undefined && u.sessionId !== q.sessionId) continue;
      if (q.unassigned && u.sessionId !== null) continue;
      if (q.kind !== undefined && u.kind !== q.kind) continue;
      if (q.after !== undefined && !(u.id > q.after)) continue;
      if (q.range) {
        const n = unitNumber(u.id);
        if (n === null || n < q.range[0] || n > q.range[1]) continue;
      }
      picked.push(u);
    }
    picked.sort((a, b) => byKey(a.id, b.id));
    return picked.slice(0, q.limit).map(copy);
  }

  async counts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const [id, set] of this.#data.bySession) out[id] = set.size;
    return out;
  }
}
