/** Which SQL dialect a migration writes for. */
export type SqlDialectName = 'sqlite' | 'postgres';

/**
 * A set of versioned schema migrations with its own bookkeeping tables (Kysely's `Migrator`), so
 * one set runs without the other: a stand-alone checkpoint store makes only the checkpoint tables,
 * a storage driver runs both sets. The names (in the order they run) live here, apart from the
 * migrations themselves (`migrations.ts`, which loads Kysely): a store whose tables are up to date
 * finds that out with one plain query and never loads Kysely to migrate.
 *
 * Never rename or edit a released migration: add a new one.
 */
export interface MigrationSet {
  readonly name: 'sessions' | 'checkpoint';
  /** Bookkeeping tables, kept apart from other apps' (and the other set's) migrations. */
  readonly table: string;
  readonly lockTable: string;
  /** Every migration of the set, in the order it runs. */
  readonly migrations: readonly string[];
}

/** The session tables: sessions, per-session KV, counters, history, the audit log, the cluster's nodes and leases, webhook endpoints and deliveries, work units. */
export const SESSION_MIGRATIONS: MigrationSet = Object.freeze({
  name: 'sessions',
  // The names the first releases used (kept so existing databases upgrade in place).
  table: 'multisession_migration',
  lockTable: 'multisession_migration_lock',
  migrations: Object.freeze(['0001_initial', '0002_hot_status_updates', '0003_cluster', '0004_webhooks', '0005_units']),
});

/** The checkpoint tables (items, and the streams table or the fencing sequence). */
export const CHECKPOINT_MIGRATIONS: MigrationSet = Object.freeze({
  name: 'checkpoint',
  table: 'multisession_checkpoint_migration',
  lockTable: 'multisession_checkpoint_migration_lock',
  migrations: Object.freeze(['0001_checkpoint', '0002_cheap_claimable_predicate']),
});

/** What a storage driver's `init` runs, in order; a checkpoint store runs only the checkpoint set. */
export const STORAGE_MIGRATION_SETS: readonly MigrationSet[] = Object.freeze([SESSION_MIGRATIONS, CHECKPOINT_MIGRATIONS]);

/** True unless every migration of `set` is among the `done` names read from its bookkeeping table. */
export const isPending = (set: MigrationSet, done: Iterable<string>): boolean => {
  const ran = new Set(done);
  return set.migrations.some((name) => !ran.has(name));
};
