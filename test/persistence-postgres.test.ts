import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe } from 'vitest';
import { postgresStorage } from 'multisession/postgres';
import { PG_URL } from './fixtures/storage/helpers.js';
import { persistenceCases } from './fixtures/storage/persistence-cases.js';

/** Real server at MULTISESSION_PG_URL; skipped when unreachable, except under CI. */
const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
const reachable = await admin.query('select 1').then(
  () => true,
  (err: Error) => {
    if (process.env.CI) throw new Error(`PostgreSQL at ${PG_URL} must be reachable under CI: ${err.message}`);
    return false;
  },
);
const prefix = `ms_test_${randomBytes(4).toString('hex')}`;
const schemas: string[] = [];

afterAll(async () => {
  if (reachable) for (const s of schemas) await admin.query(`drop schema if exists "${s}" cascade`);
  await admin.end();
});

(reachable ? describe : describe.skip)('persistence on PostgreSQL (real child processes, SIGKILL)', () => {
  persistenceCases({
    kind: 'postgres',
    fresh: () => {
      const schema = `${prefix}_${schemas.length + 1}`;
      schemas.push(schema);
      return schema;
    },
    storage: (schema) => postgresStorage({ connectionString: PG_URL }, { schema }),
    rawSet: async (schema, id, column, value) => {
      await admin.query(`update "${schema}".sessions set ${column} = $1 where id = $2`, [value, id]);
    },
  });
});
