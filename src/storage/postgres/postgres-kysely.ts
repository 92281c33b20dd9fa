import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';
import type { PostgresPool, RawBuilder, Transaction } from 'kysely';
import { storageError } from '../guarded-storage.js';
import type { MigrationSet } from '../sql/migration-sets.js';
import { migrationProvider } from '../sql/migrations.js';
import type { StorageDatabase } from '../sql/schema.js';
import type { PostgresPoolLike } from './postgres-client.js';
import { PostgresScope, type PostgresConnection, type PostgresTarget } from './postgres-connection.js';

/**
 * Kysely on a pool of `multisession/postgres`: the query builder of the storage driver, and the
 * `Migrator`. Loaded by the checkpoint store only when it has migrations to run.
 */

type Db = Kysely<StorageDatabase>;

/** Kysely over `pool`, without the schema plugin (raw statements name the schema themselves) and with it. */
export interface PostgresKysely {
  readonly base: Db;
  /** Every table reference goes to the store's schema. */
  readonly db: Db;
}

/** Kysely on `pool`; destroying it never ends the pool (the store ends what it made). */
export function postgresKysely(pool: PostgresPoolLike, schema: string): PostgresKysely {
  const kyselyPool: PostgresPool = {
    connect: () => pool.connect() as unknown as ReturnType<PostgresPool['connect']>, // a pg client is both
    end: () => Promise.resolve(),
  };
  const base = new Kysely<StorageDatabase>({ dialect: new PostgresDialect({ pool: kyselyPool }) });
  return { base, db: base.withSchema(schema) };
}

/** Runs the pending migrations of `set` in `schema`, under Kysely's advisory lock. */
export async function runPostgresMigrations(pool: PostgresPoolLike, schema: string, set: MigrationSet): Promise<void> {
  const { base } = postgresKysely(pool, schema);
  try {
    const migrator = new Migrator({
      db: base,
      provider: migrationProvider(set, 'postgres', schema),
      migrationTableSchema: schema,
      migrationTableName: set.table,
      migrationLockTableName: set.lockTable,
    });
    const { error } = await migrator.migrateToLatest();
    if (error) throw error;
  } finally {
    await base.destroy();
  }
}

/** The scope of the storage driver's capabilities: the connection and its Kysely instances. */
export class PostgresSqlScope extends PostgresScope {
  readonly #kysely: () => PostgresKysely | null;

  constructor(target: PostgresTarget, schema: string, connection: () => PostgresConnection | null, kysely: () => PostgresKysely | null) {
    super(target, schema, connection);
    this.#kysely = kysely;
  }

  get #k(): PostgresKysely {
    const k = this.#kysely();
    if (!k) throw storageError('postgres', 'the store is not open; call init() first.');
    return k;
  }

  /** Kysely without the schema plugin. */
  get base(): Db {
    return this.#k.base;
  }

  /** Kysely whose table references go to the store's schema. */
  get db(): Db {
    return this.#k.db;
  }

  /** A table of the store's schema, for raw statements. */
  table(name: string): RawBuilder<unknown> {
    return sql.id(this.schema, name);
  }

  /** One transaction, run again when PostgreSQL picked it as a deadlock or serialization victim. */
  tx<T>(operation: string, fn: (trx: Transaction<StorageDatabase>) => Promise<T>): Promise<T> {
    return this.retry(operation, () => this.db.transaction().execute(fn));
  }
}
