import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpoint } from 'multisession';
import { postgresStorage } from 'multisession/postgres';
import { checkpointConformanceSuite, sampleSessionRecord, storageConformanceSuite } from 'multisession/testing';
import { PG_URL, fixture, postgresForTests, runTs } from './fixtures/storage/helpers.js';

/**
 * Runs against the real server at MULTISESSION_PG_URL, in a fresh schema dropped afterwards.
 * Without a reachable server the file is skipped, except under CI where it must run.
 */
const { reachable, admin, freshSchema } = await postgresForTests();
const schema = freshSchema();
const q = (name: string) => `"${schema}"."${name}"`;

const suite = reachable ? describe : describe.skip;
const T0 = Date.UTC(2026, 0, 1);

suite('postgres', () => {
  storageConformanceSuite(
    { describe, it, expect, beforeEach, afterEach },
    async () => {
      const store = postgresStorage({ connectionString: PG_URL }, { schema, poolSize: 4 });
      await store.init();
      await admin.query(
        `truncate ${['sessions', 'session_kv', 'session_stats', 'session_transitions', 'audit_log', 'session_owners', 'session_changes', 'cluster_nodes', 'webhook_endpoints', 'webhook_deliveries']
          .map(q)
          .join(', ')} restart identity cascade`,
      );
      return store;
    },
    {
      name: 'postgres',
      corruptRow: async (_store, id) => {
        await admin.query(`update ${q('sessions')} set config = '{"broken', labels = '[1' where id = $1`, [id]);
      },
      reopen: async () => postgresStorage({ connectionString: PG_URL }, { schema }),
    },
  );

  describe('the checkpoint capability of the postgres driver', () => {
    const store = postgresStorage({ connectionString: PG_URL }, { schema: `${schema}_cp`, poolSize: 4 });
    afterAll(async () => {
      await store.close();
      await admin.query(`drop schema if exists "${schema}_cp" cascade`);
    });
    checkpointConformanceSuite({ describe, it, expect, beforeEach, afterEach }, async () => ({ storage: store }), { name: 'postgres driver' });
  });

  describe('postgresStorage', () => {
    const fresh = () => postgresStorage({ connectionString: PG_URL }, { schema });

    it('is a persistent postgres driver', () => {
      const store = fresh();
      expect(store.kind).toBe('postgres');
      expect(store.persistent).toBe(true);
    });

    it('refuses bad targets and options with a ValidationError that names the field', () => {
      expect(() => postgresStorage({ connectionString: '' })).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
      expect(() => postgresStorage({ pool: {} as never })).toThrow(/pg Pool/);
      expect(() => postgresStorage({ connectionString: PG_URL }, { schema: 'bad-name; drop' })).toThrow(/schema/);
      expect(() => postgresStorage({ connectionString: PG_URL }, { poolSize: 0 })).toThrow(/poolSize/);
    });

    it('puts every table in its schema, and uses a pool passed in without ending it', async () => {
      const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
      const own = `${schema}_own`;
      const store = postgresStorage({ pool }, { schema: own });
      await store.init();
      await store.sessions.create(sampleSessionRecord('mine'));
      const { rows } = await pool.query(`select table_name from information_schema.tables where table_schema = $1 order by 1`, [own]);
      expect(rows.map((r: { table_name: string }) => r.table_name)).toEqual([
        'audit_log',
        'checkpoint_items',
        'cluster_nodes',
        'multisession_checkpoint_migration',
        'multisession_checkpoint_migration_lock',
        'multisession_migration',
        'multisession_migration_lock',
        'session_changes',
        'session_kv',
        'session_owners',
        'session_stats',
        'session_transitions',
        'sessions',
        'units',
        'webhook_deliveries',
        'webhook_endpoints',
      ]);
      await store.close();
      await expect(store.sessions.get('mine')).rejects.toMatchObject({ code: 'STORAGE' });
      await store.init(); // reopens on the same pool
      expect((await store.sessions.get('mine'))!.id).toBe('mine');
      await store.close();
      expect((await pool.query(`select count(*)::int as n from "${own}".sessions`)).rows[0]).toEqual({ n: 1 });
      await pool.query(`drop schema "${own}" cascade`);
      await pool.end();
    });

    it('reports an unreachable server as a StorageError without the password', async () => {
      const store = postgresStorage({ connectionString: 'postgres://someone:s3cretpw@127.0.0.1:1/none' }, { schema });
      const err = await store.init().then(
        () => null,
        (e: Error & { code?: string }) => e,
      );
      expect(err).toMatchObject({ code: 'STORAGE' });
      expect(err!.message).not.toContain('s3cretpw');
      await store.close();
    });

    it('two drivers: a lost update returns null and changes nothing', async () => {
      const a = fresh();
      const b = fresh();
      await Promise.all([a.init(), b.init()]);
      await a.sessions.create(sampleSessionRecord('lost-1'));
      expect(await b.sessions.update('lost-1', { labels: { by: 'b' }, updatedAt: T0 + 1 }, 1)).toMatchObject({ version: 2 });
      expect(await a.sessions.update('lost-1', { labels: { by: 'a' }, updatedAt: T0 + 2 }, 1)).toBeNull();
      expect((await a.sessions.get('lost-1'))!.labels).toEqual({ by: 'b' });
      await a.sessions.delete('lost-1');
      await Promise.all([a.close(), b.close()]);
    });

    it('names itself in the errors it raises, with the SQLSTATE and the driver error as cause', async () => {
      const own = `${schema}_err`;
      const store = postgresStorage({ connectionString: PG_URL }, { schema: own });
      await store.init();
      await admin.query(`drop table "${own}".audit_log`);
      const error = (await store.audit!.list({}).catch((e: unknown) => e)) as Error & { code?: string; context?: Record<string, unknown> };
      expect(error).toMatchObject({ code: 'STORAGE', message: expect.stringMatching(/^\[postgres\] listAudit failed: .*\(SQLSTATE 42P01\)/), context: { sqlState: '42P01' } });
      expect(error.cause).toBeInstanceOf(Error);
      await store.close();
      await admin.query(`drop schema "${own}" cascade`);
    });

    it('concurrent creates with one fingerprint on two pools: exactly one wins', async () => {
      const a = fresh();
      const b = fresh();
      await Promise.all([a.init(), b.init()]);
      for (let round = 0; round < 5; round++) {
        const fp = { credentialsFingerprint: `fp-race-${round}` };
        const results = await Promise.allSettled([
          a.sessions.create(sampleSessionRecord(`ra${round}`, fp)),
          b.sessions.create(sampleSessionRecord(`rb${round}`, fp)),
          a.sessions.create(sampleSessionRecord(`rc${round}`, fp)),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'DUPLICATE_CREDENTIALS' });
      }
      for (const s of await a.sessions.list()) if (s.id.startsWith('r')) await a.sessions.delete(s.id);
      await Promise.all([a.close(), b.close()]);
    });

    it('batches racing deletes of their sessions neither fail nor leave orphans', async () => {
      const a = fresh();
      const b = fresh();
      await Promise.all([a.init(), b.init()]);
      const ids = Array.from({ length: 30 }, (_, i) => `race${String(i).padStart(2, '0')}`);
      for (const id of ids) await a.sessions.create(sampleSessionRecord(id, { credentialsFingerprint: null }));
      const work: Promise<unknown>[] = [];
      for (let round = 0; round < 10; round++) {
        work.push(b.counters!.increment(ids.map((sessionId) => ({ sessionId, name: 'n', delta: 1 }))));
        work.push(b.history!.append(ids.map((sessionId) => ({ sessionId, from: 'stopped' as const, to: 'starting' as const, reason: 'r', at: T0 })), 3));
        work.push(b.sessions.saveStatus(ids.map((id) => ({ id, state: 'ready' as const }))));
      }
      work.push(...ids.map((id) => a.sessions.delete(id)));
      const results = await Promise.allSettled(work);
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      for (const table of ['session_stats', 'session_transitions', 'session_kv']) {
        const { rows } = await admin.query(`select count(*)::int as n from ${q(table)} where session_id like 'race%'`);
        expect({ table, n: rows[0].n }).toEqual({ table, n: 0 });
      }
      await Promise.all([a.close(), b.close()]);
    });

    it('answers many history reads at once, each with its own session and limit', async () => {
      const store = fresh();
      await store.init();
      const ids = Array.from({ length: 60 }, (_, i) => `hist${String(i).padStart(2, '0')}`);
      for (const id of ids) await store.sessions.create(sampleSessionRecord(id, { credentialsFingerprint: null }));
      await store.history!.append(
        ids.flatMap((sessionId, i) =>
          Array.from({ length: i % 7 }, (_, n) => ({ sessionId, from: 'stopped' as const, to: 'starting' as const, reason: `${sessionId}-${n}`, at: T0 + n })),
        ),
        50,
      );
      const reads = await Promise.all(
        ids.flatMap((id, i) => [store.history!.list(id, 1 + (i % 4)), store.history!.list(id, 50), store.history!.list('nobody', 3)]),
      );
      ids.forEach((id, i) => {
        const all = Array.from({ length: i % 7 }, (_, n) => `${id}-${n}`);
        expect(reads[i * 3]!.map((t) => t.reason)).toEqual(all.slice(Math.max(0, all.length - (1 + (i % 4)))));
        expect(reads[i * 3 + 1]!.map((t) => t.reason)).toEqual(all);
        expect(reads[i * 3 + 2]).toEqual([]);
      });
      for (const id of ids) await store.sessions.delete(id);
      await store.close();
    });

    it('stores times as bigint and returns them as numbers', async () => {
      const store = fresh();
      await store.init();
      const far = 8_000_000_000_000; // beyond 32 bits
      await store.sessions.create(sampleSessionRecord('times', { createdAt: far, updatedAt: far, lastActivityAt: far, credentialsFingerprint: null }));
      await store.history!.append([{ sessionId: 'times', from: 'stopped', to: 'starting', reason: 'r', at: far }], 5);
      await store.audit!.append([{ at: far, sessionId: 'times', action: 'create', actor: null, details: {} }]);
      const s = (await store.sessions.get('times'))!;
      expect([s.createdAt, s.updatedAt, s.lastActivityAt]).toEqual([far, far, far]);
      expect((await store.history!.list('times', 1))[0]!.at).toBe(far);
      const [entry] = await store.audit!.list({ sessionId: 'times' });
      expect(entry).toMatchObject({ at: far });
      expect(typeof entry!.id).toBe('number');
      await store.sessions.delete('times');
      await store.close();
    });

    it('matches KV prefixes with accents and astral characters by code point, case-sensitively', async () => {
      const store = fresh();
      await store.init();
      await store.sessions.create(sampleSessionRecord('uni', { credentialsFingerprint: null }));
      const keys = ['😀/a', '😀/b', '😁/c', 'ü/x', 'u/y', 'Ü/z', 'ü'];
      await store.kv!.write('uni', keys.map((key) => ({ op: 'set' as const, key, value: key })));
      expect((await store.kv!.list('uni', { prefix: '😀/' })).map((e) => e.key)).toEqual(['😀/a', '😀/b']);
      expect((await store.kv!.list('uni', { prefix: 'ü' })).map((e) => e.key)).toEqual(['ü', 'ü/x']);
      expect(await store.kv!.clear('uni', { prefix: '😀' })).toBe(2);
      expect((await store.kv!.list('uni')).map((e) => e.key)).toEqual(['u/y', 'ü', 'ü/x', 'Ü/z', '😁/c'].sort());
      await store.sessions.delete('uni');
      await store.close();
    });

    it('bounds history per session across large batches of many sessions', async () => {
      const store = fresh();
      await store.init();
      const ids = Array.from({ length: 40 }, (_, i) => `h${String(i).padStart(2, '0')}`);
      for (const id of ids) await store.sessions.create(sampleSessionRecord(id, { credentialsFingerprint: null }));
      const batch = ids.flatMap((sessionId) =>
        Array.from({ length: 25 }, (_, i) => ({ sessionId, from: 'stopped' as const, to: 'starting' as const, reason: `r${i}`, at: T0 + i })),
      );
      await store.history!.append(batch, 5);
      await store.sessions.saveStatus(ids.map((id) => ({ id, state: 'ready' as const, lastError: { code: 'X', message: 'm', at: T0 } })));
      for (const id of ids) {
        expect((await store.history!.list(id, 100)).map((t) => t.reason)).toEqual(['r20', 'r21', 'r22', 'r23', 'r24']);
      }
      const list = (await store.sessions.list()).filter((s) => s.id.startsWith('h'));
      expect(list.every((s) => s.state === 'ready' && s.lastError?.code === 'X')).toBe(true);
      for (const id of ids) await store.sessions.delete(id);
      await store.close();
    });

    it('two real processes writing one session at once lose no increment, KV write or update', async () => {
      const store = fresh();
      await store.init();
      await store.sessions.create(sampleSessionRecord('shared', { labels: { n: '0' }, credentialsFingerprint: null }));
      const startAt = String(Date.now() + 1500);
      const runs = await Promise.all(
        ['w1', 'w2'].map((name) => runTs(fixture('writer-child.ts'), ['postgres', schema, name, '100', startAt], { MULTISESSION_PG_URL: PG_URL })),
      );
      for (const run of runs) expect({ code: run.code, out: run.stdout.slice(0, 4), err: run.stderr }).toEqual({ code: 0, out: 'ok w', err: '' });
      expect(await store.counters!.get('shared')).toEqual({ hits: 200 });
      expect(await store.kv!.list('shared')).toHaveLength(200);
      const shared = (await store.sessions.get('shared'))!;
      expect(shared.labels.n).toBe('200');
      expect(shared.version).toBe(201);
      await store.sessions.delete('shared');
      await store.close();
    }, 60_000);

    it('two real processes initialising the same new schema at once both succeed', async () => {
      for (let round = 0; round < 3; round++) {
        const fresh2 = `${schema}_p${round}`;
        const startAt = String(Date.now() + 1500);
        const [one, two] = await Promise.all([
          runTs(fixture('init-child.ts'), ['postgres', fresh2, 'p1', startAt], { MULTISESSION_PG_URL: PG_URL }),
          runTs(fixture('init-child.ts'), ['postgres', fresh2, 'p2', startAt], { MULTISESSION_PG_URL: PG_URL }),
        ]);
        expect({ code: one.code, out: one.stdout, err: one.stderr }).toMatchObject({ code: 0, out: 'ok p1\n' });
        expect({ code: two.code, out: two.stdout, err: two.stderr }).toMatchObject({ code: 0, out: 'ok p2\n' });
        const { rows } = await admin.query(`select id from "${fresh2}".sessions order by id`);
        expect(rows).toEqual([{ id: 'p1' }, { id: 'p2' }]);
        await admin.query(`drop schema "${fresh2}" cascade`);
      }
    }, 60_000);

    it('upgrades a schema whose checkpoint tables the old raw DDL made: items and fencing tokens carry on', async () => {
      const old = `${schema}_old`;
      // The first releases: session tables by migration, checkpoint tables by raw DDL, and some work in them.
      const first = postgresStorage({ connectionString: PG_URL }, { schema: old });
      await first.init();
      await first.sessions.create(sampleSessionRecord('s1'));
      await first.close();
      const S = `"${old}"`;
      await admin.query(`drop table ${S}.checkpoint_items, ${S}.multisession_checkpoint_migration, ${S}.multisession_checkpoint_migration_lock; drop sequence ${S}.checkpoint_fence`);
      for (const ddl of [
        `CREATE SCHEMA IF NOT EXISTS ${S}`,
        `CREATE TABLE IF NOT EXISTS ${S}.checkpoint_items (
          seq bigint GENERATED ALWAYS AS IDENTITY,
          stream text COLLATE "C" NOT NULL,
          key text COLLATE "C" NOT NULL,
          status text NOT NULL,
          priority integer NOT NULL DEFAULT 0,
          payload jsonb,
          result jsonb,
          error text,
          attempts integer NOT NULL DEFAULT 0,
          owner text,
          token bigint NOT NULL DEFAULT 0,
          run_at bigint NOT NULL,
          avail_at bigint NOT NULL,
          created_at bigint NOT NULL,
          updated_at bigint NOT NULL,
          completed_at bigint,
          PRIMARY KEY (stream, key)
        )`,
        `CREATE SEQUENCE IF NOT EXISTS ${S}.checkpoint_fence`,
        `CREATE INDEX IF NOT EXISTS checkpoint_items_claimable ON ${S}.checkpoint_items (stream, priority DESC, avail_at, seq) WHERE status IN ('pending', 'failed', 'processing')`,
      ]) {
        await admin.query(ddl);
      }
      await admin.query(`select setval('${S}.checkpoint_fence', 41)`);
      await admin.query(
        `insert into ${S}.checkpoint_items (stream, key, status, payload, token, run_at, avail_at, created_at, updated_at)
         values ('jobs', 'old-1', 'pending', '{"n":1}', 0, 0, 0, 0, 0), ('jobs', 'old-2', 'done', null, 41, 0, 0, 0, 0)`,
      );

      const store = postgresStorage({ connectionString: PG_URL }, { schema: old });
      await store.init();
      const checkpoint = createCheckpoint({ storage: store, stream: 'jobs' });
      expect(await checkpoint.stats()).toMatchObject({ pending: 1, done: 1, total: 2 });
      const [lease] = await checkpoint.claim({ owner: 'w' });
      expect(lease).toMatchObject({ key: 'old-1', payload: { n: 1 } });
      expect(lease!.token).toBeGreaterThan(41);
      await checkpoint.complete(lease!);
      expect((await store.sessions.get('s1'))?.id).toBe('s1');
      await store.close();
      const { rows } = await admin.query(`select name from ${S}.multisession_checkpoint_migration order by name`);
      expect(rows).toEqual([{ name: '0001_checkpoint' }, { name: '0002_cheap_claimable_predicate' }]);
      await admin.query(`drop schema ${S} cascade`);
    });
  });
});
