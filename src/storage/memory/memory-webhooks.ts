import { ValidationError } from '../../errors.js';
import type {
  WebhookDeliveryPatch,
  WebhookDeliveryQuery,
  WebhookDeliveryRecord,
  WebhookEndpointPatch,
  WebhookEndpointRecord,
  WebhookStore,
} from '../webhook-contract.js';
import * as check from '../webhook-checks.js';

/** Newest first: `createdAt`, then id. */
export const newestFirst = (a: WebhookDeliveryRecord, b: WebhookDeliveryRecord): number =>
  b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/** The `webhooks` capability of the memory driver: endpoints and deliveries in Maps. */
export class MemoryWebhooks implements WebhookStore {
  readonly #endpoints = new Map<string, WebhookEndpointRecord>();
  readonly #deliveries = new Map<string, WebhookDeliveryRecord>();

  async createEndpoint(record: WebhookEndpointRecord): Promise<WebhookEndpointRecord> {
    const r = check.checkEndpoint(record);
    if (this.#endpoints.has(r.id)) throw new ValidationError('webhook endpoint record', [{ path: ['id'], message: `"${r.id}" is taken; choose another id` }]);
    this.#endpoints.set(r.id, check.copyEndpoint(r));
    return check.copyEndpoint(r);
  }

  async getEndpoint(id: string): Promise<WebhookEndpointRecord | null> {
    const r = this.#endpoints.get(check.checkWebhookId(id));
    return r ? check.copyEndpoint(r) : null;
  }

  async listEndpoints(): Promise<WebhookEndpointRecord[]> {
    return [...this.#endpoints.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map(check.copyEndpoint);
  }

  async updateEndpoint(id: string, patch: WebhookEndpointPatch, expectedVersion: number): Promise<WebhookEndpointRecord | null> {
    check.checkWebhookId(id);
    const p = check.checkEndpointPatch(patch);
    check.checkCount(expectedVersion, 'expected version');
    const current = this.#endpoints.get(id);
    if (!current || current.version !== expectedVersion) return null;
    const next = check.copyEndpoint({ ...current, ...p, version: current.version + 1 });
    this.#endpoints.set(id, next);
    return check.copyEndpoint(next);
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    if (!this.#endpoints.delete(check.checkWebhookId(id))) return false;
    for (const [key, d] of this.#deliveries) if (d.endpointId === id) this.#deliveries.delete(key);
    return true;
  }

  async enqueue(deliveries: WebhookDeliveryRecord[]): Promise<number> {
    let added = 0;
    for (const d of check.checkDeliveries(deliveries)) {
      if (this.#deliveries.has(d.id) || !this.#endpoints.has(d.endpointId)) continue;
      this.#deliveries.set(d.id, { ...d });
      added++;
    }
    return added;
  }

  async getDelivery(id: string): Promise<WebhookDeliveryRecord | null> {
    const d = this.#deliveries.get(check.checkWebhookId(id));
    return d ? { ...d } : null;
  }

  async listDeliveries(query: WebhookDeliveryQuery): Promise<WebhookDeliveryRecord[]> {
    const q = check.checkDeliveryQuery(query);
    return [...this.#deliveries.values()]
      .filter(
        (d) =>
          (q.endpointId === undefined || d.endpointId === q.endpointId) &&
          (q.status === undefined || d.status === q.status) &&
          (q.since === undefined || d.createdAt >= q.since) &&
          (q.until === undefined || d.createdAt < q.until),
      )
      .sort(newestFirst)
      .slice(0, q.limit ?? 100)
      .map((d) => ({ ...d }));
  }

  async due(now: number, limit: number): Promise<WebhookDeliveryRecord[]> {
    check.checkTime(now, 'now');
    check.checkCount(limit, 'limit');
    return [...this.#deliveries.values()]
      .filter((d) => d.status === 'pending' && d.nextAttemptAt <= now)
      .sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || (a.id < b.id ? -1 : 1))
      .slice(0, limit)
      .map((d) => ({ ...d }));
  }

  async recordAttempt(id: string, expectedAttempts: number, patch: WebhookDeliveryPatch): Promise<WebhookDeliveryRecord | null> {
    check.checkWebhookId(id);
    check.checkCount(expectedAttempts, 'expected attempts');
    const p = check.checkDeliveryPatch(patch);
    const current = this.#deliveries.get(id);
    if (!current || current.attempts !== expectedAttempts) return null;
    const next = { ...current, ...p };
    this.#deliveries.set(id, next);
    return { ...next };
  }
}
