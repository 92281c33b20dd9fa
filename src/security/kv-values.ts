import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { DecryptionError, SecretKeyRequiredError } from '../errors.js';
import type { JsonValue } from '../types.js';
import { HOW_TO_SET_KEY, keyIdOf, parseSecretKey } from './credentials.js';

/**
 * KV values at rest (auth state, and context data unless turned off): AES-256-GCM under a key
 * derived from the secret key (HKDF-SHA256, info `multisession kv value`), a fresh 12-byte IV per
 * value, and the session id and full KV key as associated data, so a value copied to another
 * session or key fails to open. Keys stay plain (listing by prefix works); only values are sealed.
 *
 * Sealed form, stored as a JSON string: `ms-kv1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url
 * parts; `keyId` is the secret key's id, the one credentials carry). Without a key, and only on a
 * non-persistent store (memory), values are kept as they are, as credentials are.
 */
export const SEALED_VALUE_PREFIX = 'ms-kv1.';

interface ValueKey {
  readonly id: string;
  readonly key: Buffer;
}

function valueKeyOf(secretKey: string): ValueKey {
  const raw = parseSecretKey(secretKey);
  return { id: keyIdOf(raw), key: Buffer.from(hkdfSync('sha256', raw, Buffer.alloc(0), 'multisession kv value', 32)) };
}

/** What a sealed value is bound to: its session and its full key (namespace prefix included). */
const boundTo = (sessionId: string, key: string): Buffer => Buffer.from(`multisession kv1\n${JSON.stringify([sessionId, key])}`);

/** The key id a stored value is sealed with, or null when it is not in the sealed form. */
export function sealedKeyIdOf(stored: JsonValue): string | null {
  if (typeof stored !== 'string' || !stored.startsWith(SEALED_VALUE_PREFIX)) return null;
  return stored.slice(SEALED_VALUE_PREFIX.length).split('.', 1)[0]!;
}

/**
 * Seals and opens KV values. It seals with one key and opens with the keys it accepts: that one,
 * and during a key rotation (or after one that stopped half-way) the new one too.
 */
export class KvValueCodec {
  #sealing: ValueKey | null;
  readonly #opening = new Map<string, Buffer>();
  readonly #persistent: boolean;
  #generation = 0;

  constructor(secretKey: string | undefined, persistent: boolean) {
    this.#persistent = persistent;
    this.#sealing = secretKey ? valueKeyOf(secretKey) : null;
    if (this.#sealing) this.#opening.set(this.#sealing.id, this.#sealing.key);
  }

  /** Changes each time the sealing key does (a read that raced a rotation is retried on it). */
  get generation(): number {
    return this.#generation;
  }

  get keyId(): string | null {
    return this.#sealing?.id ?? null;
  }

  /** A codec with another key and the same persistence rule (for key rotation). */
  withKey(secretKey: string): KvValueCodec {
    return new KvValueCodec(secretKey, this.#persistent);
  }

  /** Opens values sealed with `secretKey` as well (a rotation to it is under way). */
  accept(secretKey: string): void {
    const next = valueKeyOf(secretKey);
    this.#opening.set(next.id, next.key);
  }

  /** Seals with `secretKey` from now on, and opens only what it sealed (a rotation to it finished). */
  use(secretKey: string): void {
    this.#sealing = valueKeyOf(secretKey);
    this.#opening.clear();
    this.#opening.set(this.#sealing.id, this.#sealing.key);
    this.#generation++;
  }

  /** The sealed form of `value` stored under `key` of `sessionId` (`hint` ends the error when there is no key to seal it with). */
  seal(sessionId: string, key: string, value: JsonValue, hint = ''): JsonValue {
    if (!this.#sealing) {
      if (this.#persistent) {
        throw new SecretKeyRequiredError(`A persistent store needs a secret key to keep "${key}" of session "${sessionId}" encrypted. ${HOW_TO_SET_KEY}${hint}`, {
          context: { sessionId, key },
        });
      }
      return value;
    }
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#sealing.key, iv);
    cipher.setAAD(boundTo(sessionId, key));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return `${SEALED_VALUE_PREFIX}${this.#sealing.id}.${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.${ciphertext.toString('base64url')}`;
  }

  /**
   * The plain value of what is stored under `key` of `sessionId`. A value not in the sealed form
   * is returned as it is where values may be plain (`mustBeSealed` false, or a memory store with
   * no key) and refused elsewhere: it was written before encryption at rest, or by something else.
   */
  open(sessionId: string, key: string, stored: JsonValue, mustBeSealed: boolean): JsonValue {
    const context = { sessionId, key };
    const keyId = sealedKeyIdOf(stored);
    if (keyId === null) {
      if (!mustBeSealed || (!this.#sealing && !this.#persistent)) return stored;
      if (!this.#sealing) {
        throw new SecretKeyRequiredError(
          `"${key}" of session "${sessionId}" must be kept encrypted and no secret key is set. ${HOW_TO_SET_KEY} ` +
            'Then call manager.rotateSecretKey(key) once to encrypt the values stored without one.',
          { context },
        );
      }
      throw new DecryptionError(
        `The value of "${key}" of session "${sessionId}" is stored unencrypted (written before encryption at rest, or by another program), so it is not trusted. ` +
          'Call manager.rotateSecretKey() once with your key (the current one will do) to encrypt such values, or delete the value.',
        { context },
      );
    }
    const parts = (stored as string).slice(SEALED_VALUE_PREFIX.length).split('.');
    if (parts.length !== 4) throw new DecryptionError(`The value of "${key}" of session "${sessionId}" is not in a known sealed format; set it again.`, { context });
    const [, iv, tag, ciphertext] = parts as [string, string, string, string];
    const secret = this.#opening.get(keyId);
    if (!secret) {
      if (!this.#sealing) {
        throw new SecretKeyRequiredError(`The value of "${key}" of session "${sessionId}" is encrypted (key id ${keyId}) and no secret key is set. ${HOW_TO_SET_KEY}`, { context });
      }
      throw new DecryptionError(
        `The value of "${key}" of session "${sessionId}" was encrypted with key ${keyId}, but the key in use is ${this.#sealing.id}; set the key it was written with ` +
          `(if a rotation to key ${keyId} was interrupted, call rotateSecretKey with that key again to finish it).`,
        { context: { ...context, keyId, currentKeyId: this.#sealing.id } },
      );
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', secret, Buffer.from(iv, 'base64url'), { authTagLength: 16 }); // no truncated tags
      decipher.setAAD(boundTo(sessionId, key));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      const json = Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
      return JSON.parse(json) as JsonValue;
    } catch (cause) {
      throw new DecryptionError(
        `The value of "${key}" of session "${sessionId}" failed authentication (tampered, truncated, or copied from another session or key); set it again or delete it.`,
        { cause, context },
      );
    }
  }
}
