import { z } from 'zod';
import { PROXY_PROTOCOLS, proxyProblems, type ProxyConfig } from './proxy.js';
import type { RateLimitSettings } from './token-bucket.js';

/** Default bound of `manager.send`'s wait for a rate-limit token. */
export const DEFAULT_SEND_MAX_WAIT_MS = 60_000;

/** A session's outbound rate limit, shared by `manager.send` and `ctx.fetch`. */
export interface RateLimitConfig {
  /** Average requests per second (e.g. `0.5` is one every two seconds). */
  perSecond: number;
  /** How many may go at once after a quiet spell. Default 1 (evenly spaced). */
  burst?: number;
  /**
   * The longest `manager.send` waits for its turn, in ms; when the wait would be longer it fails
   * at once with `RateLimitError` (`retryAfterMs`). Default 60,000. `ctx.fetch` waits as long as
   * needed (until its signal or the session's aborts).
   */
  maxWaitMs?: number;
}

/** The network settings of a session's config (see {@link networkConfigSchema}). */
export interface NetworkConfig {
  proxy?: string | ProxyConfig | null;
  rateLimit?: RateLimitConfig | null;
}

const proxyJsonSchema = {
  description:
    'Proxy of this session: a URL (http://, https://, socks4://, socks5://, socks5h://, or user:pass@host:port for HTTP) or an object.',
  anyOf: [
    { type: 'string' },
    {
      type: 'object',
      properties: {
        protocol: { type: 'string', enum: [...PROXY_PROTOCOLS] },
        host: { type: 'string' },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        username: { type: 'string' },
        password: { type: 'string', writeOnly: true },
        tunnel: { type: 'boolean' },
      },
      required: ['protocol', 'host', 'port'],
      additionalProperties: false,
    },
    { type: 'null' },
  ],
};

/**
 * A proxy setting: checked, but kept as written (a URL string stays a string), so the stored config
 * is what the user gave. Messages name the field and never quote the value (it may hold a password).
 */
export const proxySettingSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    if (value === null || value === undefined) return;
    for (const p of proxyProblems(value)) ctx.addIssue({ code: 'custom', message: p.message, path: p.path });
  })
  .meta(proxyJsonSchema) as unknown as z.ZodType<string | ProxyConfig | null | undefined>;

export const rateLimitSchema = z
  .object({
    perSecond: z.number().positive('must be more than 0').max(1_000_000),
    burst: z.number().int('must be a whole number').min(1, 'must be at least 1').max(1_000_000).optional(),
    maxWaitMs: z.number().int('must be a whole number of ms').min(0).max(86_400_000).optional(),
  })
  .strict();

/**
 * The network settings an adapter adds to its config schema: a per-session `proxy` and an
 * outbound `rateLimit` (both optional; `null` removes one in `manager.update`). The manager then
 * routes `ctx.fetch` through the proxy and makes `ctx.fetch` and `manager.send` wait for a token.
 *
 * @example
 * ```ts
 * const telegram = defineAdapter({
 *   name: 'telegram',
 *   credentials: z.object({ botToken: z.string() }),
 *   config: z.object({ ...networkConfigSchema.shape, chatId: z.string().optional() }),
 *   connect(ctx) {
 *     return {
 *       async start() { await ctx.fetch(`https://api.telegram.org/bot${ctx.credentials.botToken}/getMe`); },
 *       async stop() {},
 *       async health() { return { status: 'healthy' }; },
 *       async send(action) { return (await ctx.fetch('https://…', { method: 'POST', body: JSON.stringify(action) })).json(); },
 *     };
 *   },
 * });
 * await manager.create({ id: 'bot-1', platform: 'telegram', credentials: { botToken },
 *   config: { proxy: 'socks5h://user:pass@10.0.0.5:1080', rateLimit: { perSecond: 1, burst: 5 } } });
 * ```
 */
export const networkConfigSchema = z.object({
  proxy: proxySettingSchema.optional(),
  rateLimit: rateLimitSchema.nullable().optional(),
});

/** The rate limit in a session config, or null. Tolerates configs of adapters without the fragment. */
export function rateLimitOf(config: unknown): (RateLimitSettings & { maxWaitMs: number }) | null {
  if (config === null || typeof config !== 'object') return null;
  const parsed = rateLimitSchema.safeParse((config as { rateLimit?: unknown }).rateLimit);
  if (!parsed.success) return null;
  const { perSecond, burst = 1, maxWaitMs = DEFAULT_SEND_MAX_WAIT_MS } = parsed.data;
  return { perSecond, burst, maxWaitMs };
}

/** The proxy setting in a session config, or null. */
export function proxyOf(config: unknown): string | ProxyConfig | null {
  if (config === null || typeof config !== 'object') return null;
  const proxy = (config as { proxy?: unknown }).proxy;
  return typeof proxy === 'string' || (proxy !== null && typeof proxy === 'object') ? (proxy as string | ProxyConfig) : null;
}

const PROXY_SECRET = '[redacted]';

/** A proxy setting with its password replaced (URL userinfo or the object's `password`). */
function redactProxySetting(proxy: unknown): unknown {
  if (typeof proxy === 'string') {
    // scheme://user:pass@host…  or  user:pass@host:port
    return proxy.replace(/^((?:[a-z0-9+.-]+:\/\/)?[^:@/\s]*:)([^@/\s]+)(@)/i, `$1${PROXY_SECRET}$3`);
  }
  if (proxy && typeof proxy === 'object' && typeof (proxy as { password?: unknown }).password === 'string') {
    return { ...(proxy as object), password: PROXY_SECRET };
  }
  return proxy;
}

/**
 * A session config as shown to the outside (snapshots, events, HTTP responses): the proxy
 * password, a secret, is replaced. Configs without a proxy are returned as they are.
 */
export function redactNetworkSecrets<T>(config: T): T {
  if (!config || typeof config !== 'object' || !('proxy' in config)) return config;
  const proxy = (config as { proxy?: unknown }).proxy;
  const shown = redactProxySetting(proxy);
  return shown === proxy ? config : ({ ...config, proxy: shown } as T);
}

/**
 * For a config update: a proxy setting that is the redacted form of the current one (a snapshot
 * written back) means "unchanged", so the real password is kept.
 */
export function keepRedactedProxy(next: unknown, current: unknown): unknown {
  return next !== undefined && current !== undefined && JSON.stringify(next) === JSON.stringify(redactProxySetting(current)) && next !== current ? current : next;
}
