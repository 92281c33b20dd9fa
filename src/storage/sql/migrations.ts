import { sql } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import { StorageError } from '../../errors.js';
import type { MigrationSet, SqlDialectName } from './migration-sets.js';
import { webhooksMigration } from './migration-webhooks.js';

export type { SqlDialectName } from './migration-sets.js';

type Up = (db: Kysely<any>, dialect: SqlDialectName, schema: string | undefined) => Promise<void>;

/** The migrations of every set, by `<set>/<name>` (the names and their order are in `migration-sets.ts`). */
const UP: Record<string, Up> = {
  'sessions/0001_initial': initial,
  'sessions/0002_hot_status_updates': hotStatusUpdates,
  'sessions/0003_cluster': cluster,
  'sessions/0004_webhooks': webhooksMigration,
  'sessions/0005_units': units,
  'checkpoint/0001_checkpoint': (db, dialect, schema) => (dialect === 'postgres' ? checkpointPostgres(db, schema) : checkpointSqlite(db)),
  'checkpoint/0002_cheap_claimable_predicate': (db, dialect) => (dialect === 'sqlite' ? cheapClaimablePredicate(db) : Promise.resolve()),
};

/** The Kysely `MigrationProvider` of `set`, for one dialect (and PostgreSQL schema). */
export function migrationProvider(set: MigrationSet, dialect: SqlDialectName, schema?: string): MigrationProvider {
  const migrations: Record<string, Migration> = {};
  for (const name of set.migrations) {
    const up = UP[`${set.name}/${name}`];
    if (!up) throw new StorageError(`[${dialect}] migration ${set.name}/${name} has no implementation (a broken build of the package)`);
    migrations[name] = { up: (db) => up(db, dialect, schema) };
  }
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

/**
 * The cluster: the nodes sharing the store, each session's ownership lease (a row of its own, so
 * renewing thousands of leases never rewrites the session rows) and the change feed other nodes
 * read. Lease tokens come from one sequence (PostgreSQL) or counter row (SQLite) and only grow.
 */
async function cluster(db: Kysely<any>, dialect: SqlDialectName, schema: string | undefined): Promise<void> {
  const pg = dialect === 'postgres';
  const s = schema ? db.schema.withSchema(schema) : db.schema;
  const millis = pg ? 'bigint' : 'integer';
  const key = pg ? sql`text collate "C"` : sql`text`;
  await s
    .createTable('cluster_nodes')
    .addColumn('node_id', key, (c) => c.primaryKey())
    .addColumn('incarnation', 'text', (c) => c.notNull())
    .addColumn('host', 'text', (c) => c.notNull())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('started_at', millis, (c) => c.notNull())
    .addColumn('last_seen_at', millis, (c) => c.notNull())
    .addColumn('expires_at', millis, (c) => c.notNull())
    .addColumn('running', 'integer', (c) => c.notNull())
    .addColumn('max_running', 'integer')
    .addColumn('draining', pg ? 'boolean' : 'integer', (c) => c.notNull())
    .execute();
  await s
    .createTable('session_owners')
    .addColumn('session_id', key, (c) => c.primaryKey().references('sessions.id').onDelete('cascade'))
    .addColumn('node_id', key, (c) => c.notNull())
    .addColumn('token', pg ? 'bigint' : 'integer', (c) => c.notNull())
    .addColumn('since', millis, (c) => c.notNull())
    .addColumn('expires_at', millis, (c) => c.notNull())
    .execute();
  await s.createIndex('session_owners_node_idx').on('session_owners').column('node_id').execute();
  await s
    .createTable('session_changes')
    .addColumn('seq', pg ? 'bigint' : 'integer', (c) => (pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement()))
    .addColumn('session_id', key, (c) => c.notNull())
    // A relayed event (JSON) and the node that published it; null for a change of the session itself.
    .addColumn('node_id', 'text')
    .addColumn('event', 'text')
    .execute();
  // Placement asks for the sessions that should run, by priority.
  await s.createIndex('sessions_runnable_idx').on('sessions').columns(['desired_state', 'priority desc', 'id']).execute();
  if (pg) {
    await sql`create sequence if not exists ${schema ? sql.id(schema, 'session_owner_token') : sql.id('session_owner_token')}`.execute(db);
  } else {
    await s.createTable('cluster_tokens').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('last', 'integer', (c) => c.notNull()).execute();
    await sql`insert into cluster_tokens (id, last) values (1, 0)`.execute(db);
  }
}

/**
 * Work units: each assigned to at most one session (its units become unassigned when it is
 * deleted). `num` is the id as an integer when it is one (ranges select by it), else null.
 */
async function units(db: Kysely<any>, dialect: SqlDialectName, schema: string | undefined): Promise<void> {
  const pg = dialect === 'postgres';
  const s = schema ? db.schema.withSchema(schema) : db.schema;
  const millis = pg ? 'bigint' : 'integer';
  const key = pg ? sql`text collate "C"` : sql`text`;
  await s
    .createTable('units')
    .addColumn('id', key, (c) => c.primaryKey())
    .addColumn('num', millis)
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('session_id', key, (c) => c.references('sessions.id').onDelete('set null'))
    .addColumn('assigned_at', millis)
    .addColumn('created_at', millis, (c) => c.notNull())
    .execute();
  await s.createIndex('units_session_idx').on('units').columns(['session_id', 'id']).execute();
  await s.createIndex('units_num_idx').on('units').column('num').execute();
}

// The checkpoint tables were first made by raw `CREATE … IF NOT EXISTS` DDL in the backends. The
// migration makes the same tables and indexes, also with IF NOT EXISTS, so a database made by
// that code upgrades in place: its tables and rows stay, the migration is only recorded.

async function checkpointSqlite(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('checkpoint_items')
    .ifNotExists()
    .addColumn('seq', 'integer', (c) => c.primaryKey())
    // checkpoint_streams.id: small keys keep the indexes small
    .addColumn('stream', 'integer', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('payload', 'text')
    .addColumn('result', 'text')
    .addColumn('error', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('owner', 'text')
    .addColumn('token', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('run_at', 'integer', (c) => c.notNull())
    .addColumn('avail_at', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'integer', (c) => c.notNull())
    .addColumn('updated_at', 'integer', (c) => c.notNull())
    .addColumn('completed_at', 'integer')
    .addUniqueConstraint('checkpoint_items_stream_key', ['stream', 'key'])
    .execute();
  // Claimable rows only; status rides along so a claim scans the index alone (ties: status, then rowid).
  await db.schema
    .createIndex('checkpoint_items_claimable')
    .ifNotExists()
    .on('checkpoint_items')
    .columns(['stream', 'priority desc', 'avail_at', 'status'])
    .where(sql<boolean>`status in ('pending', 'failed', 'processing')`)
    .execute();
  await db.schema
    .createTable('checkpoint_streams')
    .ifNotExists()
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('fence', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

async function checkpointPostgres(db: Kysely<any>, schema: string | undefined): Promise<void> {
  const s = schema ? db.schema.withSchema(schema) : db.schema;
  const key = sql`text collate "C"`;
  await s
    .createTable('checkpoint_items')
    .ifNotExists()
    .addColumn('seq', 'bigint', (c) => c.generatedAlwaysAsIdentity())
    .addColumn('stream', key, (c) => c.notNull())
    .addColumn('key', key, (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('payload', 'jsonb')
    .addColumn('result', 'jsonb')
    .addColumn('error', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('owner', 'text')
    .addColumn('token', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('run_at', 'bigint', (c) => c.notNull())
    .addColumn('avail_at', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('completed_at', 'bigint')
    .addPrimaryKeyConstraint('checkpoint_items_pkey', ['stream', 'key'])
    .execute();
  // One sequence for every fencing token of the schema: tokens only grow, in every stream.
  await sql`create sequence if not exists ${schema ? sql.id(schema, 'checkpoint_fence') : sql.id('checkpoint_fence')}`.execute(db);
  await s
    .createIndex('checkpoint_items_claimable')
    .ifNotExists()
    .on('checkpoint_items')
    .columns(['stream', 'priority desc', 'avail_at', 'seq'])
    .where(sql<boolean>`status in ('pending', 'failed', 'processing')`)
    .execute();
}

/**
 * SQLite: the claimable index's predicate `status IN ('pending', 'failed', 'processing')` is
 * evaluated for the old and the new row of every write that touches status or the indexed
 * columns (every add, claim, completion, release, renewal), and an IN list of more than two
 * values is compiled to a temporary b-tree built afresh each time: about a microsecond per row.
 * `status NOT IN ('done', 'dead')` (the same rows: a status is one of five) is compiled to two
 * comparisons; claims ask for it in the same words, which is what lets SQLite use a partial
 * index. The index keeps its name, columns and rows. PostgreSQL: nothing to do (it tests an IN
 * list against an array).
 */
async function cheapClaimablePredicate(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('checkpoint_items_claimable').ifExists().execute();
  await db.schema
    .createIndex('checkpoint_items_claimable')
    .on('checkpoint_items')
    .columns(['stream', 'priority desc', 'avail_at', 'status'])
    .where(sql<boolean>`status NOT IN ('done', 'dead')`)
    .execute();
}
