import { describe } from 'vitest';
import { postgresStorage } from 'multisession/postgres';
import { PG_URL, postgresForTests } from './fixtures/storage/helpers.js';
import { persistenceCases } from './fixtures/storage/persistence-cases.js';

/** Real server at MULTISESSION_PG_URL; skipped when unreachable, except under CI. */
const { reachable, admin, freshSchema } = await postgresForTests();

(reachable ? describe : describe.skip)('persistence on PostgreSQL (real child processes, SIGKILL)', () => {
  persistenceCases({
    kind: 'postgres',
    fresh: freshSchema,
    storage: (schema) => postgresStorage({ connectionString: PG_URL }, { schema }),
    rawSet: async (schema, id, column, value) => {
      await admin.query(`update "${schema}".sessions set ${column} = $1 where id = $2`, [value, id]);
    },
  });
});
