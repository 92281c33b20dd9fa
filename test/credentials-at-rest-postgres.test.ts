import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe } from 'vitest';
import { postgresStorage } from 'multisession/postgres';
import { PG_URL } from './fixtures/storage/helpers.js';
import { credentialsAtRestCases } from './fixtures/storage/credentials-cases.js';

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

(reachable ? describe : describe.skip)('credentials at rest on PostgreSQL', () => {
  credentialsAtRestCases({
    fresh: () => {
      const schema = `${prefix}_${schemas.length + 1}`;
      schemas.push(schema);
      return schema;
    },
    storage: (schema) => postgresStorage({ connectionString: PG_URL }, { schema }),
    // Every row of every table in the schema, as text.
    dump: async (schema) => {
      const { rows: tables } = await admin.query<{ table_name: string }>(
        'select table_name from information_schema.tables where table_schema = $1',
        [schema],
      );
      const parts: string[] = [];
      for (const { table_name } of tables) {
        const { rows } = await admin.query<{ row: string }>(`select t::text as row from "${schema}"."${table_name}" t`);
        parts.push(...rows.map((r) => r.row));
      }
      return parts.join('\n');
    },
    sealed: async (schema) => {
      const { rows } = await admin.query<{ id: string; credentials: string | null }>(`select id, credentials from "${schema}".sessions order by id`);
      return Object.fromEntries(rows.map((r) => [r.id, r.credentials]));
    },
  });
});
