import type { Checkpoint } from '../checkpoint/checkpoint.js';
import type { Lease } from '../checkpoint/contract.js';
import { LeaseLostError } from '../errors.js';
import type { CredentialCodec } from '../security/credentials.js';
import type { WebhookDeliveryPatch, WebhookDeliveryRecord, WebhookEndpointPatch, WebhookEndpointRecord, WebhookStore } from '../storage/webhook-contract.js';
import type { Clock } from '../types.js';
import type { WebhookSender } from './sender.js';
import { sign } from './signing.js';

/**
 * The delivery loop. Deliveries live in the store (the outbox and the log); each attempt is an
 * item of a checkpoint stream, keyed by the delivery and its state (`<id>.<attempts>.<updatedAt>`),
 * so every node that finds a delivery due adds the same item, one node claims it under a fenced
 * lease, and an attempt whose process died is claimed again when its lease expires. The attempt's
 * outcome is recorded with a compare-and-swap on `attempts`, so it is recorded once.
 */

export interface DispatcherSettings {
  retryScheduleMs: readonly number[];
  jitter: number;
  maxRetryAfterMs: number;
  disableAfterMs: number;
  leaseMs: number;
  concurrency: number;
  owner: string;
  random: () => number;
}

/** What the dispatcher tells the facade (which turns it into events). */
export interface DispatcherHooks {
  succeeded(d: WebhookDeliveryRecord): void;
  failed(d: WebhookDeliveryRecord): void;
  disabled(endpointId: string, reason: 'gone' | 'failing', at: number): void;
  error(error: unknown, operation: string): void;
}

/** A stored secret: the current one has no expiry; a previous one is valid until `expiresAt`. */
export interface StoredSecret {
  secret: string;
  expiresAt: number | null;
}

const HOUR = 3_600_000;

export class Dispatcher {
  readonly #store: WebhookStore;
  readonly #checkpoint: Checkpoint;
  readonly #codec: CredentialCodec;
  readonly #sender: WebhookSender;
  readonly #clock: Clock;
  readonly #s: DispatcherSettings;
  readonly #hooks: DispatcherHooks;
  #lastPurge = 0;

  constructor(parts: { store: WebhookStore; checkpoint: Checkpoint; codec: CredentialCodec; sender: WebhookSender; clock: Clock; settings: DispatcherSettings; hooks: DispatcherHooks }) {
    this.#store = parts.store;
    this.#checkpoint = parts.checkpoint;
    this.#codec = parts.codec;
    this.#sender = parts.sender;
    this.#clock = parts.clock;
    this.#s = parts.settings;
    this.#hooks = parts.hooks;
  }

  /** The checkpoint item of a delivery's next attempt. */
  static itemOf(d: WebhookDeliveryRecord): { key: string; payload: { id: string; attempts: number; stamp: number } } {
    return { key: `${d.id}.${d.attempts}.${d.updatedAt}`, payload: { id: d.id, attempts: d.attempts, stamp: d.updatedAt } };
  }

  /** Adds an attempt for every due delivery, then makes every claimable attempt; returns how many it made. */
  async run(): Promise<number> {
    // At most 500 a round (they stay due until attempted, so the next round finds the rest).
    const due = await this.#store.due(this.#clock.now(), 500);
    if (due.length) await this.#checkpoint.add(due.map(Dispatcher.itemOf));
    let attempted = 0;
    for (;;) {
      const leases = await this.#checkpoint.claim({ owner: this.#s.owner, limit: this.#s.concurrency, leaseMs: this.#s.leaseMs });
      if (!leases.length) break;
      await Promise.all(leases.map((l) => this.#attempt(l)));
      attempted += leases.length;
    }
    await this.#purge();
    return attempted;
  }

  /** Drops finished attempt items now and then (the deliveries themselves stay in the log). */
  async #purge(): Promise<void> {
    const now = this.#clock.now();
    if (now - this.#lastPurge < HOUR) return;
    this.#lastPurge = now;
    await this.#checkpoint.purge({ status: ['done', 'dead'], olderThanMs: HOUR });
  }

  async #attempt(lease: Lease): Promise<void> {
    const { id, attempts, stamp } = lease.payload as { id: string; attempts: number; stamp: number };
    try {
      const d = await this.#store.getDelivery(id);
      // Recorded meanwhile (by another node, or before a crash): nothing left to do for this item.
      if (d && d.status === 'pending' && d.attempts === attempts && d.updatedAt === stamp) await this.#deliver(d);
      await this.#checkpoint.complete(lease);
    } catch (error) {
      if (error instanceof LeaseLostError) return;
      this.#hooks.error(error, 'deliver');
      await this.#checkpoint.fail(lease, error instanceof Error ? error : String(error)).catch(() => undefined);
    }
  }

  async #deliver(d: WebhookDeliveryRecord): Promise<void> {
    const endpoint = await this.#store.getEndpoint(d.endpointId);
    if (!endpoint) return; // deleted: its deliveries went with it
    if (!endpoint.enabled) {
      await this.#record(d, { status: 'failed', lastError: `not sent: the endpoint is disabled (${endpoint.disabledReason ?? 'manual'})`, updatedAt: this.#clock.now() });
      return;
    }
    const body = this.#codec.open(d.body) as string;
    const seconds = Math.floor(this.#clock.now() / 1000);
    const signature = sign({ id: d.id, timestamp: seconds, body }, activeSecrets(this.#codec, endpoint, this.#clock.now()));
    const result = await this.#sender.post(endpoint.url, {
      'content-type': 'application/json',
      'user-agent': 'multisession-webhooks/1',
      'webhook-id': d.id,
      'webhook-timestamp': String(seconds),
      'webhook-signature': signature,
    }, body);
    const now = this.#clock.now();
    const attempts = d.attempts + 1;
    const base = { attempts, responseStatus: result.status, latencyMs: result.latencyMs, updatedAt: Math.max(now, d.updatedAt + 1) };
    if (result.error === null) {
      const done = await this.#record(d, { ...base, status: 'succeeded', lastError: null });
      if (done) this.#hooks.succeeded(done);
      if (endpoint.failingSince !== null) await this.#patchEndpoint(endpoint.id, () => ({ failingSince: null, updatedAt: now }));
      return;
    }
    if (result.status === 410) {
      const done = await this.#record(d, { ...base, status: 'failed', lastError: 'HTTP 410: the receiver says the endpoint is gone; it was disabled' });
      if (done) this.#hooks.failed(done);
      await this.#disable(endpoint.id, 'gone', now);
      return;
    }
    const retry = attempts <= this.#s.retryScheduleMs.length;
    const done = await this.#record(d, {
      ...base,
      status: retry ? 'pending' : 'failed',
      lastError: result.error,
      nextAttemptAt: retry ? now + this.#delay(attempts, result.retryAfterMs) : d.nextAttemptAt,
    });
    if (done) this.#hooks.failed(done);
    const since = endpoint.failingSince ?? now;
    if (endpoint.failingSince === null) await this.#patchEndpoint(endpoint.id, (e) => (e.failingSince === null ? { failingSince: now, updatedAt: now } : null));
    if (now - since >= this.#s.disableAfterMs) await this.#disable(endpoint.id, 'failing', now);
  }

  /** The wait before retry `n` (1-based): the schedule's, moved by jitter, at least `Retry-After`. */
  #delay(n: number, retryAfterMs: number | null): number {
    const base = this.#s.retryScheduleMs[n - 1] ?? 0;
    const jittered = Math.round(base * (1 + this.#s.jitter * (2 * this.#s.random() - 1)));
    return Math.max(jittered, Math.min(retryAfterMs ?? 0, this.#s.maxRetryAfterMs));
  }

  #record(d: WebhookDeliveryRecord, patch: WebhookDeliveryPatch): Promise<WebhookDeliveryRecord | null> {
    return this.#store.recordAttempt(d.id, d.attempts, patch);
  }

  async #disable(endpointId: string, reason: 'gone' | 'failing', at: number): Promise<void> {
    const changed = await this.#patchEndpoint(endpointId, (e) => (e.enabled ? { enabled: false, disabledReason: reason, updatedAt: at } : null));
    if (changed) this.#hooks.disabled(endpointId, reason, at);
  }

  /** A compare-and-swap on the endpoint, tried again on a lost race; `change` returns null for "nothing to do". */
  async #patchEndpoint(id: string, change: (e: WebhookEndpointRecord) => WebhookEndpointPatch | null): Promise<boolean> {
    for (let i = 0; i < 5; i++) {
      const current = await this.#store.getEndpoint(id);
      if (!current) return false;
      const patch = change(current);
      if (!patch) return false;
      if (await this.#store.updateEndpoint(id, patch, current.version)) return true;
    }
    return false;
  }
}

/** The secrets that sign now: the current one and a previous one until it expires. */
export function activeSecrets(codec: CredentialCodec, endpoint: WebhookEndpointRecord, now: number): string[] {
  const list = codec.open(endpoint.secrets) as unknown as StoredSecret[];
  return list.filter((s) => s.expiresAt === null || s.expiresAt > now).map((s) => s.secret);
}
