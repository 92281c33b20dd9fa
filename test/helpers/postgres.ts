import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll } from 'vitest';

/** The PostgreSQL server the tests use: `MULTISESSION_PG_URL`, or the local test server. */
export const PG_URL = process.env.MULTISESSION_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Whether the server answers. The one rule for every PostgreSQL test: without a server a file is
 * skipped, except under `CI`, where an unreachable server fails it instead.
 */
export async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch (err) {
    if (process.env.CI) throw new Error(`PostgreSQL at ${PG_URL} must be reachable under CI: ${(err as Error).message}`, { cause: err });
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The real server for a test file: whether it is reachable ({@link postgresReachable}), an admin
 * pool, and fresh schemas on demand, all dropped after the file. Call at the top level of the file.
 */
export async function postgresForTests(prefix = 'ms_test'): Promise<{ reachable: boolean; admin: pg.Pool; freshSchema(): string }> {
  const reachable = await postgresReachable();
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const base = `${prefix}_${randomBytes(4).toString('hex')}`;
  const schemas: string[] = [];
  afterAll(async () => {
    if (reachable) for (const s of schemas) await admin.query(`drop schema if exists "${s}" cascade`);
    await admin.end();
  });
  return {
    reachable,
    admin,
    freshSchema: () => {
      const schema = `${base}_${schemas.length + 1}`;
      schemas.push(schema);
      return schema;
    },
  };
}
