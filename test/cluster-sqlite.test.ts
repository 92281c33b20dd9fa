import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe } from 'vitest';
import { clusterCases } from './fixtures/cluster/cases.js';

describe('cluster on one SQLite file (real processes)', () => {
  clusterCases(
    'sqlite',
    (dir) => join(dir, 'cluster.db'),
    async (file, sql) => {
      const db = new Database(file, { readonly: true });
      try {
        return Number((db.prepare(sql).get() as { n: number }).n);
      } finally {
        db.close();
      }
    },
  );
});
