import type { Kysely } from 'kysely';
import type { StorageDatabase } from '../sql/schema.js';
import { sqliteError, type SqliteConnection } from './sqlite-connection.js';
import type { SqliteStatements } from './sqlite-statements.js';

/** What the parts of the SQLite driver share once the store is open. */
export interface Open {
  readonly c: SqliteConnection;
  /** The query builder of the reads written once for both SQL drivers (sql/queries.ts). */
  readonly kysely: Kysely<StorageDatabase>;
  readonly s: SqliteStatements;
}

/** Runs `fn`, turning a driver error into a StorageError naming `operation`. */
export function run<T>(operation: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw sqliteError(operation, err);
  }
}

/** One synchronous `BEGIN IMMEDIATE` transaction: all or nothing, no `await` inside. */
export function write<T>(operation: string, p: Open, fn: () => T): T {
  return run(operation, () => p.c.db.transaction(fn).immediate() as T);
}

export async function wrapAsync<T>(operation: string, promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw sqliteError(operation, err);
  }
}
