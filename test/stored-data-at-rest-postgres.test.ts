import { describe } from 'vitest';
import { postgresStorage } from 'multisession/postgres';
import { PG_URL, postgresForTests } from './fixtures/storage/helpers.js';
import { storedDataAtRestCases } from './fixtures/storage/stored-data-cases.js';

/** Real server at MULTISESSION_PG_URL; skipped when unreachable, except under CI. */
const { reachable, admin, freshSchema } = await postgresForTests();

(reachable ? describe : describe.skip)('auth state and context data at rest on PostgreSQL', () => {
  storedDataAtRestCases({
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
    kvRows: async (schema) =>
      (await admin.query<{ sessionId: string; key: string; value: string }>(`select session_id as "sessionId", key, value::text as value from "${schema}".session_kv order by session_id collate "C", key collate "C"`)).rows,
    copyValue: async (schema, [fromId, fromKey], [toId, toKey]) => {
      await admin.query(
        `insert into "${schema}".session_kv (session_id, key, value) select $1, $2, value from "${schema}".session_kv where session_id = $3 and key = $4
         on conflict (session_id, key) do update set value = excluded.value`,
        [toId, toKey, fromId, fromKey],
      );
    },
  });
});
