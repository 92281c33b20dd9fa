import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { SqlDialectName } from './migration-sets.js';

/**
 * `sessions/0004_webhooks`: the tables of the `webhooks` capability (`multisession/webhooks`):
 * endpoints (secrets sealed by the caller) and the delivery log, which is also the outbox.
 */
export async function webhooksMigration(db: Kysely<any>, dialect: SqlDialectName, schema: string | undefined): Promise<void> {
  const pg = dialect === 'postgres';
  const s = schema ? db.schema.withSchema(schema) : db.schema;
  const millis = pg ? 'bigint' : 'integer';
  const key = pg ? sql`text collate "C"` : sql`text`;
  await s
    .createTable('webhook_endpoints')
    .addColumn('id', key, (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('sessions', 'text')
    .addColumn('secrets', 'text', (c) => c.notNull())
    .addColumn('enabled', pg ? 'boolean' : 'integer', (c) => c.notNull())
    .addColumn('disabled_reason', 'text')
    .addColumn('failing_since', millis)
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('updated_at', millis, (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .execute();
  await s
    .createTable('webhook_deliveries')
    .addColumn('id', key, (c) => c.primaryKey())
    .addColumn('endpoint_id', key, (c) => c.notNull().references('webhook_endpoints.id').onDelete('cascade'))
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('session_id', 'text')
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('next_attempt_at', millis, (c) => c.notNull())
    .addColumn('response_status', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('latency_ms', 'integer')
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('updated_at', millis, (c) => c.notNull())
    .execute();
  // The delivery log of one endpoint, newest first; the dispatcher's scan of due deliveries.
  await s.createIndex('webhook_deliveries_endpoint_idx').on('webhook_deliveries').columns(['endpoint_id', 'created_at']).execute();
  await s.createIndex('webhook_deliveries_due_idx').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();
}
