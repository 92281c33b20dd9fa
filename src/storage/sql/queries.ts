import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { JsonValue } from '../../types.js';
import type { AuditEntry, AuditQuery, KvEntry, SessionRecord } from '../contract.js';
import { auditFromRow, charLength, kvValueFromText, sessionFromRow, statValue } from './rows.js';
import type { SessionRow, StorageDatabase } from './schema.js';

/**
 * Reads shared by the SQLite and PostgreSQL drivers, written once with Kysely. Writes differ by
 * dialect (SQLite: synchronous `BEGIN IMMEDIATE` transactions; PostgreSQL: multi-row statements
 * in one transaction) and live in each driver.
 */
export type Db = Kysely<StorageDatabase>;

export async function getSession(db: Db, id: string): Promise<SessionRecord | null> {
  const row = await db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? sessionFromRow(row as SessionRow) : null;
}

export async function listSessions(db: Db): Promise<SessionRecord[]> {
  const rows = await db.selectFrom('sessions').selectAll().orderBy('id').execute();
  return rows.map((r) => sessionFromRow(r as SessionRow));
}

export async function kvGet(db: Db, sessionId: string, key: string): Promise<JsonValue | undefined> {
  const row = await db
    .selectFrom('session_kv')
    .select('value')
    .where('session_id', '=', sessionId)
    .where('key', '=', key)
    .executeTakeFirst();
  return row ? kvValueFromText(row.value) : undefined;
}

export async function kvList(db: Db, sessionId: string, prefix?: string): Promise<KvEntry[]> {
  let q = db.selectFrom('session_kv').select(['key', 'value']).where('session_id', '=', sessionId);
  if (prefix) {
    q = q.where('key', '>=', prefix).where(sql<string>`substr(key, 1, ${charLength(prefix)})`, '=', prefix);
  }
  const rows = await q.orderBy('key').execute();
  return rows.map((r) => ({ key: r.key, value: kvValueFromText(r.value) }));
}

export async function getStats(db: Db, sessionId: string): Promise<Record<string, number>> {
  const rows = await db.selectFrom('session_stats').select(['name', 'value']).where('session_id', '=', sessionId).execute();
  const out: Record<string, number> = {};
  for (const r of rows) out[r.name] = statValue(r.value);
  return out;
}

export async function listAudit(db: Db, query: AuditQuery): Promise<AuditEntry[]> {
  const limit = query.limit ?? 100;
  if (limit <= 0) return [];
  let q = db.selectFrom('audit_log').selectAll();
  if (query.sessionId !== undefined) q = q.where('session_id', '=', query.sessionId);
  if (query.action !== undefined) q = q.where('action', '=', query.action);
  if (query.since !== undefined) q = q.where('at', '>=', query.since);
  const rows = await q.orderBy('id', 'desc').limit(Math.floor(limit)).execute();
  return rows.map(auditFromRow);
}
