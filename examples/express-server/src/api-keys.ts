import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * API keys for the example server.
 *
 * A key is `msk_<id>_<secret>`: the id finds the stored record, the whole key is checked against
 * the stored SHA-256 hash with a constant-time comparison. Keys are 256-bit random values, so a
 * plain SHA-256 (no slow KDF) is enough; the plain key is shown once, at creation, and never stored.
 *
 * Two roles: `admin` (everything) and `session` (only the sessions listed in `sessions`).
 */
export type KeyRole = 'admin' | 'session';

export interface Principal {
  /** Key id (`env` for the key given with --api-key). */
  keyId: string;
  name: string;
  role: KeyRole;
  /** Session ids this key may act on; null for admin keys. */
  sessions: readonly string[] | null;
}

export interface StoredKey {
  id: string;
  name: string;
  role: KeyRole;
  sessions: string[] | null;
  /** hex SHA-256 of the full key. */
  hash: string;
  createdAt: number;
}

/** What `GET /api/v1/keys` shows: never the hash. */
export type KeyInfo = Omit<StoredKey, 'hash'>;

const storedKeySchema = z.object({
  id: z.string().regex(/^[a-f0-9]{16}$/),
  name: z.string(),
  role: z.enum(['admin', 'session']),
  sessions: z.array(z.string()).nullable(),
  hash: z.string().regex(/^[a-f0-9]{64}$/),
  createdAt: z.number(),
});
const keyFileSchema = z.object({ version: z.literal(1), keys: z.array(storedKeySchema) });

const KEY_PATTERN = /^msk_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Constant-time equality of two hashes of equal length. */
function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface ApiKeyStoreOptions {
  /** JSON file holding the hashed keys (mode 0600). Null: keys live in memory only. */
  file: string | null;
  /** An admin key given by the operator (--api-key): kept only as its hash, in memory. */
  adminKey?: string | undefined;
}

export class ApiKeyStore {
  readonly #file: string | null;
  readonly #keys = new Map<string, StoredKey>();
  readonly #envHash: Buffer | null;
  /** Compared against when a presented key names an unknown id, so timing reveals nothing. */
  readonly #decoy = sha256(randomBytes(32).toString('hex'));
  readonly #revoked = new Set<(keyId: string) => void>();

  constructor(options: ApiKeyStoreOptions) {
    this.#file = options.file;
    this.#envHash = options.adminKey ? sha256(options.adminKey) : null;
    if (this.#file && existsSync(this.#file)) {
      const parsed = keyFileSchema.safeParse(JSON.parse(readFileSync(this.#file, 'utf8')));
      if (!parsed.success) {
        throw new Error(`API key file ${this.#file} is not valid (${parsed.error.issues[0]?.message}); fix or remove it.`);
      }
      for (const k of parsed.data.keys) this.#keys.set(k.id, k);
    }
  }

  /** True when an admin key exists (stored or given with --api-key). */
  get hasAdmin(): boolean {
    return this.#envHash !== null || [...this.#keys.values()].some((k) => k.role === 'admin');
  }

  /** Checks a presented key; returns who it is, or null. */
  verify(presented: string | undefined): Principal | null {
    if (!presented || presented.length > 200) return null;
    const hash = sha256(presented);
    const match = KEY_PATTERN.exec(presented);
    if (match) {
      const stored = this.#keys.get(match[1]!);
      const ok = sameHash(hash, stored ? Buffer.from(stored.hash, 'hex') : this.#decoy);
      if (ok && stored) {
        return { keyId: stored.id, name: stored.name, role: stored.role, sessions: stored.sessions };
      }
    }
    if (this.#envHash && sameHash(hash, this.#envHash)) {
      return { keyId: 'env', name: 'admin (--api-key)', role: 'admin', sessions: null };
    }
    return null;
  }

  /** Creates a key; returns the plain key (shown once) and its stored description. */
  create(input: { name: string; role: KeyRole; sessions?: string[] | null }): { key: string; info: KeyInfo } {
    const id = randomBytes(8).toString('hex');
    const key = `msk_${id}_${randomBytes(32).toString('base64url')}`;
    const stored: StoredKey = {
      id,
      name: input.name,
      role: input.role,
      sessions: input.role === 'admin' ? null : [...new Set(input.sessions ?? [])],
      hash: sha256(key).toString('hex'),
      createdAt: Date.now(),
    };
    this.#keys.set(id, stored);
    this.#save();
    return { key, info: ApiKeyStore.#info(stored) };
  }

  list(): KeyInfo[] {
    return [...this.#keys.values()].sort((a, b) => a.createdAt - b.createdAt).map(ApiKeyStore.#info);
  }

  /** Returns false when no such key exists. Listeners of {@link onRevoke} hear of it at once. */
  revoke(id: string): boolean {
    const existed = this.#keys.delete(id);
    if (existed) {
      this.#save();
      for (const listener of [...this.#revoked]) listener(id);
    }
    return existed;
  }

  /** Calls `listener(keyId)` whenever a key is revoked (the app ends that key's event streams). Returns an unsubscribe. */
  onRevoke(listener: (keyId: string) => void): () => void {
    this.#revoked.add(listener);
    return () => this.#revoked.delete(listener);
  }

  static #info(k: StoredKey): KeyInfo {
    return { id: k.id, name: k.name, role: k.role, sessions: k.sessions ? [...k.sessions] : null, createdAt: k.createdAt };
  }

  #save(): void {
    if (!this.#file) return;
    const tmp = `${this.#file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ version: 1, keys: [...this.#keys.values()] }, null, 2), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.#file);
  }
}

/** May this principal act on this session? */
export function canAccess(principal: Principal, sessionId: string): boolean {
  return principal.role === 'admin' || (principal.sessions?.includes(sessionId) ?? false);
}
