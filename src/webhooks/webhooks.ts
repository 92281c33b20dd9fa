import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { Checkpoint } from '../checkpoint/checkpoint.js';
import { UnsupportedError, ValidationError, WebhookNotFoundError } from '../errors.js';
import { SESSION_MANAGER_EVENTS, type SessionManagerEventName } from '../manager/events.js';
import type { SessionManager } from '../manager/session-manager.js';
import { CredentialCodec, SECRET_KEY_ENV } from '../security/credentials.js';
import { guardStore } from '../storage/guarded-storage.js';
import type { StorageDriver } from '../storage/contract.js';
import type { WebhookDeliveryRecord, WebhookEndpointRecord, WebhookStore } from '../storage/webhook-contract.js';
import { systemClock, type Clock, type JsonValue } from '../types.js';
import { parseWith } from '../validation.js';
import { activeSecrets, Dispatcher, type StoredSecret } from './dispatcher.js';
import { bodyOf, deliveryIdOf, eventIdOf, fromManagerEvent, type WebhookEvent } from './events.js';
import {
  deliveryQuerySchema,
  endpointInputSchema,
  endpointPatchSchema,
  replayRangeSchema,
  rotateOptionsSchema,
  sendSchema,
  webhookIdSchema,
  webhooksOptionsSchema,
  type WebhookEndpointInput,
  type WebhookEndpointUpdate,
  type WebhooksOptions,
} from './schemas.js';
import { WebhookSender } from './sender.js';
import { generateWebhookSecret, secretBytes } from './signing.js';
import { refusedUrl } from './targets.js';

/** An endpoint as the API shows it: never a secret. */
export interface WebhookEndpoint extends Omit<WebhookEndpointRecord, 'secrets' | 'version'> {
  /** How many secrets sign now (2 during a rotation), and when the previous one stops. */
  secrets: { count: number; previousExpiresAt: number | null };
}

/** A delivery as the log shows it: the request body is not included. */
export type WebhookDelivery = Omit<WebhookDeliveryRecord, 'body'>;

/** The typed events of {@link Webhooks}. */
export interface WebhooksEvents {
  'delivery.succeeded': (event: { delivery: WebhookDelivery }) => void;
  /** An attempt failed; `delivery.status` is `pending` while a retry is scheduled, `failed` when it gave up. */
  'delivery.failed': (event: { delivery: WebhookDelivery }) => void;
  /** An endpoint was disabled: the receiver answered 410 (`gone`) or every attempt failed for `disableAfterMs` (`failing`). */
  'endpoint.disabled': (event: { endpointId: string; reason: 'gone' | 'failing'; at: number }) => void;
  'webhooks.error': (event: { error: unknown; operation: string }) => void;
}

/** The options of {@link createWebhooks}, with the storage driver and manager typed. */
export type CreateWebhooksOptions = Omit<WebhooksOptions, 'storage' | 'manager'> & { storage: StorageDriver; manager?: SessionManager };

const view = (codec: CredentialCodec, r: WebhookEndpointRecord, now: number): WebhookEndpoint => {
  const { secrets, version: _v, ...rest } = r;
  const list = codec.open(secrets) as unknown as StoredSecret[];
  const live = list.filter((s) => s.expiresAt === null || s.expiresAt > now);
  const previous = live.find((s) => s.expiresAt !== null);
  return { ...rest, secrets: { count: live.length, previousExpiresAt: previous?.expiresAt ?? null } };
};
const logView = ({ body: _b, ...rest }: WebhookDeliveryRecord): WebhookDelivery => rest;

/**
 * Signed, durable webhooks (Standard Webhooks 1.0). Events of the manager, and events you `send`,
 * go to every matching endpoint through an outbox in the store; a checkpoint stream on the same
 * store makes each attempt under a fenced lease. Make one with {@link createWebhooks}.
 */
export class Webhooks extends EventEmitter<WebhooksEvents> {
  readonly #store: WebhookStore;
  readonly #codec: CredentialCodec;
  readonly #clock: Clock;
  readonly #o: ReturnType<typeof parseOptions>;
  readonly #sender: WebhookSender;
  readonly #dispatcher: Dispatcher;
  readonly #unsubscribe: (() => void)[] = [];
  readonly #manager: SessionManager | undefined;
  #cache: { at: number; list: WebhookEndpointRecord[] } | null = null;
  #timer: unknown = null;
  #running: Promise<void> | null = null;
  #again = false;
  #started = false;

  constructor(options: CreateWebhooksOptions) {
    super();
    const o = (this.#o = parseOptions(options));
    const storage = guardStore(options.storage);
    if (!storage.webhooks) throw new UnsupportedError('webhooks', storage.kind);
    if (!storage.checkpoint) throw new UnsupportedError('checkpoint', storage.kind);
    this.#store = storage.webhooks;
    this.#codec = new CredentialCodec(o.secretKey ?? process.env[SECRET_KEY_ENV] ?? undefined, storage.persistent);
    this.#clock = o.clock ?? systemClock;
    this.#manager = options.manager;
    this.#sender = new WebhookSender(o);
    const checkpoint = new Checkpoint({ storage, stream: o.stream, maxAttempts: 10, backoff: { minMs: 1000, maxMs: 60_000, factor: 2 } });
    this.#dispatcher = new Dispatcher({
      store: this.#store,
      checkpoint,
      codec: this.#codec,
      sender: this.#sender,
      clock: this.#clock,
      settings: { ...o, owner: o.owner ?? `webhooks-${randomUUID()}`, random: o.random ?? Math.random },
      hooks: {
        succeeded: (d) => this.emit('delivery.succeeded', { delivery: logView(d) }),
        failed: (d) => this.emit('delivery.failed', { delivery: logView(d) }),
        disabled: (endpointId, reason, at) => {
          this.#cache = null;
          this.emit('endpoint.disabled', { endpointId, reason, at });
        },
        error: (error, operation) => this.emit('webhooks.error', { error, operation }),
      },
    });
    if (options.manager) this.#subscribe(options.manager);
  }

  /**
   * Adds an endpoint and returns it with its secret: the only time the secret is shown (store it
   * in the receiver). Refuses a URL that points at a private address unless `allowPrivateTargets`.
   */
  async createEndpoint(input: WebhookEndpointInput): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const i = parseWith(endpointInputSchema, input, 'webhook endpoint');
    this.#checkUrl(i.url);
    const secret = i.secret ?? generateWebhookSecret();
    secretBytes(secret, ['secret']);
    const now = this.#clock.now();
    const record = await this.#store.createEndpoint({
      id: `ep_${randomBytes(12).toString('base64url')}`,
      url: i.url,
      description: i.description,
      events: i.events,
      sessions: i.sessions,
      secrets: this.#codec.seal([{ secret, expiresAt: null }] as unknown as JsonValue),
      enabled: i.enabled,
      disabledReason: i.enabled ? null : 'manual',
      failingSince: null,
      createdAt: now,
      updatedAt: now,
      version: 1,
    });
    this.#cache = null;
    return { endpoint: view(this.#codec, record, now), secret };
  }

  async getEndpoint(id: string): Promise<WebhookEndpoint> {
    return view(this.#codec, await this.#endpoint(id), this.#clock.now());
  }

  async listEndpoints(): Promise<WebhookEndpoint[]> {
    const now = this.#clock.now();
    return (await this.#store.listEndpoints()).map((r) => view(this.#codec, r, now));
  }

  /** Changes an endpoint; enabling one clears why it was disabled and its failing time. */
  async updateEndpoint(id: string, patch: WebhookEndpointUpdate): Promise<WebhookEndpoint> {
    const p = parseWith(endpointPatchSchema, patch, 'webhook endpoint update');
    if (p.url !== undefined) this.#checkUrl(p.url);
    const updated = await this.#change(id, (current) => ({
      ...p,
      ...(p.enabled === true && !current.enabled ? { disabledReason: null, failingSince: null } : {}),
      ...(p.enabled === false && current.enabled ? { disabledReason: 'manual' } : {}),
    }));
    return view(this.#codec, updated, this.#clock.now());
  }

  /** Deletes an endpoint with its delivery log. */
  async deleteEndpoint(id: string): Promise<void> {
    if (!(await this.#store.deleteEndpoint(parseWith(webhookIdSchema, id, 'webhook endpoint id')))) throw new WebhookNotFoundError('endpoint', id);
    this.#cache = null;
  }

  /**
   * A new signing secret, returned once. The previous one keeps signing beside it (two
   * signatures per webhook) for `keepPreviousForMs` (default 24 h), so receivers can switch.
   */
  async rotateSecret(id: string, options?: { keepPreviousForMs?: number; secret?: string }): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const o = parseWith(rotateOptionsSchema, options, 'secret rotation options');
    const secret = o.secret ?? generateWebhookSecret();
    secretBytes(secret, ['secret']);
    const now = this.#clock.now();
    const updated = await this.#change(id, (current) => {
      const previous = activeSecrets(this.#codec, current, now).find(Boolean);
      const list: StoredSecret[] = [{ secret, expiresAt: null }];
      if (previous && o.keepPreviousForMs > 0) list.push({ secret: previous, expiresAt: now + o.keepPreviousForMs });
      return { secrets: this.#codec.seal(list as unknown as JsonValue) };
    });
    return { endpoint: view(this.#codec, updated, now), secret };
  }

  /** Enqueues an event of your own for every matching endpoint; returns the delivery ids. */
  async send(event: { type: string; data: JsonValue; sessionId?: string | null; eventId?: string; at?: number }): Promise<string[]> {
    const e = parseWith(sendSchema, event, 'webhook event');
    const at = e.at ?? this.#clock.now();
    const data = e.data as JsonValue;
    return this.#ingest({ id: e.eventId ?? eventIdOf(e.type, { data, at, nonce: randomUUID() }), type: e.type, at, sessionId: e.sessionId, data });
  }

  /** Sends a `webhook.test` event to one endpoint now (whatever its filters) and returns the delivery after the attempt. */
  async testSend(endpointId: string): Promise<WebhookDelivery> {
    const endpoint = await this.#endpoint(endpointId);
    const at = this.#clock.now();
    const event: WebhookEvent = { id: `evt_test_${randomUUID()}`, type: 'webhook.test', at, sessionId: null, data: { endpointId, at } };
    const [id] = await this.#enqueue(event, [endpoint], false);
    await this.deliverDue();
    let delivery = await this.delivery(id!);
    // The loop of start() may have claimed the attempt first: wait for its round to end.
    for (let i = 0; i < 20 && delivery.status === 'pending' && delivery.attempts === 0; i++) {
      await (this.#running ?? this.deliverDue());
      delivery = await this.delivery(id!);
    }
    return delivery;
  }

  /** The delivery log of an endpoint, newest first. */
  async deliveries(endpointId: string, query?: { status?: WebhookDeliveryRecord['status']; since?: number; until?: number; limit?: number }): Promise<WebhookDelivery[]> {
    await this.#endpoint(endpointId);
    const q = parseWith(deliveryQuerySchema, query, 'delivery query');
    return (await this.#store.listDeliveries({ endpointId, ...q })).map(logView);
  }

  async delivery(id: string): Promise<WebhookDelivery> {
    const d = await this.#store.getDelivery(parseWith(webhookIdSchema, id, 'delivery id'));
    if (!d) throw new WebhookNotFoundError('delivery', id);
    return logView(d);
  }

  /** Sends a delivery again, with the same `webhook-id` (receivers deduplicate by it), from a fresh retry schedule. */
  async replay(deliveryId: string): Promise<WebhookDelivery> {
    const d = await this.#store.getDelivery(parseWith(webhookIdSchema, deliveryId, 'delivery id'));
    if (!d) throw new WebhookNotFoundError('delivery', deliveryId);
    const again = await this.#restart(d);
    this.#kick();
    return logView(again ?? d);
  }

  /** Replays an endpoint's finished deliveries created in [since, until); returns how many. */
  async replayRange(endpointId: string, range: { since: number; until?: number; status?: 'succeeded' | 'failed' }): Promise<number> {
    await this.#endpoint(endpointId);
    const r = parseWith(replayRangeSchema, range, 'replay range');
    const list = await this.#store.listDeliveries({ endpointId, since: r.since, ...(r.until === undefined ? {} : { until: r.until }), ...(r.status ? { status: r.status } : {}), limit: 10_000 });
    let count = 0;
    for (const d of list) if (d.status !== 'pending' && (await this.#restart(d))) count++;
    this.#kick();
    return count;
  }

  /** Makes every attempt that is due now (the loop of `start()` calls it; tests call it after moving the clock). */
  async deliverDue(): Promise<number> {
    return this.#dispatcher.run();
  }

  /** Starts delivering: every `pollMs`, and at once when an event is enqueued. */
  start(): void {
    this.#started = true;
    this.#kick();
  }

  /** Stops the loop and waits for the attempts in flight. */
  async stop(): Promise<void> {
    this.#started = false;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    while (this.#running) await this.#running;
  }

  /** Stops, stops listening to the manager and closes the HTTP connections (not the store). */
  async close(): Promise<void> {
    for (const off of this.#unsubscribe.splice(0)) off();
    await this.stop();
    await this.#sender.close();
  }

  #kick(): void {
    if (!this.#started) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          // A full round (500 due) may leave more due: go on at once.
          if ((await this.#dispatcher.run()) >= 500) this.#again = true;
        } catch (error) {
          this.emit('webhooks.error', { error, operation: 'deliver' });
        }
      } while (this.#again && this.#started);
    })().finally(() => {
      this.#running = null;
      if (this.#started) this.#timer = this.#clock.setTimeout(() => this.#kick(), this.#o.pollMs);
    });
  }

  #subscribe(manager: SessionManager): void {
    for (const name of SESSION_MANAGER_EVENTS) {
      if (name === 'manager.error') continue;
      const listener = (payload: unknown): Promise<void> | void => {
        const event = fromManagerEvent(name as SessionManagerEventName, payload as Record<string, unknown>);
        if (!event) return;
        const done = this.#ingest(event).then(
          () => undefined,
          (error: unknown) => void this.emit('webhooks.error', { error, operation: `enqueue ${name}` }),
        );
        // An adapter waits for its message listeners before it confirms a message (at least once).
        return name === 'session.message' ? done : undefined;
      };
      manager.on(name, listener as never);
      this.#unsubscribe.push(() => manager.off(name, listener as never));
    }
  }

  async #ingest(event: WebhookEvent): Promise<string[]> {
    const endpoints = (await this.#endpoints()).filter((e) => e.enabled && (e.events.includes('*') || e.events.includes(event.type)));
    const matching: WebhookEndpointRecord[] = [];
    let labels: Record<string, string> | null | undefined;
    for (const e of endpoints) {
      if (e.sessions === null) {
        matching.push(e);
        continue;
      }
      if (event.sessionId === null) continue;
      if (e.sessions.ids.includes(event.sessionId)) {
        matching.push(e);
        continue;
      }
      const wanted = Object.entries(e.sessions.labels);
      if (!wanted.length) continue;
      labels ??= await this.#labelsOf(event);
      if (labels && wanted.every(([k, v]) => labels![k] === v)) matching.push(e);
    }
    return this.#enqueue(event, matching);
  }

  async #enqueue(event: WebhookEvent, endpoints: WebhookEndpointRecord[], kick = true): Promise<string[]> {
    if (!endpoints.length) return [];
    const now = this.#clock.now();
    const body = this.#codec.seal(bodyOf(event));
    const deliveries = endpoints.map((e) => ({
      id: deliveryIdOf(e.id, event.id),
      endpointId: e.id,
      eventId: event.id,
      eventType: event.type,
      sessionId: event.sessionId,
      body,
      status: 'pending' as const,
      attempts: 0,
      nextAttemptAt: now,
      responseStatus: null,
      lastError: null,
      latencyMs: null,
      createdAt: now,
      updatedAt: now,
    }));
    await this.#store.enqueue(deliveries);
    if (kick) this.#kick();
    return deliveries.map((d) => d.id);
  }

  async #labelsOf(event: WebhookEvent): Promise<Record<string, string> | null> {
    const session = (event.data as { session?: { labels?: Record<string, string> } } | null)?.session;
    if (session?.labels) return session.labels;
    if (!this.#manager || event.sessionId === null) return null;
    try {
      return (await this.#manager.get(event.sessionId)).labels;
    } catch {
      return null; // deleted meanwhile: label filters do not match it
    }
  }

  /** Endpoints, read again at most every `pollMs` (and after a change made here). */
  async #endpoints(): Promise<WebhookEndpointRecord[]> {
    const now = this.#clock.now();
    if (!this.#cache || now - this.#cache.at >= this.#o.pollMs || now < this.#cache.at) this.#cache = { at: now, list: await this.#store.listEndpoints() };
    return this.#cache.list;
  }

  async #endpoint(id: string): Promise<WebhookEndpointRecord> {
    const r = await this.#store.getEndpoint(parseWith(webhookIdSchema, id, 'webhook endpoint id'));
    if (!r) throw new WebhookNotFoundError('endpoint', id);
    return r;
  }

  async #change(id: string, patch: (current: WebhookEndpointRecord) => Partial<WebhookEndpointRecord>): Promise<WebhookEndpointRecord> {
    for (;;) {
      const current = await this.#endpoint(id);
      const updated = await this.#store.updateEndpoint(id, { ...patch(current), updatedAt: this.#clock.now() }, current.version);
      if (updated) {
        this.#cache = null;
        return updated;
      }
    }
  }

  async #restart(d: WebhookDeliveryRecord): Promise<WebhookDeliveryRecord | null> {
    const now = this.#clock.now();
    return this.#store.recordAttempt(d.id, d.attempts, { status: 'pending', attempts: 0, nextAttemptAt: now, lastError: null, updatedAt: Math.max(now, d.updatedAt + 1) });
  }

  #checkUrl(url: string): void {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ValidationError('webhook endpoint', [{ path: ['url'], message: 'must be an absolute http or https URL' }]);
    }
    const refused = refusedUrl(parsed, this.#o.allowPrivateTargets);
    if (refused) throw new ValidationError('webhook endpoint', [{ path: ['url'], message: refused }]);
  }
}

function parseOptions(options: CreateWebhooksOptions) {
  return parseWith(webhooksOptionsSchema, options, 'webhooks options');
}

/**
 * Signed, durable webhooks over a store with the `webhooks` and `checkpoint` capabilities (the
 * bundled drivers have both). Pass the manager to send its session events.
 *
 * @example
 * ```ts
 * const webhooks = createWebhooks({ storage, manager, secretKey });
 * const { endpoint, secret } = await webhooks.createEndpoint({ url: 'https://example.com/hooks', events: ['session.state'] });
 * webhooks.start();
 * ```
 */
export function createWebhooks(options: CreateWebhooksOptions): Webhooks {
  return new Webhooks(options);
}
