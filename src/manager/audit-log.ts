import type { StorageDriver, WriteOptions } from '../storage/contract.js';
import type { Clock, JsonObject } from '../types.js';

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

  /** Appends an entry that no session write carried (a failure rejects the call that audits). */
  async append(options: WriteOptions | undefined): Promise<void> {
    if (options?.audit) await this.#storage.audit?.append([options.audit]);
  }
}
