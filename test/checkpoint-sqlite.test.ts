import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpoint } from 'multisession';
import { sqliteCheckpoint } from 'multisession/sqlite';
import { checkpointConformanceSuite } from 'multisession/testing';
import { fixture, runTs } from './fixtures/storage/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ms-checkpoint-sqlite-'));
const file = join(dir, 'checkpoint.db');
const db = new Database(file, { timeout: 10_000 });
const store = sqliteCheckpoint({ database: db }, { busyTimeoutMs: 10_000 });
afterAll(async () => {
  await store.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

checkpointConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  async () => ({ storage: store }),
  { name: 'sqlite' },
);

describe('sqliteCheckpoint', () => {
  it('is a persistent sqlite store that holds only the checkpoint', () => {
    expect(store.kind).toBe('sqlite');
    expect(store.persistent).toBe(true);
    expect(sqliteCheckpoint({ filename: ':memory:' }).persistent).toBe(false);
    expect((store as unknown as Record<string, unknown>).sessions).toBeUndefined();
  });

  it('refuses bad targets and options with a ValidationError that names the field', () => {
    expect(() => sqliteCheckpoint({ filename: '' })).toThrow(expect.objectContaining({ code: 'VALIDATION', message: expect.stringMatching(/sqliteCheckpoint/) }));
    expect(() => sqliteCheckpoint({ database: {} as never })).toThrow(/better-sqlite3 Database/);
    expect(() => sqliteCheckpoint({ filename: 'x.db' }, { busyTimeoutMs: -1 })).toThrow(/busyTimeoutMs/);
  });

  it('opens lazily, closes what it opened, refuses calls once closed and opens again with init()', async () => {
    const filename = join(dir, 'lazy.db');
    const own = sqliteCheckpoint({ filename });
    const cp = createCheckpoint({ storage: own, stream: 's' });
    expect(await own.checkpoint.add('s', [{ key: 'a' }])).toBe(1); // the first call opens it
    expect((await cp.stats()).total).toBe(1);
    await own.close();
    await expect(cp.stats()).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/^\[sqlite\] the store is closed/) });
    await own.init();
    expect((await cp.stats()).total).toBe(1);
    await own.close();
  });

  it('reports a folder that does not exist as a StorageError', async () => {
    const missing = sqliteCheckpoint({ filename: join(dir, 'missing-folder', 'x.db') });
    await expect(missing.init()).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/^\[sqlite\] Cannot open .*folder exists/) });
  });

  it('uses WAL, and two connections on one file see one stream', async () => {
    const other = sqliteCheckpoint({ filename: file });
    try {
      const a = createCheckpoint({ storage: store, stream: 'shared' });
      const b = createCheckpoint({ storage: other, stream: 'shared' });
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
          `EXPLAIN QUERY PLAN SELECT seq FROM checkpoint_items WHERE stream = ? AND status NOT IN ('done', 'dead') AND avail_at <= ? ORDER BY priority DESC, avail_at LIMIT 5`,
        )
        .all('shared', Date.now()) as { detail: string }[];
      expect(plan.map((p) => p.detail).join(' ')).toContain('checkpoint_items_claimable');
    } finally {
      await other.close();
    }
  });

  it('two real processes initialising the same new file at once both succeed, and make only the checkpoint tables', async () => {
    for (let round = 0; round < 3; round++) {
      const filename = join(dir, `init-${round}.db`);
      const startAt = String(Date.now() + 1500);
      const [one, two] = await Promise.all([
        runTs(fixture('init-child.ts'), ['sqlite-checkpoint', filename, 'p1', startAt]),
        runTs(fixture('init-child.ts'), ['sqlite-checkpoint', filename, 'p2', startAt]),
      ]);
      expect({ code: one.code, out: one.stdout, err: one.stderr }).toMatchObject({ code: 0, out: 'ok p1\n' });
      expect({ code: two.code, out: two.stdout, err: two.stderr }).toMatchObject({ code: 0, out: 'ok p2\n' });
      const raw = new Database(filename);
      try {
        const tables = (raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
        expect(tables).toEqual(['checkpoint_items', 'checkpoint_streams', 'multisession_checkpoint_migration', 'multisession_checkpoint_migration_lock']);
        expect(raw.prepare('SELECT key FROM checkpoint_items ORDER BY key').all()).toEqual([{ key: 'p1' }, { key: 'p2' }]);
      } finally {
        raw.close();
      }
    }
  }, 60_000);
});
