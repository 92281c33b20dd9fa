import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createCheckpoint } from 'multisession';
import type { CheckpointItem } from 'multisession';
import { sqliteCheckpoint } from 'multisession/sqlite';

const dir = mkdtempSync(join(tmpdir(), 'ms-cp-sqlite-migration-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const OLD_PREDICATE = "status IN ('pending', 'failed', 'processing')";
const indexSql = (db: Database.Database) =>
  (db.prepare("SELECT sql FROM sqlite_master WHERE name = 'checkpoint_items_claimable'").get() as { sql: string }).sql;

describe('checkpoint migration 0002 (SQLite): the claimable index gets a cheaper predicate', () => {
  it('upgrades a database at 0001 in place: every item in every status reads back the same, and claims use the index', async () => {
    const filename = join(dir, 'at-0001.db');
    // A database as 0001 left it: its index predicate, only 0001 recorded.
    const first = sqliteCheckpoint({ filename });
    await first.init();
    await first.close();
    const now = Date.now();
    const raw = new Database(filename);
    try {
      raw.exec(`DROP INDEX checkpoint_items_claimable;
        CREATE INDEX checkpoint_items_claimable ON checkpoint_items (stream, priority DESC, avail_at, status) WHERE ${OLD_PREDICATE};
        DELETE FROM multisession_checkpoint_migration WHERE name <> '0001_checkpoint';`);
      raw.prepare('INSERT INTO checkpoint_streams (id, name, fence) VALUES (1, ?, 7)').run('jobs');
      // Rows as the previous version wrote them (a completion wrote completed_at and avail_at).
      const insert = raw.prepare(`INSERT INTO checkpoint_items
        (stream, key, status, priority, payload, result, error, attempts, owner, token, run_at, avail_at, created_at, updated_at, completed_at)
        VALUES (1, @key, @status, @priority, @payload, @result, @error, @attempts, @owner, @token, @run_at, @avail_at, @created_at, @updated_at, @completed_at)`);
      const row = { priority: 0, payload: null, result: null, error: null, attempts: 0, owner: null, token: 0, completed_at: null };
      insert.run({ ...row, key: 'pending', status: 'pending', priority: 3, payload: '{"n":1}', run_at: now - 50, avail_at: now - 50, created_at: now - 60, updated_at: now - 60 });
      insert.run({ ...row, key: 'processing', status: 'processing', attempts: 1, owner: 'w', token: 5, run_at: now - 40, avail_at: now + 60_000, created_at: now - 40, updated_at: now - 30 });
      insert.run({ ...row, key: 'done', status: 'done', result: '{"ok":true}', owner: 'w', token: 6, run_at: now - 30, avail_at: now - 10, created_at: now - 30, updated_at: now - 10, completed_at: now - 10 });
      insert.run({ ...row, key: 'failed', status: 'failed', error: 'boom', attempts: 1, owner: 'w', token: 4, run_at: now + 5_000, avail_at: now + 5_000, created_at: now - 20, updated_at: now - 5 });
      insert.run({ ...row, key: 'dead', status: 'dead', error: 'gave up', attempts: 5, token: 7, run_at: now - 1, avail_at: now - 1, created_at: now - 90, updated_at: now - 1 });
    } finally {
      raw.close();
    }
    // What get() returned for these rows before the upgrade (the previous version's mapping of a row).
    const item = (key: string, o: Partial<CheckpointItem>): CheckpointItem => ({
      key, status: 'pending', payload: null, priority: 0, attempts: 0, runAt: 0, owner: null, token: 0,
      leaseExpiresAt: null, result: null, error: null, createdAt: 0, updatedAt: 0, completedAt: null, ...o,
    });
    const expected: CheckpointItem[] = [
      item('pending', { priority: 3, payload: { n: 1 }, runAt: now - 50, createdAt: now - 60, updatedAt: now - 60 }),
      item('processing', { status: 'processing', attempts: 1, owner: 'w', token: 5, runAt: now - 40, leaseExpiresAt: now + 60_000, createdAt: now - 40, updatedAt: now - 30 }),
      item('done', { status: 'done', result: { ok: true }, owner: 'w', token: 6, runAt: now - 30, createdAt: now - 30, updatedAt: now - 10, completedAt: now - 10 }),
      item('failed', { status: 'failed', error: 'boom', attempts: 1, owner: 'w', token: 4, runAt: now + 5_000, createdAt: now - 20, updatedAt: now - 5 }),
      item('dead', { status: 'dead', error: 'gave up', attempts: 5, token: 7, runAt: now - 1, createdAt: now - 90, updatedAt: now - 1 }),
    ];

    const store = sqliteCheckpoint({ filename });
    await store.init();
    const checkpoint = createCheckpoint({ storage: store, stream: 'jobs' });
    for (const want of expected) expect(await checkpoint.get(want.key)).toEqual(want);
    expect((await checkpoint.list({ limit: 10 })).items).toEqual([...expected].sort((a, b) => (a.key < b.key ? -1 : 1)));
    expect(await checkpoint.stats()).toMatchObject({ pending: 1, processing: 1, done: 1, failed: 1, dead: 1, total: 5 });

    // The claim takes the pending item (the failed one waits for its retry time) with a larger token.
    const [lease] = await checkpoint.claim({ owner: 'x' });
    expect(lease).toMatchObject({ key: 'pending', payload: { n: 1 }, priority: 3 });
    expect(lease!.token).toBeGreaterThan(7);
    await checkpoint.complete(lease!, { fine: 1 });
    const done = await checkpoint.get('pending');
    expect(done).toMatchObject({ status: 'done', result: { fine: 1 } });
    expect(done!.completedAt).toBe(done!.updatedAt);
    await store.close();

    const db = new Database(filename);
    try {
      expect(db.prepare('SELECT name FROM multisession_checkpoint_migration ORDER BY name').all()).toEqual([
        { name: '0001_checkpoint' },
        { name: '0002_cheap_claimable_predicate' },
      ]);
      expect(indexSql(db)).toContain("status NOT IN ('done', 'dead')");
      expect(indexSql(db)).not.toContain(OLD_PREDICATE);
      // The claim's own words let the planner use the partial index, as a covering index.
      const plan = db
        .prepare(`EXPLAIN QUERY PLAN SELECT seq FROM checkpoint_items WHERE stream = 1 AND status NOT IN ('done', 'dead') AND avail_at <= 0 ORDER BY priority DESC, avail_at LIMIT 5`)
        .all() as { detail: string }[];
      expect(plan.map((p) => p.detail).join(' ')).toContain('COVERING INDEX checkpoint_items_claimable');
    } finally {
      db.close();
    }
  });
});
