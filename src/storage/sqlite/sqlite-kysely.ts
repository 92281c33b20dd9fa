import { CompiledQuery, Kysely, Migrator, SqliteAdapter, SqliteDialect, SqliteDriver } from 'kysely';
import type { DatabaseConnection, DialectAdapter, Driver, SqliteDialectConfig } from 'kysely';
import type { MigrationSet } from '../sql/migration-sets.js';
import { migrationProvider } from '../sql/migrations.js';
import type { StorageDatabase } from '../sql/schema.js';
import type { SqliteClient } from './sqlite-client.js';

/**
 * Kysely on a SQLite client of `multisession/sqlite`: the query builder of the storage driver's
 * reads, and the `Migrator`. Loaded by the checkpoint store only when it has migrations to run.
 */

/** A Kysely instance on `db`; destroying it leaves `db` open (the store closes what it opened). */
export function sqliteKysely(db: SqliteClient): Kysely<StorageDatabase> {
  return new Kysely<StorageDatabase>({ dialect: new MultisessionSqliteDialect({ database: db }) });
}

/** Runs the pending migrations of `set` in one `BEGIN IMMEDIATE` transaction. */
export async function runSqliteMigrations(db: SqliteClient, set: MigrationSet): Promise<void> {
  const kysely = sqliteKysely(db);
  try {
    const migrator = new Migrator({
      db: kysely,
      provider: migrationProvider(set, 'sqlite'),
      migrationTableName: set.table,
      migrationLockTableName: set.lockTable,
    });
    const { error } = await migrator.migrateToLatest();
    if (error) throw error;
  } finally {
    await kysely.destroy();
  }
}

/** Kysely transactions on this connection take the write lock up front (used by migrations). */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
  override async destroy(): Promise<void> {
    // The store closes the client itself (and only when it opened it).
  }
}

/** SQLite runs DDL in transactions: the migrator then holds `BEGIN IMMEDIATE` for the whole run. */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class MultisessionSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter();
  }
}
