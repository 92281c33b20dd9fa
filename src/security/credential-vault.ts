import type { z } from 'zod';
import { DecryptionError, ValidationError } from '../errors.js';
import type { CredentialRewrite, SessionRecord } from '../storage/contract.js';
import { cloneJson, type JsonValue } from '../types.js';
import { CredentialCodec, parseSecretKey } from './credentials.js';
import { KvValueCodec } from './kv-values.js';
import { secretStrings } from './redact.js';

/**
 * Everything the manager does with credentials, in one place: sealing before a write, opening for
 * an adapter (checked by its schema), the secret strings to scrub from messages (cached per sealed
 * text), and key rotation behind a readers–writer gate, so no row is sealed with the old key
 * after a rotation has read it. The same key seals KV values ({@link values}); a rotation
 * re-seals them too, before the credentials.
 */
export class CredentialVault {
  #codec: CredentialCodec;
  /**
   * Per session, keyed by the sealed text it came from (the same text is the same plaintext): the
   * strings to scrub, and the plain credentials of a session just created, until its first open.
   */
  #secretCache = new Map<string, { sealed: string; strings: string[]; plain: JsonValue | undefined }>();
  /** Credential writes in flight, and the key rotation that waits for them. */
  #writes = 0;
  #drained: (() => void) | null = null;
  #rotation: Promise<unknown> | null = null;
  /** Seals and opens KV values (auth state, context data) with the same secret key. */
  readonly values: KvValueCodec;

  /** `key` (32 bytes, base64 or hex) may be absent only on a store that is not persistent. */
  constructor(key: string | undefined, persistent: boolean) {
    if (key !== undefined) parseSecretKey(key); // a bad key fails here, with a ValidationError
    this.#codec = new CredentialCodec(key || undefined, persistent);
    this.values = new KvValueCodec(key || undefined, persistent);
  }

  /** Sealed credentials and their fingerprint (both null when there are none). */
  seal(credentials: unknown): { credentials: string | null; fingerprint: string | null } {
    if (credentials === undefined || credentials === null) return { credentials: null, fingerprint: null };
    const json = credentials as JsonValue;
    return { credentials: this.#codec.seal(json), fingerprint: this.#codec.fingerprint(json) };
  }

  /** The keyed fingerprint of plain credentials (null when there are none). */
  fingerprint(credentials: unknown): string | null {
    return credentials === undefined || credentials === null ? null : this.#codec.fingerprint(credentials as JsonValue);
  }

  /** Decrypts a session's credentials and checks them with its adapter's schema (when it has one). */
  open(record: SessionRecord, schema: z.ZodType | null): unknown {
    const sealed = record.credentials;
    let plain: JsonValue | undefined;
    if (sealed !== null) {
      const cached = this.#secretCache.get(record.id);
      if (cached?.sealed === sealed && cached.plain !== undefined) {
        plain = cached.plain; // just created: no need to decrypt what was sealed a moment ago
        cached.plain = undefined;
      } else {
        plain = this.#codec.open(sealed);
        // The strings to scrub come from the same decryption (they are needed as soon as the adapter logs).
        if (cached?.sealed !== sealed) this.#secretCache.set(record.id, { sealed, strings: secretStrings(plain), plain: undefined });
      }
    }
    if (!schema) return plain;
    const parsed = schema.safeParse(plain);
    if (!parsed.success) {
      throw new ValidationError('stored credentials', parsed.error.issues.map((i) => ({ path: ['credentials', ...(i.path as (string | number)[])], message: i.message })));
    }
    return parsed.data;
  }

  /** The string values of the record's credentials, to scrub from messages. */
  secretStringsOf(record: SessionRecord): string[] {
    const sealed = record.credentials;
    if (sealed === null) return [];
    const cached = this.#secretCache.get(record.id);
    if (cached?.sealed === sealed) return cached.strings;
    let strings: string[] = [];
    try {
      strings = secretStrings(this.#codec.open(sealed));
    } catch {
      strings = [];
    }
    this.#secretCache.set(record.id, { sealed, strings, plain: undefined });
    return strings;
  }

  /**
   * Remembers the plain credentials of a session just created with `sealed` (a copy), so its
   * first start needs no decryption. Dropped at that first open, at delete, and at a key rotation.
   */
  remember(id: string, sealed: string | null, plain: unknown): void {
    if (sealed === null || plain === undefined || plain === null) return;
    const json = cloneJson(plain as JsonValue);
    this.#secretCache.set(id, { sealed, strings: secretStrings(json), plain: json });
  }

  /** Forgets what it cached about a deleted session. */
  forget(id: string): void {
    this.#secretCache.delete(id);
  }

  /**
   * Runs a write that seals credentials with the current key. Many may run at once; a key
   * rotation waits for them to finish and holds new ones back.
   */
  async withKey<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#rotation) await this.#rotation.catch(() => undefined);
    this.#writes++;
    try {
      return await fn();
    } finally {
      if (--this.#writes === 0) this.#drained?.();
    }
  }

  /**
   * Re-seals every record `records()` gives (read once the credential writes in flight have
   * landed) with `newKey` and hands the rewrites to `store` (one transaction); from then on the
   * vault uses the new key. Throws `DecryptionError` (and changes nothing) when any record cannot
   * be opened with the current key.
   *
   * `reseal` re-seals the KV values with the new key first (it gets a codec for it, and returns
   * how many it rewrote); meanwhile the vault opens values sealed with either key. The credentials
   * are the commit point: a crash before `store` leaves them and the values not yet re-sealed
   * under the old key, the rest under the new one, and a rotation to the same key run again
   * finishes the job (it keeps what is sealed with the new key already).
   */
  async rotate(newKey: string, records: () => SessionRecord[], now: () => number, store: RewriteStore, reseal?: (next: KvValueCodec) => Promise<number>): Promise<{ records: SessionRecord[]; keyId: string | null }> {
    parseSecretKey(newKey);
    while (this.#rotation) await this.#rotation.catch(() => undefined);
    const rotation = this.#rotate(newKey, records, now, store, reseal);
    this.#rotation = rotation;
    try {
      return await rotation;
    } finally {
      this.#rotation = null;
    }
  }

  async #rotate(newKey: string, records: () => SessionRecord[], now: () => number, store: RewriteStore, reseal: ((next: KvValueCodec) => Promise<number>) | undefined): Promise<{ records: SessionRecord[]; keyId: string | null }> {
    if (this.#writes > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    this.#drained = null;
    const next = this.#codec.withKey(newKey);
    // Read once every credential write that started before the rotation has landed.
    const rewrites = (): CredentialRewrite[] =>
      records()
        .filter((r) => r.credentials !== null)
        .map((r) => {
          let plain: JsonValue;
          try {
            plain = this.#codec.open(r.credentials!);
          } catch (cause) {
            throw new DecryptionError(
              `Key rotation stopped: the credentials of session "${r.id}" cannot be decrypted with the current key; set them again or delete the session first. Nothing was changed.`,
              { cause, context: { sessionId: r.id } },
            );
          }
          return { id: r.id, credentials: next.seal(plain), credentialsFingerprint: next.fingerprint(plain), expectedVersion: r.version, updatedAt: now() };
        });
    let values = 0;
    if (reseal) {
      rewrites(); // every credential opens, before any value is touched
      this.values.accept(newKey);
      values = await reseal(this.values.withKey(newKey));
    }
    // Read after the values: a record may have changed (not its credentials) while they were re-sealed.
    const rows = rewrites();
    const written = await store(rows, next.keyId, values);
    this.#codec = next;
    this.values.use(newKey);
    this.#secretCache.clear();
    return { records: written, keyId: next.keyId };
  }
}

/** Stores a rotation's credential rewrites in one transaction (`values`: how many KV values it re-sealed). */
export type RewriteStore = (rows: CredentialRewrite[], keyId: string | null, values: number) => Promise<SessionRecord[]>;
