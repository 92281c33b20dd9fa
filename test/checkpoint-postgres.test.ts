import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpoint } from 'multisession';
import { postgresCheckpoint } from 'multisession/postgres';
import { checkpointConformanceSuite } from 'multisession/testing';
import { PG_URL, dropSchema, freshSchemaName, pgAvailable } from './fixtures/checkpoint/pg.js';
import { fixture, runTs } from './fixtures/storage/helpers.js';

const available = await pgAvailable();
const schema = freshSchemaName('cp_suite');
const pool = new pg.Pool({ connectionString: PG_URL, max: 10 });
const store = postgresCheckpoint({ pool }, { schema });

afterAll(async () => {
  await store.close();
  if (available) await dropSchema(pool, schema);
  await pool.end();
});

describe.skipIf(!available)('postgres checkpoint', () => {
  beforeAll(async () => {
    await store.init();
  });

  checkpointConformanceSuite(
    { describe, it, expect, beforeEach, afterEach },
    async () => ({ storage: store }),
    { name: 'postgres' },
  );

  it('makes only the checkpoint tables, in its schema', async () => {
    const { rows } = await pool.query(`select table_name from information_schema.tables where table_schema = $1 order by 1`, [schema]);
    expect(rows.map((r: { table_name: string }) => r.table_name)).toEqual([
      'checkpoint_items',
      'multisession_checkpoint_migration',
      'multisession_checkpoint_migration_lock',
    ]);
    expect(store).toMatchObject({ kind: 'postgres', persistent: true });
  });

  it('fails only the completion PostgreSQL refuses when concurrent completions share a statement', async () => {
    const cp = createCheckpoint({ storage: store, stream: `nul-${Date.now()}` });
    await cp.add([{ key: 'a' }, { key: 'b' }, { key: 'c' }, { key: 'd' }]);
    const leases = await Promise.all(['w1', 'w2', 'w3', 'w4'].map((owner) => cp.claim({ owner, limit: 1 })));
    // jsonb refuses the NUL character (SQLSTATE 22P05): the whole statement rolls back.
    const outcomes = await Promise.allSettled(leases.map(([lease], i) => cp.complete(lease!, i === 1 ? { text: 'a\u0000b' } : { i })));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'STORAGE' });
    expect(await cp.get(leases[1]![0]!.key)).toMatchObject({ status: 'processing', owner: 'w2' });
    for (const i of [0, 2, 3]) expect(await cp.get(leases[i]![0]!.key)).toMatchObject({ status: 'done', result: { i } });
  });

  it('refuses bad targets and options with a ValidationError that names the field', () => {
    expect(() => postgresCheckpoint({ connectionString: '' })).toThrow(expect.objectContaining({ code: 'VALIDATION', message: expect.stringMatching(/postgresCheckpoint/) }));
    expect(() => postgresCheckpoint({ pool: {} as never })).toThrow(/pg Pool/);
    expect(() => postgresCheckpoint({ pool }, { schema: 'bad-name; drop' })).toThrow(/schema/);
  });

  it('creates its tables from several processes-worth of pools at once', async () => {
    const other = freshSchemaName('cp_init');
    const pools = Array.from({ length: 3 }, () => new pg.Pool({ connectionString: PG_URL, max: 2 }));
    const stores = pools.map((p) => postgresCheckpoint({ pool: p }, { schema: other }));
    try {
      await Promise.all(stores.map((s) => s.init()));
      const cp = createCheckpoint({ storage: stores[0]!, stream: 's' });
      expect(await cp.add([{ key: 'a' }])).toBe(1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await dropSchema(pools[0]!, other);
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('two real processes initialising the same new schema at once both succeed', async () => {
    for (let round = 0; round < 3; round++) {
      const fresh = freshSchemaName(`cp_proc${round}`);
      const startAt = String(Date.now() + 1500);
      try {
        const [one, two] = await Promise.all([
          runTs(fixture('init-child.ts'), ['postgres-checkpoint', fresh, 'p1', startAt], { MULTISESSION_PG_URL: PG_URL }),
          runTs(fixture('init-child.ts'), ['postgres-checkpoint', fresh, 'p2', startAt], { MULTISESSION_PG_URL: PG_URL }),
        ]);
        expect({ code: one.code, out: one.stdout, err: one.stderr }).toMatchObject({ code: 0, out: 'ok p1\n' });
        expect({ code: two.code, out: two.stdout, err: two.stderr }).toMatchObject({ code: 0, out: 'ok p2\n' });
        const { rows } = await pool.query(`select key from "${fresh}".checkpoint_items order by key`);
        expect(rows).toEqual([{ key: 'p1' }, { key: 'p2' }]);
      } finally {
        await dropSchema(pool, fresh);
      }
    }
  }, 60_000);

  it('claims with SKIP LOCKED through the partial index', async () => {
    const { rows } = await pool.query(
      `EXPLAIN SELECT stream, key FROM "${schema}".checkpoint_items WHERE stream = 'x' AND status IN ('pending','failed','processing')
       AND avail_at <= 0 ORDER BY priority DESC, avail_at, seq LIMIT 5 FOR UPDATE SKIP LOCKED`,
    );
    const plan = rows.map((r: Record<string, string>) => Object.values(r).join(' ')).join('\n');
    expect(plan).toContain('checkpoint_items_claimable');
  });
});
