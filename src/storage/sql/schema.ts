import type { ColumnType, Generated } from 'kysely';

/**
 * Kysely table types shared by the SQLite and PostgreSQL drivers.
 *
 * Column conventions:
 * - times are epoch milliseconds: `integer` on SQLite, `bigint` on PostgreSQL (pg returns int8 as
 *   a string, so reads are typed `number | string` and parsed with `Number`);
 * - JSON values are stored as `text` on both dialects, so a row whose JSON cannot be parsed is
 *   reported as `readError` for that one session instead of failing the query;
 * - booleans are `integer` 0/1 on SQLite and `boolean` on PostgreSQL.
 */
export type Millis = ColumnType<number | string, number, number>;
export type NullableMillis = ColumnType<number | string | null, number | null, number | null>;
export type Bool = ColumnType<boolean | number, boolean | number, boolean | number>;

export interface SessionsTable {
  id: string;
  platform: string;
  config: string;
  labels: string;
  metadata: string;
  priority: number;
  capacity: number | null;
  auto_start: Bool;
  idle_timeout_ms: NullableMillis;
  allow_shared_credentials: Bool;
  desired_state: string;
  credentials: string | null;
  credentials_fingerprint: string | null;
  state: string;
  health: string;
  last_error: string | null;
  last_activity_at: NullableMillis;
  created_at: Millis;
  updated_at: Millis;
  version: number;
}

export interface SessionKvTable {
  session_id: string;
  key: string;
  value: string;
}

export interface SessionStatsTable {
  session_id: string;
  name: string;
  value: number;
}

export interface SessionTransitionsTable {
  id: Generated<number | string>;
  session_id: string;
  from_state: string;
  to_state: string;
  reason: string;
  at: Millis;
}

export interface AuditLogTable {
  id: Generated<number | string>;
  at: Millis;
  session_id: string | null;
  action: string;
  actor: string | null;
  details: string;
}

export interface WebhookEndpointsTable {
  id: string;
  url: string;
  description: string;
  events: string;
  sessions: string | null;
  secrets: string;
  enabled: Bool;
  disabled_reason: string | null;
  failing_since: NullableMillis;
  created_at: Millis;
  updated_at: Millis;
  version: number;
}

export interface WebhookDeliveriesTable {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  session_id: string | null;
  body: string;
  status: string;
  attempts: number;
  next_attempt_at: Millis;
  response_status: number | null;
  last_error: string | null;
  latency_ms: number | null;
  created_at: Millis;
  updated_at: Millis;
}

export interface UnitsTable {
  id: string;
  num: NullableMillis;
  kind: string;
  data: string;
  session_id: string | null;
  assigned_at: NullableMillis;
  created_at: Millis;
}

export interface StorageDatabase {
  sessions: SessionsTable;
  session_kv: SessionKvTable;
  session_stats: SessionStatsTable;
  session_transitions: SessionTransitionsTable;
  audit_log: AuditLogTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  units: UnitsTable;
}

/** A row of `sessions` as either dialect returns it. */
export type SessionRow = {
  [K in keyof SessionsTable]: SessionsTable[K] extends ColumnType<infer S, unknown, unknown> ? S : SessionsTable[K];
};
