import type { Kysely, Selectable } from 'kysely';
import { ValidationError } from '../../errors.js';
import type {
  WebhookDeliveryPatch,
  WebhookDeliveryQuery,
  WebhookDeliveryRecord,
  WebhookDeliveryStatus,
  WebhookEndpointPatch,
  WebhookEndpointRecord,
  WebhookSessionFilter,
  WebhookStore,
} from '../webhook-contract.js';
import * as check from '../webhook-checks.js';
import type { StorageDatabase, WebhookDeliveriesTable, WebhookEndpointsTable } from './schema.js';

type Db = Kysely<StorageDatabase>;
type EndpointRow = Selectable<WebhookEndpointsTable>;
type DeliveryRow = Selectable<WebhookDeliveriesTable>;

/** How a driver runs one statement: its Kysely instance (schema applied) and its error wrapping. */
export interface SqlWebhookScope {
  readonly dialect: 'sqlite' | 'postgres';
  db(): Db;
  wrap<T>(operation: string, promise: Promise<T>): Promise<T>;
}

/** PostgreSQL's 23503 or SQLite's SQLITE_CONSTRAINT_FOREIGNKEY. */
function isForeignKeyViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY';
}

const bool = (v: boolean | number): boolean => v === true || v === 1;
const num = (v: number | string): number => Number(v);
const numOrNull = (v: number | string | null): number | null => (v === null ? null : Number(v));

function endpointFromRow(r: EndpointRow): WebhookEndpointRecord {
  return {
    id: r.id,
    url: r.url,
    description: r.description,
    events: JSON.parse(r.events) as string[],
    sessions: r.sessions === null ? null : (JSON.parse(r.sessions) as WebhookSessionFilter),
    secrets: r.secrets,
    enabled: bool(r.enabled),
    disabledReason: r.disabled_reason,
    failingSince: numOrNull(r.failing_since),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    version: r.version,
  };
}

function deliveryFromRow(r: DeliveryRow): WebhookDeliveryRecord {
  return {
    id: r.id,
    endpointId: r.endpoint_id,
    eventId: r.event_id,
    eventType: r.event_type,
    sessionId: r.session_id,
    body: r.body,
    status: r.status as WebhookDeliveryStatus,
    attempts: r.attempts,
    nextAttemptAt: num(r.next_attempt_at),
    responseStatus: r.response_status,
    lastError: r.last_error,
    latencyMs: r.latency_ms,
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

/**
 * The `webhooks` capability of the SQL drivers, written once with Kysely. Every write is one
 * statement (no transaction is held across an `await`, which the SQLite driver relies on); the
 * compare-and-swaps are `UPDATE … WHERE id = ? AND version|attempts = ? RETURNING *`, and deleting
 * an endpoint removes its deliveries through the foreign key (`ON DELETE CASCADE`).
 */
export class SqlWebhooks implements WebhookStore {
  readonly #scope: SqlWebhookScope;

  constructor(scope: SqlWebhookScope) {
    this.#scope = scope;
  }

  #bool(v: boolean): boolean | number {
    return this.#scope.dialect === 'postgres' ? v : v ? 1 : 0;
  }

  async createEndpoint(record: WebhookEndpointRecord): Promise<WebhookEndpointRecord> {
    const r = check.checkEndpoint(record);
    const row = await this.#scope.wrap(
      'createWebhookEndpoint',
      this.#scope
        .db()
        .insertInto('webhook_endpoints')
        .values({
          id: r.id,
          url: r.url,
          description: r.description,
          events: JSON.stringify(r.events),
          sessions: r.sessions === null ? null : JSON.stringify(r.sessions),
          secrets: r.secrets,
          enabled: this.#bool(r.enabled),
          disabled_reason: r.disabledReason,
          failing_since: r.failingSince,
          created_at: r.createdAt,
          updated_at: r.updatedAt,
          version: r.version,
        })
        .onConflict((oc) => oc.column('id').doNothing())
        .returningAll()
        .executeTakeFirst(),
    );
    if (!row) throw new ValidationError('webhook endpoint record', [{ path: ['id'], message: `"${r.id}" is taken; choose another id` }]);
    return endpointFromRow(row);
  }

  async getEndpoint(id: string): Promise<WebhookEndpointRecord | null> {
    check.checkWebhookId(id);
    const row = await this.#scope.wrap('getWebhookEndpoint', this.#scope.db().selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst());
    return row ? endpointFromRow(row) : null;
  }

  async listEndpoints(): Promise<WebhookEndpointRecord[]> {
    const rows = await this.#scope.wrap('listWebhookEndpoints', this.#scope.db().selectFrom('webhook_endpoints').selectAll().orderBy('id').execute());
    return rows.map(endpointFromRow);
  }

  async updateEndpoint(id: string, patch: WebhookEndpointPatch, expectedVersion: number): Promise<WebhookEndpointRecord | null> {
    check.checkWebhookId(id);
    const p = check.checkEndpointPatch(patch);
    check.checkCount(expectedVersion, 'expected version');
    const set: Partial<Record<keyof WebhookEndpointsTable, unknown>> = { updated_at: p.updatedAt, version: expectedVersion + 1 };
    if (p.url !== undefined) set.url = p.url;
    if (p.description !== undefined) set.description = p.description;
    if (p.events !== undefined) set.events = JSON.stringify(p.events);
    if (p.sessions !== undefined) set.sessions = p.sessions === null ? null : JSON.stringify(p.sessions);
    if (p.secrets !== undefined) set.secrets = p.secrets;
    if (p.enabled !== undefined) set.enabled = this.#bool(p.enabled);
    if (p.disabledReason !== undefined) set.disabled_reason = p.disabledReason;
    if (p.failingSince !== undefined) set.failing_since = p.failingSince;
    const row = await this.#scope.wrap(
      'updateWebhookEndpoint',
      this.#scope
        .db()
        .updateTable('webhook_endpoints')
        .set(set as never)
        .where('id', '=', id)
        .where('version', '=', expectedVersion)
        .returningAll()
        .executeTakeFirst(),
    );
    return row ? endpointFromRow(row) : null;
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    check.checkWebhookId(id);
    const result = await this.#scope.wrap('deleteWebhookEndpoint', this.#scope.db().deleteFrom('webhook_endpoints').where('id', '=', id).executeTakeFirst());
    return Number(result.numDeletedRows) > 0;
  }

  async enqueue(deliveries: WebhookDeliveryRecord[]): Promise<number> {
    const list = check.checkDeliveries(deliveries);
    let added = 0;
    // One statement per delivery: each is idempotent, so a crash between two leaves nothing to undo.
    for (const d of list) {
      const insert = this.#scope
        .db()
        .insertInto('webhook_deliveries')
        .values({
          id: d.id,
          endpoint_id: d.endpointId,
          event_id: d.eventId,
          event_type: d.eventType,
          session_id: d.sessionId,
          body: d.body,
          status: d.status,
          attempts: d.attempts,
          next_attempt_at: d.nextAttemptAt,
          response_status: d.responseStatus,
          last_error: d.lastError,
          latency_ms: d.latencyMs,
          created_at: d.createdAt,
          updated_at: d.updatedAt,
        })
        .onConflict((oc) => oc.column('id').doNothing())
        .executeTakeFirst()
        // A delivery of an endpoint deleted meanwhile is skipped (the foreign key refuses it).
        .catch((err: unknown) => (isForeignKeyViolation(err) ? null : Promise.reject(err)));
      const result = await this.#scope.wrap('enqueueWebhookDelivery', insert);
      added += result ? Number(result.numInsertedOrUpdatedRows ?? 0n) : 0;
    }
    return added;
  }

  async getDelivery(id: string): Promise<WebhookDeliveryRecord | null> {
    check.checkWebhookId(id);
    const row = await this.#scope.wrap('getWebhookDelivery', this.#scope.db().selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirst());
    return row ? deliveryFromRow(row) : null;
  }

  async listDeliveries(query: WebhookDeliveryQuery): Promise<WebhookDeliveryRecord[]> {
    const q = check.checkDeliveryQuery(query);
    let s = this.#scope.db().selectFrom('webhook_deliveries').selectAll();
    if (q.endpointId !== undefined) s = s.where('endpoint_id', '=', q.endpointId);
    if (q.status !== undefined) s = s.where('status', '=', q.status);
    if (q.since !== undefined) s = s.where('created_at', '>=', q.since);
    if (q.until !== undefined) s = s.where('created_at', '<', q.until);
    const rows = await this.#scope.wrap('listWebhookDeliveries', s.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(q.limit ?? 100).execute());
    return rows.map(deliveryFromRow);
  }

  async due(now: number, limit: number): Promise<WebhookDeliveryRecord[]> {
    check.checkTime(now, 'now');
    check.checkCount(limit, 'limit');
    if (limit === 0) return [];
    const rows = await this.#scope.wrap(
      'dueWebhookDeliveries',
      this.#scope
        .db()
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .orderBy('next_attempt_at')
        .orderBy('id')
        .limit(limit)
        .execute(),
    );
    return rows.map(deliveryFromRow);
  }

  async recordAttempt(id: string, expectedAttempts: number, patch: WebhookDeliveryPatch): Promise<WebhookDeliveryRecord | null> {
    check.checkWebhookId(id);
    check.checkCount(expectedAttempts, 'expected attempts');
    const p = check.checkDeliveryPatch(patch);
    const set: Partial<Record<keyof WebhookDeliveriesTable, unknown>> = { updated_at: p.updatedAt };
    if (p.status !== undefined) set.status = p.status;
    if (p.attempts !== undefined) set.attempts = p.attempts;
    if (p.nextAttemptAt !== undefined) set.next_attempt_at = p.nextAttemptAt;
    if (p.responseStatus !== undefined) set.response_status = p.responseStatus;
    if (p.lastError !== undefined) set.last_error = p.lastError;
    if (p.latencyMs !== undefined) set.latency_ms = p.latencyMs;
    const row = await this.#scope.wrap(
      'recordWebhookAttempt',
      this.#scope
        .db()
        .updateTable('webhook_deliveries')
        .set(set as never)
        .where('id', '=', id)
        .where('attempts', '=', expectedAttempts)
        .returningAll()
        .executeTakeFirst(),
    );
    return row ? deliveryFromRow(row) : null;
  }
}
