import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe } from 'vitest';
import { sqliteStorage } from 'multisession/sqlite';
import { storedDataAtRestCases } from './fixtures/storage/stored-data-cases.js';

const dir = mkdtempSync(join(tmpdir(), 'ms-data-at-rest-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A second connection to the file, as another program would open it. */
function withDb<T>(filename: string, fn: (db: Database.Database) => T): T {
  const db = new Database(filename);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

describe('auth state and context data at rest on SQLite', () => {
  storedDataAtRestCases({
    fresh: () => join(dir, `store-${++n}.db`),
    storage: (filename) => sqliteStorage({ filename }),
    // The database file and its WAL (and shared-memory index), byte for byte.
    dump: async (filename) =>
      ['', '-wal', '-shm']
        .map((suffix) => filename + suffix)
        .filter((f) => existsSync(f))
        .map((f) => readFileSync(f).toString('latin1'))
        .join('\n'),
    kvRows: async (filename) =>
      withDb(filename, (db) => db.prepare('SELECT session_id AS sessionId, key, value FROM session_kv ORDER BY session_id, key').all() as { sessionId: string; key: string; value: string }[]),
    copyValue: async (filename, [fromId, fromKey], [toId, toKey]) =>
      withDb(filename, (db) => {
        db.pragma('busy_timeout = 5000');
        db.prepare(
          'INSERT INTO session_kv (session_id, key, value) SELECT ?, ?, value FROM session_kv WHERE session_id = ? AND key = ? ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value',
        ).run(toId, toKey, fromId, fromKey);
      }),
  });
});
