import type { NewSessionRecord } from '../contract.js';
import { sessionToRow } from '../sql/rows.js';
import type { SqliteClient, SqliteStatement } from './sqlite-client.js';

/**
 * The statements of the SQLite storage driver, prepared once per open database. Writes run them
 * inside one synchronous `BEGIN IMMEDIATE` transaction; the hot per-session reads (made per
 * session on restore and from adapters) run them directly, without a trip through the query
 * builder.
 */
export type SqliteStatements = ReturnType<typeof prepareStatements>;

/** A record used only to learn the column list of an insert. */
const SAMPLE: NewSessionRecord = {
  id: '',
  platform: '',
  config: {},
  labels: {},
  metadata: null,
  priority: 0,
  capacity: null,
  autoStart: false,
  idleTimeoutMs: null,
  allowSharedCredentials: false,
  desiredState: 'stopped',
  credentials: null,
  credentialsFingerprint: null,
  state: 'stopped',
  health: 'unknown',
  lastError: null,
  lastActivityAt: null,
  createdAt: 0,
  updatedAt: 0,
};

export function prepareStatements(db: SqliteClient) {
  const columns = Object.keys(sessionToRow('sqlite', SAMPLE));
  const updates = new Map<string, SqliteStatement>();
  return {
    byId: db.prepare('SELECT * FROM sessions WHERE id = ?'),
    exists: db.prepare('SELECT 1 FROM sessions WHERE id = ?'),
    countUpTo: db.prepare('SELECT count(*) AS n FROM (SELECT 1 FROM sessions LIMIT ?)'),
    duplicate: db.prepare('SELECT id FROM sessions WHERE credentials_fingerprint = ? AND id <> ? ORDER BY id LIMIT 1'),
    insert: db.prepare(`INSERT INTO sessions (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')}) RETURNING *`),
    delete: db.prepare('DELETE FROM sessions WHERE id = ?'),
    status: db.prepare(
      `UPDATE sessions SET state = coalesce(@state, state), health = coalesce(@health, health),
         last_error = CASE WHEN @set_error THEN @last_error ELSE last_error END,
         last_activity_at = CASE WHEN @set_activity THEN @last_activity_at ELSE last_activity_at END
       WHERE id = @id`,
    ),
    rewriteCredentials: db.prepare(
      `UPDATE sessions SET credentials = ?, credentials_fingerprint = ?, updated_at = ?, version = version + 1
       WHERE id = ? AND version = ? RETURNING *`,
    ),
    kvSet: db.prepare(
      'INSERT INTO session_kv (session_id, key, value) VALUES (?, ?, ?) ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value',
    ),
    kvDelete: db.prepare('DELETE FROM session_kv WHERE session_id = ? AND key = ?'),
    kvClearAll: db.prepare('DELETE FROM session_kv WHERE session_id = ?'),
    kvClearPrefix: db.prepare('DELETE FROM session_kv WHERE session_id = ? AND key >= ? AND substr(key, 1, ?) = ?'),
    statAdd: db.prepare(
      `INSERT INTO session_stats (session_id, name, value) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?)
       ON CONFLICT (session_id, name) DO UPDATE SET value = value + excluded.value`,
    ),
    transitionAdd: db.prepare(
      `INSERT INTO session_transitions (session_id, from_state, to_state, reason, at)
       SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?)`,
    ),
    transitionTrim: db.prepare(
      `DELETE FROM session_transitions WHERE session_id = ? AND id <= (
         SELECT id FROM session_transitions WHERE session_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
    ),
    ownerToken: db.prepare('SELECT token FROM session_owners WHERE session_id = ?'),
    changeAdd: db.prepare('INSERT INTO session_changes (session_id) VALUES (?)'),
    auditAdd: db.prepare('INSERT INTO audit_log (at, session_id, action, actor, details) VALUES (?, ?, ?, ?, ?)'),
    auditPrune: db.prepare('DELETE FROM audit_log WHERE at < ?'),
    kvGet: db.prepare('SELECT value FROM session_kv WHERE session_id = ? AND key = ?'),
    kvListAll: db.prepare('SELECT key, value FROM session_kv WHERE session_id = ? ORDER BY key'),
    kvListPrefix: db.prepare('SELECT key, value FROM session_kv WHERE session_id = ? AND key >= ? AND substr(key, 1, ?) = ? ORDER BY key'),
    stats: db.prepare('SELECT name, value FROM session_stats WHERE session_id = ?'),
    transitions: db.prepare(
      'SELECT session_id, from_state, to_state, reason, at FROM session_transitions WHERE session_id = ? ORDER BY id DESC LIMIT ?',
    ),
    /** The compare-and-swap update of the given columns (one statement per column set, cached). */
    update(columnNames: string[]): SqliteStatement {
      const key = columnNames.join(',');
      let stmt = updates.get(key);
      if (!stmt) {
        stmt = db.prepare(
          `UPDATE sessions SET ${columnNames.map((c) => `${c} = @${c}`).join(', ')}, version = version + 1
           WHERE id = @where_id AND version = @where_version RETURNING *`,
        );
        updates.set(key, stmt);
      }
      return stmt;
    },
  };
}
