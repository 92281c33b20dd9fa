import type { JsonValue } from '../../types.js';
import type { CheckedUnitQuery } from '../unit-checks.js';
import type { UnitRecord } from '../units-contract.js';
import type { Db } from './queries.js';
import { toNullableNumber } from './rows.js';

/** The reads of the `units` capability, written once for both SQL drivers. */

export interface UnitRow {
  id: string;
  num: number | string | null;
  kind: string;
  data: string;
  session_id: string | null;
  assigned_at: number | string | null;
  created_at: number | string;
}

export function unitFromRow(r: UnitRow): UnitRecord {
  // A deleted session's units lose their session by the foreign key (ON DELETE SET NULL); assigned_at stays behind, unread.
  let data: JsonValue;
  try {
    data = JSON.parse(r.data) as JsonValue;
  } catch {
    data = null;
  }
  return { id: r.id, kind: r.kind, data, sessionId: r.session_id, assignedAt: r.session_id === null ? null : toNullableNumber(r.assigned_at), createdAt: Number(r.created_at) };
}

export async function getUnit(db: Db, id: string): Promise<UnitRecord | null> {
  const row = await db.selectFrom('units').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? unitFromRow(row as UnitRow) : null;
}

/** Ids asked for at once in one statement (SQLite's parameter limit). */
const ID_CHUNK = 5_000;

export async function listUnits(db: Db, q: CheckedUnitQuery): Promise<UnitRecord[]> {
  if (q.ids && q.ids.length > ID_CHUNK) {
    const parts: UnitRecord[] = [];
    for (let i = 0; i < q.ids.length; i += ID_CHUNK) parts.push(...(await listUnits(db, { ...q, ids: q.ids.slice(i, i + ID_CHUNK) })));
    return parts.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, q.limit);
  }
  if (q.ids && q.ids.length === 0) return [];
  let s = db.selectFrom('units').selectAll();
  if (q.ids) s = s.where('id', 'in', q.ids as string[]);
  if (q.sessionId !== undefined) s = s.where('session_id', '=', q.sessionId);
  if (q.unassigned) s = s.where('session_id', 'is', null);
  if (q.kind !== undefined) s = s.where('kind', '=', q.kind);
  if (q.range) s = s.where('num', '>=', q.range[0]).where('num', '<=', q.range[1]);
  if (q.after !== undefined) s = s.where('id', '>', q.after);
  s = s.orderBy('id');
  if (q.limit < Number.MAX_SAFE_INTEGER) s = s.limit(q.limit);
  const rows = await s.execute();
  return rows.map((r) => unitFromRow(r as UnitRow));
}

export async function unitCounts(db: Db): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom('units')
    .select(['session_id', db.fn.countAll<number | string>().as('n')])
    .where('session_id', 'is not', null)
    .groupBy('session_id')
    .execute();
  const out: Record<string, number> = {};
  for (const r of rows) out[r.session_id!] = Number(r.n);
  return out;
}
