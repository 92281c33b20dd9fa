import { DecryptionError, SessionNotFoundError } from '../errors.js';
import type { KvEntry, KvOperation, KvStore } from '../storage/contract.js';
import type { JsonValue } from '../types.js';
import { type KvValueCodec, sealedKeyIdOf } from './kv-values.js';

/** Holds writes back while a key rotation runs (the credential vault's gate). */
export interface KeyGate {
  withKey<T>(fn: () => Promise<T>): Promise<T>;
}

/** Which values are sealed. */
export interface SealPolicy {
  /** Whether the value stored under `key` must be sealed (a plain one is refused). */
  sealed(key: string): boolean;
  /** Added to the `SecretKeyRequiredError` of a value under `key` that cannot be sealed for want of a key. */
  withoutKey(key: string): string;
}

/**
 * The store's `kv` capability with values sealed on the way in and opened on the way out, above
 * the driver contract (drivers store the sealed strings as any JSON value). The policy says which
 * keys must hold sealed values (auth state always, context data unless turned off); keys
 * themselves stay plain, so listing and clearing by prefix work as before.
 *
 * Writes and clears pass the key gate, so none lands with the old key, or on a session's values
 * between a rotation's read and rewrite of them. Reads do not wait: during a rotation they open
 * values sealed with either key, and a read that raced the switch of keys is made again.
 */
export class SealedKvStore implements KvStore {
  readonly #raw: KvStore;
  readonly #codec: KvValueCodec;
  readonly #gate: KeyGate;
  readonly #policy: SealPolicy;

  constructor(raw: KvStore, codec: KvValueCodec, gate: KeyGate, policy: SealPolicy) {
    this.#raw = raw;
    this.#codec = codec;
    this.#gate = gate;
    this.#policy = policy;
  }

  get(sessionId: string, key: string): Promise<JsonValue | undefined> {
    return this.#read(async () => {
      const stored = await this.#raw.get(sessionId, key);
      return stored === undefined ? undefined : this.#codec.open(sessionId, key, stored, this.#policy.sealed(key));
    });
  }

  list(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]> {
    return this.#read(async () => {
      const entries = await this.#raw.list(sessionId, options);
      return entries.map((e) => ({ key: e.key, value: this.#codec.open(sessionId, e.key, e.value, this.#policy.sealed(e.key)) }));
    });
  }

  write(sessionId: string, ops: KvOperation[], options?: { fence?: number }): Promise<void> {
    // Sealed inside the gate: a rotation may have changed the key meanwhile.
    return this.#gate.withKey(() =>
      this.#raw.write(
        sessionId,
        ops.map((o) => (o.op === 'set' && this.#policy.sealed(o.key) ? { op: 'set', key: o.key, value: this.#codec.seal(sessionId, o.key, o.value, this.#policy.withoutKey(o.key)) } : o)),
        options,
      ),
    );
  }

  clear(sessionId: string, options?: { prefix?: string }): Promise<number> {
    return this.#gate.withKey(() => this.#raw.clear(sessionId, options));
  }

  /**
   * Re-seals with `next` the values of these sessions that are sealed with another key, or plain
   * where they must be sealed (written before encryption at rest); values already sealed with
   * `next` (a rotation that stopped half-way) are kept. Two passes: every value is opened first, so
   * one that cannot be stops the rotation with nothing changed; then each session's values are
   * rewritten in one atomic write. Run while the gate holds writes back. Returns how many.
   */
  async reseal(sessionIds: readonly string[], next: KvValueCodec): Promise<number> {
    for (const id of sessionIds) {
      try {
        this.#resealed(id, await this.#raw.list(id), next, false);
      } catch (error) {
        if (!(error instanceof DecryptionError)) throw error;
        throw new DecryptionError(`Key rotation stopped: ${error.message} Nothing was changed.`, { cause: error, context: error.context });
      }
    }
    let count = 0;
    for (const id of sessionIds) {
      const ops = this.#resealed(id, await this.#raw.list(id), next, true);
      if (ops.length === 0) continue;
      try {
        await this.#raw.write(id, ops);
      } catch (error) {
        if (error instanceof SessionNotFoundError) continue; // deleted meanwhile, with its values
        throw error;
      }
      count += ops.length;
    }
    return count;
  }

  /** The writes that re-seal a session's entries with `next` (checked, not made, when `write` is false). */
  #resealed(sessionId: string, entries: KvEntry[], next: KvValueCodec, write: boolean): KvOperation[] {
    const ops: KvOperation[] = [];
    for (const { key, value } of entries) {
      const keyId = sealedKeyIdOf(value);
      const mustBeSealed = this.#policy.sealed(key);
      if (keyId === null && !mustBeSealed) continue; // plain where plain is allowed
      if (keyId !== null && keyId === next.keyId) {
        if (!write) next.open(sessionId, key, value, true);
        continue;
      }
      const plain = keyId === null ? value : this.#codec.open(sessionId, key, value, true);
      if (write) ops.push({ op: 'set', key, value: next.seal(sessionId, key, plain) });
    }
    return ops;
  }

  /** A read made again when the key changed under it (it may have read a value just re-sealed). */
  async #read<T>(fn: () => Promise<T>): Promise<T> {
    const generation = this.#codec.generation;
    try {
      return await fn();
    } catch (error) {
      if (this.#codec.generation === generation) throw error;
      return fn();
    }
  }
}
