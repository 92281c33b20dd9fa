import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe } from 'vitest';
import { sqliteStorage } from 'multisession/sqlite';
import { credentialsAtRestCases } from './fixtures/storage/credentials-cases.js';

const dir = mkdtempSync(join(tmpdir(), 'ms-at-rest-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

describe('credentials at rest on SQLite', () => {
  credentialsAtRestCases({
    fresh: () => join(dir, `store-${++n}.db`),
    storage: (filename) => sqliteStorage({ filename }),
    // The database file and its WAL (and shared-memory index), byte for byte.
    dump: async (filename) =>
      ['', '-wal', '-shm']
        .map((suffix) => filename + suffix)
        .filter((f) => existsSync(f))
        .map((f) => readFileSync(f).toString('latin1'))
        .join('\n'),
    sealed: async (filename) => {
      const db = new Database(filename, { readonly: true });
      try {
        const rows = db.prepare('SELECT id, credentials FROM sessions ORDER BY id').all() as { id: string; credentials: string | null }[];
        return Object.fromEntries(rows.map((r) => [r.id, r.credentials]));
      } finally {
        db.close();
      }
    },
  });
});
