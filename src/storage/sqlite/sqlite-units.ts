import type { HealthStatus, SessionState } from '../../lifecycle.js';
import * as check from '../unit-checks.js';
import { judgeMoves, receivers, touchedSessions } from '../unit-rules.js';
import { unitNumber, type NewUnitRecord, type UnitMove, type UnitQuery, type UnitRecord, type UnitStore, type UnitWriteOptions, type UnitWriteResult } from '../units-contract.js';
import { jsonText } from '../sql/rows.js';
import { getUnit, listUnits, unitCounts, unitFromRow, type UnitRow } from '../sql/unit-queries.js';
import type { SqliteClient } from './sqlite-client.js';
import { run, wrapAsync, write, type Open } from './sqlite-open.js';
import { addAudit } from './sqlite-session-data.js';

/** The statements of the units capability, prepared once per open database. */
function prepare(db: SqliteClient) {
  return {
    current: db.prepare('SELECT * FROM units WHERE id IN (SELECT value FROM json_each(?))'),
    receiving: db.prepare(
      `SELECT s.id, s.state, s.health, s.capacity, (SELECT count(*) FROM units u WHERE u.session_id = s.id) AS n
       FROM sessions s WHERE s.id IN (SELECT value FROM json_each(?))`,
    ),
    insert: db.prepare('INSERT INTO units (id, num, kind, data, session_id, assigned_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *'),
    place: db.prepare('UPDATE units SET session_id = ?, assigned_at = ? WHERE id = ?'),
    bySession: db.prepare('SELECT * FROM units WHERE session_id = ? ORDER BY id'),
    remove: db.prepare('DELETE FROM units WHERE id = ? RETURNING *'),
  };
}
type Statements = ReturnType<typeof prepare>;
const prepared = new WeakMap<SqliteClient, Statements>();

/**
 * The `units` capability of the SQLite driver: every write reads what its checks need and
 * writes inside one synchronous `BEGIN IMMEDIATE` transaction, so no other write can come between.
 */
export class SqliteUnits implements UnitStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  #s(p: Open): Statements {
    let s = prepared.get(p.c.db);
    if (!s) prepared.set(p.c.db, (s = prepare(p.c.db)));
    return s;
  }

  /** Runs the checks of `moves` inside the transaction: the problem, or null (and the units' rows as they are). */
  #judge(p: Open, s: Statements, moves: UnitMove[], options: UnitWriteOptions, mustExist: boolean, rows = new Map<string, UnitRow>()) {
    for (const r of s.current.all(JSON.stringify(moves.map((m) => m.id))) as UnitRow[]) rows.set(r.id, r);
    const current = { get: (id: string) => rows.get(id)?.session_id };
    type Receiving = { id: string; state: SessionState; health: HealthStatus; capacity: number | null; n: number };
    const targets = new Map((s.receiving.all(JSON.stringify(receivers(moves))) as Receiving[]).map((r) => [r.id, r]));
    return judgeMoves(moves, (id) => current.get(id), (id) => targets.get(id), (id) => targets.get(id)?.n ?? 0, options.accept, mustExist);
  }

  #finish(p: Open, _s: Statements, moves: UnitMove[], options: UnitWriteOptions): void {
    for (const id of touchedSessions(moves)) p.s.changeAdd.run(id);
    // One prepared insert per entry: faster in better-sqlite3 than one statement over a JSON array.
    for (const e of options.audit ?? []) addAudit(p, e);
  }

  async add(input: NewUnitRecord[], options: UnitWriteOptions): Promise<UnitWriteResult> {
    const p = this.#open();
    const units = check.checkNewUnits(input);
    check.checkUnitWriteOptions(options);
    const moves = units.map((u) => ({ id: u.id, from: null, to: u.sessionId }));
    return write('addUnits', p, (): UnitWriteResult => {
      const s = this.#s(p);
      const problem = this.#judge(p, s, moves, options, false);
      if (problem) return { ok: false, problem };
      const out = units.map((u) =>
        unitFromRow(s.insert.get(u.id, unitNumber(u.id), u.kind, jsonText(u.data), u.sessionId, u.sessionId === null ? null : options.at, u.createdAt) as UnitRow),
      );
      this.#finish(p, s, moves, options);
      return { ok: true, units: out };
    });
  }

  async move(input: UnitMove[], options: UnitWriteOptions): Promise<UnitWriteResult> {
    const p = this.#open();
    const moves = check.checkMoves(input);
    check.checkUnitWriteOptions(options);
    return write('moveUnits', p, (): UnitWriteResult => {
      const s = this.#s(p);
      const rows = new Map<string, UnitRow>();
      const problem = this.#judge(p, s, moves, options, true, rows);
      if (problem) return { ok: false, problem };
      for (const m of moves) if (m.to !== m.from) s.place.run(m.to, m.to === null ? null : options.at, m.id);
      // The rows read by the checks, with what the update changed (no second read).
      const out = moves.map((m) => {
        const u = unitFromRow(rows.get(m.id)!);
        if (m.to !== m.from) {
          u.sessionId = m.to;
          u.assignedAt = m.to === null ? null : options.at;
        }
        return u;
      });
      this.#finish(p, s, moves, options);
      return { ok: true, units: out };
    });
  }

  async remove(input: string[], options: UnitWriteOptions): Promise<UnitWriteResult> {
    const p = this.#open();
    const ids = check.checkUnitIds(input);
    check.checkUnitWriteOptions(options);
    return write('removeUnits', p, (): UnitWriteResult => {
      const s = this.#s(p);
      const found = new Set((s.current.all(JSON.stringify(ids)) as { id: string }[]).map((r) => r.id));
      const missing = ids.find((id) => !found.has(id));
      if (missing !== undefined) return { ok: false, problem: { kind: 'unit-missing', unitId: missing } };
      const out = ids.map((id) => unitFromRow(s.remove.get(id) as UnitRow));
      this.#finish(p, s, out.map((u) => ({ id: u.id, from: u.sessionId, to: null })), options);
      return { ok: true, units: out };
    });
  }

  async get(id: string): Promise<UnitRecord | null> {
    return wrapAsync('getUnit', getUnit(this.#open().kysely, check.checkUnitId(id)));
  }

  async list(query: UnitQuery): Promise<UnitRecord[]> {
    const q = check.checkUnitQuery(query);
    const p = this.#open();
    // A session's units (the hot read of moves and refreshes): one prepared statement.
    if (q.sessionId !== undefined && Object.keys(q).length === 2 && q.limit === Number.MAX_SAFE_INTEGER) {
      return run('listUnits', () => (this.#s(p).bySession.all(q.sessionId) as UnitRow[]).map(unitFromRow));
    }
    return wrapAsync('listUnits', listUnits(p.kysely, q));
  }

  async counts(): Promise<Record<string, number>> {
    return wrapAsync('unitCounts', unitCounts(this.#open().kysely));
  }
}
