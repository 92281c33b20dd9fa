/**
 * `multisession/sqlite`: the SQLite storage driver and the stand-alone SQLite checkpoint, on
 * better-sqlite3 (an optional peer dependency, loaded only by this entry point).
 *
 * @example
 * ```ts
 * import { sqliteStorage, sqliteCheckpoint } from 'multisession/sqlite';
 * const storage = sqliteStorage({ filename: './sessions.db' });      // for a SessionManager
 * const shared = sqliteCheckpoint({ filename: './checkpoint.db' });  // for createCheckpoint only
 * ```
 */
export { sqliteStorage } from './sqlite-storage.js';
export { sqliteCheckpoint } from './sqlite-checkpoint.js';
export type { SqliteOptions, SqliteTarget } from './sqlite-connection.js';
export type { SqliteClient, SqliteStatement, SqliteTransaction } from './sqlite-client.js';

/** The names of the first releases (the same types). */
export type { SqliteTarget as SqliteStorageTarget, SqliteOptions as SqliteStorageOptions } from './sqlite-connection.js';
