import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe } from 'vitest';
import { sqliteStorage } from 'multisession/sqlite';
import { persistenceCases } from './fixtures/storage/persistence-cases.js';

const dir = mkdtempSync(join(tmpdir(), 'ms-persist-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

describe('persistence on SQLite (real child processes, SIGKILL)', () => {
  persistenceCases({
    kind: 'sqlite',
    fresh: () => join(dir, `store-${++n}.db`),
    storage: (filename) => sqliteStorage({ filename }),
    rawSet: async (filename, id, column, value) => {
      const db = new Database(filename);
      try {
        db.prepare(`UPDATE sessions SET ${column} = ? WHERE id = ?`).run(value, id);
      } finally {
        db.close();
      }
    },
  });
});
