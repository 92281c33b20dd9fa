import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { DecryptionError, SecretKeyRequiredError, ValidationError } from '../errors.js';
import type { JsonValue } from '../types.js';

/**
 * Credentials at rest: AES-256-GCM with a 32-byte key, a fresh 12-byte IV per value, and the key
 * id stored beside each ciphertext so a wrong or rotated key is recognised, not guessed at.
 *
 * Sealed form: `v1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts). Without a key, and only
 * on a non-persistent store (memory), values are kept as `plain.<base64url JSON>`.
 */
export const SECRET_KEY_ENV = 'MULTISESSION_SECRET_KEY';

export const HOW_TO_SET_KEY =
  `Set a 32-byte secret key: pass secretKey to the SessionManager or set ${SECRET_KEY_ENV} ` +
  `(generate one with: node -e "console.log(require('node:crypto').randomBytes(32).toString('base64'))").`;

/** Parses a 32-byte key written as base64 (44 characters) or hex (64 characters). */
export function parseSecretKey(text: string): Buffer {
  const trimmed = text.trim();
  let key: Buffer | null = null;
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) key = Buffer.from(trimmed, 'hex');
  else if (/^[A-Za-z0-9+/_-]{42,44}={0,2}$/.test(trimmed)) key = Buffer.from(trimmed, 'base64');
  if (!key || key.length !== 32) {
    throw new ValidationError('secret key', [
      { path: ['secretKey'], message: `must be 32 bytes written as base64 (44 characters) or hex (64 characters). ${HOW_TO_SET_KEY}` },
    ]);
  }
  return key;
}

/** A stable, key-independent id for a key: the first 8 bytes of its SHA-256, in hex. */
export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** JSON with sorted object keys, so equal credentials give equal fingerprints. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export class CredentialCodec {
  readonly #key: Buffer | null;
  readonly #keyId: string | null;
  readonly #fingerprintKey: Buffer;
  readonly #persistent: boolean;

  constructor(secretKey: string | undefined, persistent: boolean) {
    this.#persistent = persistent;
    this.#key = secretKey ? parseSecretKey(secretKey) : null;
    this.#keyId = this.#key ? keyIdOf(this.#key) : null;
    // The fingerprint key is derived from the secret key, so fingerprints survive restarts;
    // without a key (memory store) a random one per process is enough.
    this.#fingerprintKey = this.#key
      ? Buffer.from(hkdfSync('sha256', this.#key, Buffer.alloc(0), 'multisession credential fingerprint', 32))
      : randomBytes(32);
  }

  get keyId(): string | null {
    return this.#keyId;
  }

  get hasKey(): boolean {
    return this.#key !== null;
  }

  /** A keyed fingerprint (HMAC-SHA256) of the plain credentials, for the duplicate guard. */
  fingerprint(credentials: JsonValue): string {
    return createHmac('sha256', this.#fingerprintKey).update(canonicalJson(credentials)).digest('base64url');
  }

  seal(credentials: JsonValue): string {
    const json = JSON.stringify(credentials);
    if (!this.#key) {
      if (this.#persistent) throw new SecretKeyRequiredError(`A persistent store needs a secret key to keep credentials encrypted. ${HOW_TO_SET_KEY}`);
      return `plain.${Buffer.from(json).toString('base64url')}`;
    }
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    const ciphertext = Buffer.concat([cipher.update(json, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return ['v1', this.#keyId, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
  }

  open(sealed: string): JsonValue {
    const parts = sealed.split('.');
    if (parts[0] === 'plain' && parts.length === 2) {
      return JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as JsonValue;
    }
    if (parts[0] !== 'v1' || parts.length !== 5) throw new DecryptionError('Stored credentials are not in a known format; set them again with update().');
    const [, keyId, iv, tag, ciphertext] = parts as [string, string, string, string, string];
    if (!this.#key) throw new SecretKeyRequiredError(`Stored credentials are encrypted (key id ${keyId}) and no secret key is set. ${HOW_TO_SET_KEY}`);
    if (keyId !== this.#keyId) {
      throw new DecryptionError(
        `Stored credentials were encrypted with key ${keyId}, but the secret key in use is ${this.#keyId}; set the key they were written with, or set the credentials again.`,
        { context: { keyId, currentKeyId: this.#keyId } },
      );
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      const json = Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
      return JSON.parse(json) as JsonValue;
    } catch (cause) {
      throw new DecryptionError('Stored credentials failed authentication (tampered, truncated or another key); set them again with update().', { cause });
    }
  }

  /** A codec with another key and the same persistence rule (for key rotation). */
  withKey(secretKey: string): CredentialCodec {
    return new CredentialCodec(secretKey, this.#persistent);
  }
}
