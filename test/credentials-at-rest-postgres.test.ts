import { describe } from 'vitest';
import { postgresStorage } from 'multisession/postgres';
import { PG_URL, postgresForTests } from './fixtures/storage/helpers.js';
import { credentialsAtRestCases } from './fixtures/storage/credentials-cases.js';

/** Real server at MULTISESSION_PG_URL; skipped when unreachable, except under CI. */
const { reachable, admin, freshSchema } = await postgresForTests();

(reachable ? describe : describe.skip)('credentials at rest on PostgreSQL', () => {
  credentialsAtRestCases({
    fresh: freshSchema,
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
