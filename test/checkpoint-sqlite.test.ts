import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpoint } from 'multisession';
import { checkpointConformanceSuite } from 'multisession/testing';
import { createSqliteCheckpointBackend } from '../src/checkpoint/sqlite-backend.js';

const dir = mkdtempSync(join(tmpdir(), 'ms-checkpoint-sqlite-'));
const file = join(dir, 'checkpoint.db');
const db = new Database(file, { timeout: 10_000 });
const backend = createSqliteCheckpointBackend(db);
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

checkpointConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  async () => ({ storage: backend }),
  { name: 'sqlite' },
);

describe('sqlite checkpoint on one file from two connections', () => {
  it('uses WAL, creates its tables idempotently, and both connections see one stream', async () => {
    const other = new Database(file, { timeout: 10_000 });
    try {
      const a = createCheckpoint({ storage: backend, stream: 'shared' });
      const b = createCheckpoint({ storage: createSqliteCheckpointBackend(other), stream: 'shared' });
      await Promise.all([a.stats(), b.stats()]);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      await a.add([{ key: 'm1' }, { key: 'm2' }]);
      const [lease] = await b.claim({ owner: 'b', limit: 1, leaseMs: 10_000 });
      expect(lease?.key).toBe('m1');
      expect(await a.claimKey('m1', { owner: 'a' })).toBeNull();
      const mine = await a.claimKey('m2', { owner: 'a' });
      expect(mine!.token).toBeGreaterThan(lease!.token);
      await b.complete(lease!);
      await a.complete(mine!);
      expect((await b.stats()).done).toBe(2);
      const plan = db
        .prepare(
          `EXPLAIN QUERY PLAN SELECT seq FROM checkpoint_items WHERE stream = ? AND status IN ('pending','failed','processing') AND avail_at <= ? ORDER BY priority DESC, avail_at LIMIT 5`,
        )
        .all('shared', Date.now()) as { detail: string }[];
      expect(plan.map((p) => p.detail).join(' ')).toContain('checkpoint_items_claimable');
    } finally {
      other.close();
    }
  });
});
