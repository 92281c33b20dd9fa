import { sql } from 'kysely';
import type { Transaction } from 'kysely';
import type { HealthStatus, SessionState } from '../../lifecycle.js';
import type { AuditInput } from '../contract.js';
import * as check from '../unit-checks.js';
import { judgeMoves, receivers, touchedSessions } from '../unit-rules.js';
import { unitNumber, type NewUnitRecord, type UnitMove, type UnitProblem, type UnitQuery, type UnitRecord, type UnitStore, type UnitWriteOptions, type UnitWriteResult } from '../units-contract.js';
import { jsonText } from '../sql/rows.js';
import type { StorageDatabase } from '../sql/schema.js';
import { getUnit, listUnits, unitCounts, unitFromRow, type UnitRow } from '../sql/unit-queries.js';
import { changeLock } from './postgres-cluster-sql.js';
import type { PostgresSqlScope } from './postgres-kysely.js';

type Trx = Transaction<StorageDatabase>;

/** Thrown inside a transaction to roll it back with the problem found. */
class Refused {
  constructor(readonly problem: UnitProblem) {}
}

/**
 * The `units` capability of the PostgreSQL driver. A write locks the sessions that receive units
 * (`FOR NO KEY UPDATE`, in id order: two writes onto one session run one after the other, so its
 * capacity holds), counts their units, checks, then changes every unit in one statement over
 * `unnest` arrays whose `WHERE` is the compare-and-swap on each unit's session; when fewer rows
 * match than were asked for, it finds out why and rolls back. Audit entries and change rows are
 * inserted in the same transaction.
 */
export class PostgresUnits implements UnitStore {
  readonly #scope: PostgresSqlScope;
  constructor(scope: PostgresSqlScope) {
    this.#scope = scope;
  }

  /** The checks of the sessions that receive units (each unit assumed where the move says; the write checks that). */
  async #judge(trx: Trx, moves: UnitMove[], options: UnitWriteOptions, mustExist: boolean): Promise<UnitProblem | null> {
    const targets = receivers(moves).sort();
    type Receiving = { id: string; state: SessionState; health: HealthStatus; capacity: number | null; n: number | string };
    const rows = targets.length
      ? (
          await sql<Receiving>`
            with locked as (
              select id, state, health, capacity from ${this.#scope.table('sessions')} where id = any(${targets}::text[]) order by id for no key update
            )
            select l.*, (select count(*) from ${this.#scope.table('units')} u where u.session_id = l.id) as n from locked l`.execute(trx)
        ).rows
      : [];
    const found = new Map(rows.map((r) => [r.id, { ...r, n: Number(r.n) }]));
    const from = new Map(moves.map((m) => [m.id, m.from]));
    return judgeMoves(moves, (id) => (mustExist ? from.get(id) : undefined), (id) => found.get(id), (id) => found.get(id)?.n ?? 0, options.accept, mustExist);
  }

  async #finish(trx: Trx, moves: UnitMove[], audit: AuditInput[] | undefined): Promise<void> {
    if (audit?.length) {
      await sql`
        insert into ${this.#scope.table('audit_log')} (at, session_id, action, actor, details)
        select u.at, u.session_id, u.action, u.actor, u.details
        from unnest(
          ${audit.map((e) => e.at)}::bigint[], ${audit.map((e) => e.sessionId)}::text[], ${audit.map((e) => e.action)}::text[],
          ${audit.map((e) => e.actor)}::text[], ${audit.map((e) => jsonText(e.details))}::text[]
        ) with ordinality as u(at, session_id, action, actor, details, ord)
        order by u.ord`.execute(trx);
    }
    const touched = touchedSessions(moves);
    if (touched.length) {
      await sql`
        insert into ${this.#scope.table('session_changes')} (session_id)
        select u.id from unnest(${touched}::text[]) with ordinality as u(id, n)
        where ${sql.raw(changeLock(this.#scope.schema))} is not null order by u.n`.execute(trx);
    }
  }

  /** One transaction whose `Refused` becomes the outcome. */
  async #write(operation: string, fn: (trx: Trx) => Promise<UnitRecord[]>): Promise<UnitWriteResult> {
    try {
      return { ok: true, units: await this.#scope.tx(operation, fn) };
    } catch (error) {
      const refused = error instanceof Refused ? error : (error as { cause?: unknown })?.cause instanceof Refused ? ((error as { cause: Refused }).cause) : null;
      if (refused) return { ok: false, problem: refused.problem };
      throw error;
    }
  }

  async add(input: NewUnitRecord[], options: UnitWriteOptions): Promise<UnitWriteResult> {
    const units = check.checkNewUnits(input);
    check.checkUnitWriteOptions(options);
    const moves = units.map((u) => ({ id: u.id, from: null, to: u.sessionId }));
    return this.#write('addUnits', async (trx) => {
      const problem = await this.#judge(trx, moves, options, false);
      if (problem) throw new Refused(problem);
      const { rows } = await sql<UnitRow>`
        insert into ${this.#scope.table('units')} (id, num, kind, data, session_id, assigned_at, created_at)
        select u.id, u.num, u.kind, u.data, u.session_id, case when u.session_id is null then null else ${options.at}::bigint end, u.created_at
        from unnest(
          ${units.map((u) => u.id)}::text[], ${units.map((u) => unitNumber(u.id))}::bigint[], ${units.map((u) => u.kind)}::text[],
          ${units.map((u) => jsonText(u.data))}::text[], ${units.map((u) => u.sessionId)}::text[], ${units.map((u) => u.createdAt)}::bigint[]
        ) as u(id, num, kind, data, session_id, created_at)
        on conflict (id) do nothing
        returning *`.execute(trx);
      if (rows.length !== units.length) {
        const added = new Set(rows.map((r) => r.id));
        throw new Refused({ kind: 'unit-exists', unitId: units.find((u) => !added.has(u.id))!.id });
      }
      await this.#finish(trx, moves, options.audit);
      return inOrder(units, rows);
    });
  }

  async move(input: UnitMove[], options: UnitWriteOptions): Promise<UnitWriteResult> {
    const moves = check.checkMoves(input);
    check.checkUnitWriteOptions(options);
    return this.#write('moveUnits', async (trx) => {
      const problem = await this.#judge(trx, moves, options, true);
      if (problem) throw new Refused(problem);
      const sorted = [...moves].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)); // row lock order
      const { rows } = await sql<UnitRow>`
        update ${this.#scope.table('units')} as u
        set session_id = m.to_id,
            assigned_at = case when m.to_id is not distinct from m.from_id then u.assigned_at when m.to_id is null then null else ${options.at}::bigint end
        from unnest(${sorted.map((m) => m.id)}::text[], ${sorted.map((m) => m.from)}::text[], ${sorted.map((m) => m.to)}::text[]) as m(id, from_id, to_id)
        where u.id = m.id and u.session_id is not distinct from m.from_id
        returning u.*`.execute(trx);
      if (rows.length !== moves.length) throw new Refused(await this.#lost(trx, moves, rows));
      await this.#finish(trx, moves, options.audit);
      return inOrder(moves, rows);
    });
  }

  /** Why a move's compare-and-swap matched fewer units than it named. */
  async #lost(trx: Trx, moves: UnitMove[], rows: UnitRow[]): Promise<UnitProblem> {
    const done = new Set(rows.map((r) => r.id));
    const first = moves.find((m) => !done.has(m.id))!;
    const now = await trx.selectFrom('units').select('session_id').where('id', '=', first.id).executeTakeFirst();
    return now ? { kind: 'unit-moved', unitId: first.id, sessionId: now.session_id } : { kind: 'unit-missing', unitId: first.id };
  }

  async remove(input: string[], options: UnitWriteOptions): Promise<UnitWriteResult> {
    const ids = check.checkUnitIds(input);
    check.checkUnitWriteOptions(options);
    return this.#write('removeUnits', async (trx) => {
      const { rows } = await sql<UnitRow>`delete from ${this.#scope.table('units')} where id = any(${ids}::text[]) returning *`.execute(trx);
      if (rows.length !== ids.length) {
        const gone = new Set(rows.map((r) => r.id));
        throw new Refused({ kind: 'unit-missing', unitId: ids.find((id) => !gone.has(id))! });
      }
      await this.#finish(trx, rows.map((r) => ({ id: r.id, from: r.session_id, to: null })), options.audit);
      return inOrder(ids.map((id) => ({ id })), rows);
    });
  }

  async get(id: string): Promise<UnitRecord | null> {
    return this.#scope.wrap('getUnit', getUnit(this.#scope.db, check.checkUnitId(id)));
  }

  async list(query: UnitQuery): Promise<UnitRecord[]> {
    return this.#scope.wrap('listUnits', listUnits(this.#scope.db, check.checkUnitQuery(query)));
  }

  async counts(): Promise<Record<string, number>> {
    return this.#scope.wrap('unitCounts', unitCounts(this.#scope.db));
  }
}

/** The returned rows in the order the write named their units. */
function inOrder(named: readonly { id: string }[], rows: UnitRow[]): UnitRecord[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  return named.map((n) => unitFromRow(byId.get(n.id)!));
}
