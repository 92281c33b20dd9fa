import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpoint } from 'multisession';
import { checkpointConformanceSuite } from 'multisession/testing';
import { createPostgresCheckpointBackend } from '../src/checkpoint/postgres-backend.js';
import { PG_URL, dropSchema, freshSchemaName, pgAvailable } from './fixtures/checkpoint/pg.js';

const available = await pgAvailable();
const schema = freshSchemaName('cp_suite');
const pool = new pg.Pool({ connectionString: PG_URL, max: 10 });
const backend = createPostgresCheckpointBackend(pool, { schema });

afterAll(async () => {
  if (available) await dropSchema(pool, schema);
  await pool.end();
});

describe.skipIf(!available)('postgres checkpoint', () => {
  beforeAll(async () => {
    await backend.init();
  });

  checkpointConformanceSuite(
    { describe, it, expect, beforeEach, afterEach },
    async () => ({ storage: backend }),
    { name: 'postgres' },
  );

  it('creates its tables from several processes-worth of pools at once', async () => {
    const other = freshSchemaName('cp_init');
    const pools = Array.from({ length: 3 }, () => new pg.Pool({ connectionString: PG_URL, max: 2 }));
    try {
      await Promise.all(pools.map((p) => createPostgresCheckpointBackend(p, { schema: other }).init()));
      const cp = createCheckpoint({ storage: createPostgresCheckpointBackend(pools[0]!, { schema: other }), stream: 's' });
      expect(await cp.add([{ key: 'a' }])).toBe(1);
    } finally {
      await dropSchema(pools[0]!, other);
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('claims with SKIP LOCKED through the partial index', async () => {
    const { rows } = await pool.query(
      `EXPLAIN SELECT stream, key FROM "${schema}".checkpoint_items WHERE stream = 'x' AND status IN ('pending','failed','processing')
       AND avail_at <= 0 ORDER BY priority DESC, avail_at, seq LIMIT 5 FOR UPDATE SKIP LOCKED`,
    );
    const plan = rows.map((r: Record<string, string>) => Object.values(r).join(' ')).join('\n');
    expect(plan).toContain('checkpoint_items_claimable');
  });
});
