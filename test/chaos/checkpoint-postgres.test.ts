import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createCheckpoint } from '../../src/checkpoint/index.js';
import { postgresCheckpoint } from '../../src/storage/postgres/index.js';
import { PG_URL, dropSchema, freshSchemaName, pgAvailable } from '../fixtures/checkpoint/pg.js';
import { runChaos, verifyChaos, type ChaosOptions } from './harness.js';

const ITEMS = 5000;
const available = await pgAvailable();
const schema = freshSchemaName('cp_chaos');
const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
afterAll(async () => {
  if (available) await dropSchema(pool, schema);
  await pool.end();
});

describe.skipIf(!available)('chaos: PostgreSQL checkpoint shared by 4 processes', () => {
  it('drains 5,000 items through SIGKILLs and a SIGSTOP longer than the lease, each effect exactly once', async () => {
    const checkpoint = createCheckpoint({ storage: postgresCheckpoint({ pool }, { schema }), stream: 'chaos', maxAttempts: 1000 });
    expect(await checkpoint.add(Array.from({ length: ITEMS }, (_, i) => ({ key: `item-${String(i).padStart(5, '0')}`, payload: { i } })))).toBe(ITEMS);
    await pool.query(`CREATE TABLE IF NOT EXISTS "${schema}".chaos_ledger (key text PRIMARY KEY, token bigint NOT NULL, worker text NOT NULL, writes integer NOT NULL)`);
    const options: ChaosOptions = {
      env: { CHAOS_BACKEND: 'postgres', CHAOS_PG_URL: PG_URL, CHAOS_SCHEMA: schema },
      checkpoint,
      ledger: async () =>
        (await pool.query(`SELECT key, token, writes FROM "${schema}".chaos_ledger`)).rows.map((r: { key: string; token: string; writes: number }) => ({
          key: r.key,
          token: Number(r.token),
          writes: r.writes,
        })),
      items: ITEMS,
      workers: 4,
      leaseMs: 1500,
      deadlineMs: 100_000,
    };
    const report = await runChaos(options);
    const problems = await verifyChaos(options, report);
    const count = (prefix: string) => report.logs.filter((l) => l.startsWith(prefix)).length;
    console.info(
      `chaos: kills=${report.kills} stop=${report.stopMs}ms stale=${report.staleTokens.size} lost=${count('lost ')} ` +
        `refused-ledger-writes=${count('refused ')} stale-lost=${count('stale-lost ')} errors=${count('error ')}`,
    );
    expect(problems).toEqual([]);
    expect(report.kills).toBeGreaterThan(2);
    expect(report.stopMs).toBeGreaterThan(options.leaseMs);
    expect(report.staleTokens.size).toBeGreaterThan(0);
  }, 150_000);
});
