import { UnsupportedError } from '../errors.js';
import type { StorageDriver, WriteOptions } from '../storage/contract.js';
import type { Clock, JsonObject } from '../types.js';
import type { ScheduledTask, Scheduler } from './scheduler.js';

/** How often the retention runs at most (and at least once per retention period). */
const PRUNE_EVERY_MS = 60 * 60_000;

/**
 * The manager's audit entries, durable when the audited call returns: an entry rides on the
 * session write that makes the change (`{ audit }` of `sessions.create`/`update`/`delete`/
 * `replaceCredentials`, stored in the same transaction), and an entry no write carries (`logout`,
 * `clear`, a `start` of a session already meant to run) is appended on its own before the call
 * returns. A store without the `audit` capability keeps none.
 */
export class AuditLog {
  readonly #storage: StorageDriver;
  readonly #clock: Clock;

  constructor(storage: StorageDriver, clock: Clock) {
    this.#storage = storage;
    this.#clock = clock;
  }

  /** The write options that store the entry of `action` with the change; undefined when the store keeps no audit log. */
  entry(action: string, sessionId: string | null, actor: string | undefined, details: JsonObject, at = this.#clock.now()): WriteOptions | undefined {
    if (!this.#storage.audit) return undefined;
    return { audit: { at, sessionId, action, actor: actor ?? null, details } };
  }

  #retention: ScheduledTask | null = null;

  /**
   * The `audit.retentionMs` option: deletes the entries older than `retentionMs` now, then every
   * hour (or every `retentionMs`, when shorter), on the manager's scheduler and clock.
   */
  /**
   * The hook that starts pruning once the manager is open (`audit.retentionMs`), or undefined when
   * everything is kept; `UnsupportedError` for a store whose audit log cannot prune.
   */
  retention(retentionMs: number | null, scheduler: Scheduler, onError: (error: unknown) => void): (() => void) | undefined {
    if (retentionMs === null) return undefined;
    if (this.#storage.audit && !this.#storage.audit.prune) throw new UnsupportedError('audit.prune', this.#storage.kind);
    return () => this.retain(retentionMs, scheduler, onError);
  }

  retain(retentionMs: number, scheduler: Scheduler, onError: (error: unknown) => void): void {
    const prune = this.#storage.audit?.prune;
    if (this.#retention || !prune) return;
    const run = (): void => {
      task.rearm(Math.min(retentionMs, PRUNE_EVERY_MS));
      prune(this.#clock.now() - retentionMs).catch(onError);
    };
    const task = (this.#retention = scheduler.schedule(0, run));
  }

  /** Appends an entry that no session write carried (a failure rejects the call that audits). */
  async append(options: WriteOptions | undefined): Promise<void> {
    if (options?.audit) await this.#storage.audit?.append([options.audit]);
  }
}
