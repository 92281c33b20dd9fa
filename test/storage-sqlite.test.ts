import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpoint } from 'multisession';
import { sqliteCheckpoint, sqliteStorage } from 'multisession/sqlite';
import { checkpointConformanceSuite, sampleSessionRecord, storageConformanceSuite } from 'multisession/testing';
import type { StorageDriver } from 'multisession';
import { fixture, runTs } from './fixtures/storage/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ms-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshFile = () => join(dir, `store-${process.pid}-${++n}.db`);

/** Writes to the file behind the driver's back, as a crash or a manual edit could. */
function withRawDb<T>(filename: string, fn: (db: Database.Database) => T): T {
  const db = new Database(filename);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const files = new WeakMap<StorageDriver, string>();

storageConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  async () => {
    const filename = freshFile();
    const store = sqliteStorage({ filename });
    await store.init();
    files.set(store, filename);
    return store;
  },
  {
    name: 'sqlite',
    corruptRow: async (store, id) => {
      withRawDb(files.get(store)!, (db) => db.prepare(`UPDATE sessions SET config = '{"broken', labels = '[1' WHERE id = ?`).run(id));
    },
    reopen: async (store) => sqliteStorage({ filename: files.get(store)! }),
  },
);

describe('sqliteStorage', () => {
  const T0 = Date.UTC(2026, 0, 1);

  it('is a persistent sqlite driver (a :memory: database is not persistent)', async () => {
    const store = sqliteStorage({ filename: freshFile() });
    expect(store.kind).toBe('sqlite');
    expect(store.persistent).toBe(true);
    expect(sqliteStorage({ filename: ':memory:' }).persistent).toBe(false);
  });

  it('refuses bad targets and options with a ValidationError that names the field', () => {
    expect(() => sqliteStorage({ filename: '' })).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
    expect(() => sqliteStorage({ database: {} as never })).toThrow(/better-sqlite3 Database/);
    expect(() => sqliteStorage({ filename: 'x.db' }, { synchronous: 'OFF' as never })).toThrow(/synchronous/);
    expect(() => sqliteStorage({ filename: 'x.db' }, { busyTimeoutMs: -1 })).toThrow(/busyTimeoutMs/);
    expect(() => sqliteStorage({ filename: 'x.db' }, { nope: 1 } as never)).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
  });

  it('reports a folder that does not exist as a StorageError on init, and can init again after', async () => {
    const store = sqliteStorage({ filename: join(dir, 'missing-folder', 'x.db') });
    await expect(store.init()).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/folder exists/) });
    await expect(store.sessions.get('a')).rejects.toMatchObject({ code: 'STORAGE' });
  });

  it('keeps every record across close and a new driver on the same file', async () => {
    const filename = freshFile();
    const a = sqliteStorage({ filename });
    await a.init();
    await a.sessions.create(sampleSessionRecord('s1', { desiredState: 'running' }));
    await a.kv!.write('s1', [{ op: 'set', key: 'auth/keys', value: { k: [1, 2] } }]);
    await a.counters!.increment([{ sessionId: 's1', name: 'messagesIn', delta: 3 }]);
    await a.history!.append([{ sessionId: 's1', from: 'stopped', to: 'starting', reason: 'start', at: T0 }], 10);
    await a.audit!.append([{ at: T0, sessionId: 's1', action: 'create', actor: 'ops', details: { fields: ['config'] } }]);
    await a.sessions.saveStatus([{ id: 's1', state: 'ready', health: 'healthy', lastActivityAt: T0 + 5 }]);
    await a.close();
    await expect(a.sessions.get('s1')).rejects.toMatchObject({ code: 'STORAGE' });

    await a.init(); // the same instance opens the file again
    expect((await a.sessions.get('s1'))!.id).toBe('s1');
    await a.close();

    const b = sqliteStorage({ filename });
    await b.init();
    expect(await b.sessions.get('s1')).toEqual({
      ...sampleSessionRecord('s1', { desiredState: 'running' }),
      state: 'ready',
      health: 'healthy',
      lastActivityAt: T0 + 5,
      version: 1,
    });
    expect(await b.kv!.get('s1', 'auth/keys')).toEqual({ k: [1, 2] });
    expect(await b.counters!.get('s1')).toEqual({ messagesIn: 3 });
    expect(await b.history!.list('s1', 10)).toHaveLength(1);
    expect(await b.audit!.list({ sessionId: 's1' })).toMatchObject([{ action: 'create', actor: 'ops', details: { fields: ['config'] } }]);
    await b.close();
  });

  it('uses WAL, foreign keys and the synchronous level asked for', async () => {
    const filename = freshFile();
    const store = sqliteStorage({ filename }, { synchronous: 'FULL', busyTimeoutMs: 1234 });
    await store.init();
    withRawDb(filename, (db) => expect(db.pragma('journal_mode', { simple: true })).toBe('wal'));
    await store.close();

    const db = new Database(':memory:');
    const injected = sqliteStorage({ database: db }, { synchronous: 'FULL', busyTimeoutMs: 1234 });
    await injected.init();
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    await injected.close();
    expect(db.open).toBe(true); // a database passed in is the caller's to close
    db.close();
  });

  it('works on a better-sqlite3 database passed in', async () => {
    const filename = freshFile();
    const db = new Database(filename);
    const store = sqliteStorage({ database: db });
    expect(store.persistent).toBe(true);
    await store.init();
    await store.sessions.create(sampleSessionRecord('mine'));
    expect(db.prepare('SELECT id FROM sessions').all()).toEqual([{ id: 'mine' }]);
    await store.close();
    db.close();
  });

  it('two drivers on one file: a lost update returns null and changes nothing', async () => {
    const filename = freshFile();
    const a = sqliteStorage({ filename });
    const b = sqliteStorage({ filename });
    await Promise.all([a.init(), b.init()]);
    await a.sessions.create(sampleSessionRecord('s1'));
    const seenByA = (await a.sessions.get('s1'))!;
    const seenByB = (await b.sessions.get('s1'))!;
    expect(await b.sessions.update('s1', { labels: { by: 'b' }, updatedAt: T0 + 1 }, seenByB.version)).toMatchObject({ version: 2 });
    expect(await a.sessions.update('s1', { labels: { by: 'a' }, updatedAt: T0 + 2 }, seenByA.version)).toBeNull();
    expect((await a.sessions.get('s1'))!.labels).toEqual({ by: 'b' });
    await Promise.all([a.close(), b.close()]);
  });

  it('names itself in the errors it raises, with the driver error as cause', async () => {
    const filename = freshFile();
    const store = sqliteStorage({ filename });
    await store.init();
    withRawDb(filename, (db) => db.exec('DROP TABLE audit_log'));
    const error = (await store.audit!.list({}).catch((e: unknown) => e)) as Error & { code?: string };
    expect(error).toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/^\[sqlite\] listAudit failed: .*no such table/) });
    expect(error.cause).toBeInstanceOf(Error);
    await store.close();
  });

  it('a second driver opening a file in use does not lock out the writes of the first', async () => {
    const filename = freshFile();
    const a = sqliteStorage({ filename }, { busyTimeoutMs: 200 });
    await a.init();
    await a.sessions.create(sampleSessionRecord('busy'));
    const b = sqliteStorage({ filename });
    const writes = (async () => {
      // Only microtask turns between writes, as in a chain of manager calls: they interleave
      // with the other driver's init, which also only awaits microtasks.
      for (let i = 0; i < 50; i++) await a.kv!.write('busy', [{ op: 'set', key: `k${i}`, value: i }]);
    })();
    await Promise.all([b.init(), writes]);
    expect(await b.kv!.list('busy')).toHaveLength(50);
    await Promise.all([a.close(), b.close()]);
  });

  it('two drivers on one file: the duplicate-credential guard holds across connections', async () => {
    const filename = freshFile();
    const a = sqliteStorage({ filename });
    const b = sqliteStorage({ filename });
    await Promise.all([a.init(), b.init()]);
    const same = { credentialsFingerprint: 'fp-shared' };
    const results = await Promise.allSettled([
      a.sessions.create(sampleSessionRecord('x1', same)),
      b.sessions.create(sampleSessionRecord('x2', same)),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'DUPLICATE_CREDENTIALS' } });
    await Promise.all([a.close(), b.close()]);
  });

  it('reads every kind of broken row as readError, with safe defaults', async () => {
    const filename = freshFile();
    const store = sqliteStorage({ filename });
    await store.init();
    await store.sessions.create(sampleSessionRecord('ok'));
    await store.sessions.create(sampleSessionRecord('bad'));
    withRawDb(filename, (db) =>
      db
        .prepare(`UPDATE sessions SET metadata = 'nope', state = 'exploded', last_error = '{"code":1}', labels = '{"a":1}' WHERE id = 'bad'`)
        .run(),
    );
    const [bad, ok] = await store.sessions.list();
    expect(ok!.readError).toBeUndefined();
    expect(bad).toMatchObject({ id: 'bad', state: 'stopped', metadata: null, labels: {}, lastError: null, config: sampleSessionRecord('bad').config });
    expect(bad!.readError).toMatch(/"metadata" holds invalid JSON/);
    expect(bad!.readError).toMatch(/"state" holds unknown value "exploded"/);
    expect(bad!.readError).toMatch(/"last_error"/);
    expect(bad!.readError).toMatch(/"labels"/);
    expect((await store.sessions.get('bad'))!.readError).toBe(bad!.readError);
    await store.close();
  });

  it('matches KV prefixes with accents and astral characters by code point, case-sensitively', async () => {
    const store = sqliteStorage({ filename: freshFile() });
    await store.init();
    await store.sessions.create(sampleSessionRecord('uni', { credentialsFingerprint: null }));
    const keys = ['😀/a', '😀/b', '😁/c', 'ü/x', 'u/y', 'Ü/z', 'ü'];
    await store.kv!.write('uni', keys.map((key) => ({ op: 'set' as const, key, value: key })));
    expect((await store.kv!.list('uni', { prefix: '😀/' })).map((e) => e.key)).toEqual(['😀/a', '😀/b']);
    expect((await store.kv!.list('uni', { prefix: 'ü' })).map((e) => e.key)).toEqual(['ü', 'ü/x']);
    expect(await store.kv!.clear('uni', { prefix: '😀' })).toBe(2);
    expect((await store.kv!.list('uni')).map((e) => e.key)).toEqual(['u/y', 'ü', 'ü/x', 'Ü/z', '😁/c'].sort());
    await store.close();
  });

  it('bounds history per session across large batches of many sessions', async () => {
    const store = sqliteStorage({ filename: freshFile() });
    await store.init();
    const ids = Array.from({ length: 50 }, (_, i) => `s${String(i).padStart(2, '0')}`);
    for (const id of ids) await store.sessions.create(sampleSessionRecord(id, { credentialsFingerprint: null }));
    const batch = ids.flatMap((sessionId) =>
      Array.from({ length: 30 }, (_, i) => ({ sessionId, from: 'stopped' as const, to: 'starting' as const, reason: `r${i}`, at: T0 + i })),
    );
    await store.history!.append(batch, 7);
    await store.sessions.saveStatus(ids.map((id) => ({ id, state: 'ready' as const, health: 'healthy' as const })));
    for (const id of ids) {
      const list = await store.history!.list(id, 100);
      expect(list.map((t) => t.reason)).toEqual(['r23', 'r24', 'r25', 'r26', 'r27', 'r28', 'r29']);
    }
    expect((await store.sessions.list()).every((s) => s.state === 'ready' && s.health === 'healthy')).toBe(true);
    await store.close();
  });

  it('two real processes writing one session at once lose no increment, KV write or update', async () => {
    const filename = freshFile();
    const store = sqliteStorage({ filename });
    await store.init();
    await store.sessions.create(sampleSessionRecord('shared', { labels: { n: '0' } }));
    const startAt = String(Date.now() + 1500);
    const runs = await Promise.all(['w1', 'w2'].map((name) => runTs(fixture('writer-child.ts'), ['sqlite', filename, name, '150', startAt])));
    for (const run of runs) expect({ code: run.code, out: run.stdout.slice(0, 4), err: run.stderr }).toEqual({ code: 0, out: 'ok w', err: '' });
    expect(await store.counters!.get('shared')).toEqual({ hits: 300 });
    expect(await store.kv!.list('shared')).toHaveLength(300);
    const shared = (await store.sessions.get('shared'))!;
    expect(shared.labels.n).toBe('300'); // every read-modify-write landed once: lost updates were refused and retried
    expect(shared.version).toBe(301);
    await store.close();
  }, 60_000);

  it('two real processes initialising the same new file at once both succeed', async () => {
    for (let round = 0; round < 3; round++) {
      const filename = freshFile();
      const startAt = String(Date.now() + 1500);
      const [one, two] = await Promise.all([
        runTs(fixture('init-child.ts'), ['sqlite', filename, 'p1', startAt]),
        runTs(fixture('init-child.ts'), ['sqlite', filename, 'p2', startAt]),
      ]);
      expect({ code: one.code, out: one.stdout, err: one.stderr }).toMatchObject({ code: 0, out: 'ok p1\n' });
      expect({ code: two.code, out: two.stdout, err: two.stderr }).toMatchObject({ code: 0, out: 'ok p2\n' });
      const store = sqliteStorage({ filename });
      await store.init();
      expect((await store.sessions.list()).map((s) => s.id)).toEqual(['p1', 'p2']);
      expect(await store.counters!.get('p2')).toEqual({ opened: 1 });
      withRawDb(filename, (db) => {
        expect(db.prepare('SELECT name FROM multisession_migration ORDER BY name').all()).toEqual([{ name: '0001_initial' }, { name: '0002_hot_status_updates' }, { name: '0003_cluster' }, { name: '0004_webhooks' }, { name: '0005_units' }]);
        expect(db.prepare('SELECT name FROM multisession_checkpoint_migration ORDER BY name').all()).toEqual([{ name: '0001_checkpoint' }, { name: '0002_cheap_claimable_predicate' }]);
      });
      await store.close();
    }
  }, 60_000);
});

describe('the checkpoint capability of the sqlite driver', () => {
  // One driver for the whole group: every checkpoint test works in a stream of its own.
  const store = sqliteStorage({ filename: freshFile() });
  afterAll(() => store.close());
  checkpointConformanceSuite({ describe, it, expect, beforeEach, afterEach }, async () => ({ storage: store }), { name: 'sqlite driver' });

  it('shares the file with the sessions and works before init() was awaited', async () => {
    const filename = freshFile();
    const fresh = sqliteStorage({ filename });
    const backend = fresh.checkpoint!;
    expect(backend.kind).toBe('sqlite');
    expect(await backend.add('jobs', [{ key: 'a', payload: null, priority: 0, runAt: Date.now() }])).toBe(1);
    await fresh.sessions.create(sampleSessionRecord('s1'));
    withRawDb(filename, (db) => {
      expect(db.prepare('SELECT count(*) AS n FROM checkpoint_items').get()).toEqual({ n: 1 });
      expect(db.prepare('SELECT count(*) AS n FROM sessions').get()).toEqual({ n: 1 });
    });
    await fresh.close();
    await expect(backend.stats('jobs')).rejects.toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/^\[sqlite\] /) });
  });
});

/** The checkpoint tables exactly as the first releases made them: raw DDL run by the backend. */
const OLD_CHECKPOINT_DDL = `
CREATE TABLE IF NOT EXISTS checkpoint_items (
  seq INTEGER PRIMARY KEY,
  stream INTEGER NOT NULL, -- checkpoint_streams.id: small keys keep the indexes small
  key TEXT NOT NULL,
  status TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  payload TEXT,
  result TEXT,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  owner TEXT,
  token INTEGER NOT NULL DEFAULT 0,
  run_at INTEGER NOT NULL,
  avail_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  completed_at INTEGER,
  UNIQUE (stream, key)
);
CREATE INDEX IF NOT EXISTS checkpoint_items_claimable
  ON checkpoint_items (stream, priority DESC, avail_at, status)
  WHERE status IN ('pending', 'failed', 'processing');
CREATE TABLE IF NOT EXISTS checkpoint_streams (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  fence INTEGER NOT NULL DEFAULT 0
);
`;

describe('a database made by the first releases', () => {
  it('upgrades in place: the checkpoint tables of the old raw DDL keep their items and fencing tokens', async () => {
    const filename = freshFile();
    // The first releases: session tables by migration, checkpoint tables by raw DDL, and some work in them.
    const first = sqliteStorage({ filename });
    await first.init();
    await first.sessions.create(sampleSessionRecord('s1'));
    await first.close();
    withRawDb(filename, (db) => {
      db.exec('DROP TABLE checkpoint_items; DROP TABLE checkpoint_streams; DROP TABLE multisession_checkpoint_migration; DROP TABLE multisession_checkpoint_migration_lock;');
      db.exec(OLD_CHECKPOINT_DDL);
      db.prepare('INSERT INTO checkpoint_streams (name, fence) VALUES (?, ?)').run('jobs', 41);
      const now = Date.now();
      db.prepare(
        `INSERT INTO checkpoint_items (stream, key, status, priority, payload, token, run_at, avail_at, created_at, updated_at)
         VALUES (1, 'old-1', 'pending', 0, '{"n":1}', 0, ?, ?, ?, ?), (1, 'old-2', 'done', 0, NULL, 41, ?, ?, ?, ?)`,
      ).run(now, now, now, now, now, now, now, now);
    });

    const store = sqliteStorage({ filename });
    await store.init();
    const checkpoint = createCheckpoint({ storage: store, stream: 'jobs' });
    expect(await checkpoint.stats()).toMatchObject({ pending: 1, done: 1, total: 2 });
    const [lease] = await checkpoint.claim({ owner: 'w' });
    expect(lease).toMatchObject({ key: 'old-1', payload: { n: 1 } });
    expect(lease!.token).toBeGreaterThan(41); // the stream's fence carried on
    await checkpoint.complete(lease!);
    expect((await store.sessions.get('s1'))?.id).toBe('s1');
    await store.close();
    withRawDb(filename, (db) => {
      expect(db.prepare('SELECT name FROM multisession_checkpoint_migration ORDER BY name').all()).toEqual([{ name: '0001_checkpoint' }, { name: '0002_cheap_claimable_predicate' }]);
      const plan = db
        .prepare(`EXPLAIN QUERY PLAN SELECT seq FROM checkpoint_items WHERE stream = 1 AND status NOT IN ('done', 'dead') AND avail_at <= 0 ORDER BY priority DESC, avail_at LIMIT 5`)
        .all() as { detail: string }[];
      expect(plan.map((p) => p.detail).join(' ')).toContain('checkpoint_items_claimable');
    });
  });

  it('a stand-alone checkpoint store on that file leaves the session tables alone', async () => {
    const filename = freshFile();
    withRawDb(filename, (db) => db.exec(OLD_CHECKPOINT_DDL));
    const cp = sqliteCheckpoint({ filename });
    const checkpoint = createCheckpoint({ storage: cp, stream: 's' });
    expect(await checkpoint.add([{ key: 'a' }])).toBe(1);
    await cp.close();
    withRawDb(filename, (db) => {
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
      expect(tables).toEqual(['checkpoint_items', 'checkpoint_streams', 'multisession_checkpoint_migration', 'multisession_checkpoint_migration_lock']);
    });
  });
});
