import { z } from 'zod';
import type { SessionKv } from './contract.js';
import { parseWith } from '../validation.js';
import type { KvEntry, KvOperation, KvStore } from '../storage/contract.js';
import type { JsonValue } from '../types.js';

const keySchema = z.string().min(1, 'must not be empty').max(512, 'must be at most 512 characters');
const valueSchema: z.ZodType<JsonValue> = z.json();
const prefixOptionsSchema = z
  .strictObject({ prefix: z.string().max(512, 'must be at most 512 characters').optional() })
  .optional()
  .transform((o) => o ?? {});
const opsSchema = z.array(
  z.discriminatedUnion('op', [
    z.strictObject({ op: z.literal('set'), key: keySchema, value: valueSchema }),
    z.strictObject({ op: z.literal('delete'), key: keySchema }),
  ]),
);

/** Says whether a KV view may still be used (throws when not). */
export interface KvGuard {
  assertUsable(): void;
}

/**
 * One session's key-value space over the store's `kv` capability. Keys live under a namespace prefix
 * (`ctx:` for context data, `auth:` for auth state), so `clear()` and `logout()` can drop one
 * namespace and keep the other; the session id scopes every call, so no session reaches another's.
 */
export class NamespacedKv implements SessionKv {
  readonly #store: KvStore;
  readonly #sessionId: string;
  readonly #prefix: string;
  readonly #guard: KvGuard | null;

  /** `guard` throws when this view may no longer be used (a connection that was shut down). */
  constructor(store: KvStore, sessionId: string, prefix: string, guard: KvGuard | null = null) {
    this.#store = store;
    this.#sessionId = sessionId;
    this.#prefix = prefix;
    this.#guard = guard;
  }

  async get<T extends JsonValue = JsonValue>(key: string): Promise<T | undefined> {
    this.#guard?.assertUsable();
    parseWith(keySchema, key, 'KV key');
    return (await this.#store.get(this.#sessionId, this.#prefix + key)) as T | undefined;
  }

  async set(key: string, value: JsonValue): Promise<void> {
    await this.batch([{ op: 'set', key, value }]);
  }

  async delete(key: string): Promise<void> {
    await this.batch([{ op: 'delete', key }]);
  }

  async list(options?: { prefix?: string }): Promise<KvEntry[]> {
    this.#guard?.assertUsable();
    const prefix = this.#prefix + (parseWith(prefixOptionsSchema, options, 'KV list options').prefix ?? '');
    const entries = await this.#store.list(this.#sessionId, { prefix });
    return entries.map((e) => ({ key: e.key.slice(this.#prefix.length), value: e.value }));
  }

  async clear(options?: { prefix?: string }): Promise<number> {
    this.#guard?.assertUsable();
    const prefix = parseWith(prefixOptionsSchema, options, 'KV clear options').prefix ?? '';
    return this.#store.clear(this.#sessionId, { prefix: this.#prefix + prefix });
  }

  async batch(ops: KvOperation[]): Promise<void> {
    this.#guard?.assertUsable();
    const checked = parseWith(opsSchema, ops, 'KV operations');
    await this.#store.write(
      this.#sessionId,
      checked.map((o) => (o.op === 'set' ? { op: 'set', key: this.#prefix + o.key, value: o.value } : { op: 'delete', key: this.#prefix + o.key })),
    );
  }
}

export const CONTEXT_PREFIX = 'ctx:';
export const AUTH_PREFIX = 'auth:';

/** Which stored values are sealed at rest: auth state always, context data when `context` is on. */
export function sealPolicy(context: boolean): { sealed(key: string): boolean; withoutKey(key: string): string } {
  return {
    sealed: context ? (key) => key.startsWith(AUTH_PREFIX) || key.startsWith(CONTEXT_PREFIX) : (key) => key.startsWith(AUTH_PREFIX),
    withoutKey: (key) => (key.startsWith(CONTEXT_PREFIX) ? ' Or keep context data unencrypted with the manager option encryptContextData: false.' : ''),
  };
}
