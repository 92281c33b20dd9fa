import { describe } from 'vitest';
import { postgresForTests } from './helpers/postgres.js';
import { clusterCases } from './fixtures/cluster/cases.js';

const pg = await postgresForTests('ms_cluster');

describe.skipIf(!pg.reachable)('cluster on one PostgreSQL schema (real processes)', () => {
  clusterCases(
    'postgres',
    () => pg.freshSchema(),
    async (schema, sql) => Number((await pg.admin.query(sql.replace(/from (\w+)/, `from "${schema}".$1`))).rows[0].n),
  );
});
