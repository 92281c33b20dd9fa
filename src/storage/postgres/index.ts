/**
 * `multisession/postgres`: the PostgreSQL storage driver and the stand-alone PostgreSQL
 * checkpoint, on pg 8 (an optional peer dependency, loaded only by this entry point).
 *
 * @example
 * ```ts
 * import { postgresStorage, postgresCheckpoint } from 'multisession/postgres';
 * const storage = postgresStorage({ connectionString: process.env.DATABASE_URL! }, { schema: 'bots' });
 * const shared = postgresCheckpoint({ connectionString: process.env.DATABASE_URL! }, { schema: 'jobs' });
 * ```
 */
export { postgresStorage } from './postgres-storage.js';
export { postgresCheckpoint } from './postgres-checkpoint.js';
export type { PostgresOptions, PostgresTarget } from './postgres-connection.js';
export type { PostgresClientLike, PostgresPoolLike, PostgresResult } from './postgres-client.js';

/** The names of the first releases (the same types). */
export type { PostgresTarget as PostgresStorageTarget, PostgresOptions as PostgresStorageOptions } from './postgres-connection.js';
export type { PostgresPoolLike as PgPoolLike } from './postgres-client.js';
