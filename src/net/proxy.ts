import { isIP } from 'node:net';
import { ValidationError } from '../errors.js';

/** Proxy protocols a session can use. `socks5h` resolves host names on the proxy, `socks4`/`socks5` locally. */
export const PROXY_PROTOCOLS = ['http', 'https', 'socks4', 'socks5', 'socks5h'] as const;
export type ProxyProtocol = (typeof PROXY_PROTOCOLS)[number];

/**
 * A session's proxy, as an object. The same can be written as a URL string
 * (`socks5://user:pass@host:1080`, `user:pass@host:3128` for HTTP …), see {@link parseProxy}.
 */
export interface ProxyConfig {
  protocol: ProxyProtocol;
  host: string;
  port: number;
  /** Proxy user (HTTP Basic proxy auth, SOCKS5 user/password, SOCKS4 user id). A secret: never logged. */
  username?: string;
  /** Proxy password. A secret: never logged. */
  password?: string;
  /**
   * HTTP(S) proxies only: send `http://` targets through a `CONNECT` tunnel too. Default `false`:
   * `http://` targets go in absolute form (`GET http://host/path`), `https://` targets always tunnel.
   */
  tunnel?: boolean;
}

/** A proxy after parsing: every field known. */
export interface ResolvedProxy {
  readonly protocol: ProxyProtocol;
  /** Host name or IP address, IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
  readonly username: string | null;
  readonly password: string | null;
  readonly tunnel: boolean;
}

const DEFAULT_PORTS: Record<ProxyProtocol, number> = { http: 80, https: 443, socks4: 1080, socks5: 1080, socks5h: 1080 };
const SCHEME_ALIASES: Record<string, ProxyProtocol> = { socks: 'socks5' };
const SUPPORTED = `${PROXY_PROTOCOLS.join('://, ')}://`;

/** A problem with a proxy value (never quoting it: it may hold a password), or null when it is fine. */
type Problem = { path: (string | number)[]; message: string };

function checkHost(host: string): string | null {
  if (host.length === 0) return 'needs a host';
  if (host.length > 253) return 'host is longer than 253 characters';
  if (isIP(host)) return null;
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9_-]{0,62})?)*\.?$/.test(host)) {
    return 'host must be a host name or an IP address';
  }
  return null;
}

function checkPort(port: unknown): string | null {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535 ? null : 'port must be an integer from 1 to 65535';
}

/** Parses a proxy URL string. Returns the proxy or the problems found (messages never quote the value). */
function parseProxyUrl(text: string): ResolvedProxy | Problem[] {
  const trimmed = text.trim();
  if (trimmed.length === 0) return [{ path: [], message: `must be a proxy URL (${SUPPORTED}) or user:pass@host:port` }];
  if (trimmed.length > 2048) return [{ path: [], message: 'is longer than 2048 characters' }];
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(trimmed)?.[1]?.toLowerCase();
  let protocol: ProxyProtocol;
  if (scheme === undefined) {
    if (trimmed.includes('://')) return [{ path: [], message: `has no valid scheme; use one of ${SUPPORTED}` }];
    protocol = 'http'; // auto-detect: host:port or user:pass@host:port is an HTTP proxy
  } else {
    const known = (PROXY_PROTOCOLS as readonly string[]).includes(scheme) ? (scheme as ProxyProtocol) : SCHEME_ALIASES[scheme];
    if (!known) return [{ path: [], message: `has an unsupported scheme "${scheme}"; use one of ${SUPPORTED}` }];
    protocol = known;
  }
  let url: URL;
  try {
    // Parse the authority as http: the WHATWG parser then checks the host strictly for every scheme.
    url = new URL(`http://${scheme === undefined ? trimmed : trimmed.slice(scheme.length + 3)}`);
  } catch {
    return [{ path: [], message: `is not a valid proxy URL; write it as ${protocol}://[user:password@]host:port` }];
  }
  const problems: Problem[] = [];
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    problems.push({ path: [], message: 'must not have a path, query or fragment; write it as scheme://[user:password@]host:port' });
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const hostProblem = checkHost(host);
  if (hostProblem) problems.push({ path: [], message: hostProblem });
  // URL drops a scheme's default port; ours are the proxy defaults (1080 for SOCKS).
  const explicitPort = /^(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/]*):(\d+)/.exec(scheme === undefined ? trimmed : trimmed.slice(scheme.length + 3))?.[1];
  const port = explicitPort !== undefined ? Number(explicitPort) : DEFAULT_PORTS[protocol];
  const portProblem = checkPort(port);
  if (portProblem) problems.push({ path: [], message: portProblem });
  if (problems.length) return problems;
  let username: string | null = null;
  let password: string | null = null;
  try {
    username = url.username ? decodeURIComponent(url.username) : null;
    password = url.password ? decodeURIComponent(url.password) : null;
  } catch {
    return [{ path: [], message: 'has a badly percent-encoded user or password' }];
  }
  if (password !== null && username === null) username = '';
  return Object.freeze({ protocol, host, port, username, password, tunnel: false });
}

function resolveObject(value: Record<string, unknown>): ResolvedProxy | Problem[] {
  const problems: Problem[] = [];
  const protocolRaw = typeof value.protocol === 'string' ? value.protocol.toLowerCase() : value.protocol;
  const protocol = (PROXY_PROTOCOLS as readonly unknown[]).includes(protocolRaw) ? (protocolRaw as ProxyProtocol) : SCHEME_ALIASES[String(protocolRaw)];
  if (!protocol) problems.push({ path: ['protocol'], message: `must be one of ${PROXY_PROTOCOLS.join(', ')}` });
  const host = typeof value.host === 'string' ? value.host.replace(/^\[(.*)\]$/, '$1') : '';
  const hostProblem = typeof value.host === 'string' ? checkHost(host) : 'needs a host';
  if (hostProblem) problems.push({ path: ['host'], message: hostProblem });
  const portProblem = checkPort(value.port);
  if (portProblem) problems.push({ path: ['port'], message: portProblem });
  for (const key of ['username', 'password'] as const) {
    const v = value[key];
    if (v !== undefined && v !== null && (typeof v !== 'string' || v.length > 255)) {
      problems.push({ path: [key], message: 'must be a string of at most 255 characters' });
    }
  }
  if (value.tunnel !== undefined && typeof value.tunnel !== 'boolean') problems.push({ path: ['tunnel'], message: 'must be true or false' });
  for (const key of Object.keys(value)) {
    if (!['protocol', 'host', 'port', 'username', 'password', 'tunnel'].includes(key)) {
      problems.push({ path: [key], message: 'is not a proxy setting (protocol, host, port, username, password, tunnel)' });
    }
  }
  if (problems.length || !protocol) return problems;
  const username = typeof value.username === 'string' ? value.username : null;
  const password = typeof value.password === 'string' ? value.password : null;
  return Object.freeze({
    protocol,
    host,
    port: value.port as number,
    username: username ?? (password !== null ? '' : null),
    password,
    tunnel: value.tunnel === true,
  });
}

/** Checks a proxy value; returns the problems (paths relative to the value), empty when fine. */
export function proxyProblems(value: unknown): Problem[] {
  const resolved = resolveProxyValue(value);
  return Array.isArray(resolved) ? resolved : [];
}

function resolveProxyValue(value: unknown): ResolvedProxy | Problem[] {
  if (typeof value === 'string') return parseProxyUrl(value);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return resolveObject(value as Record<string, unknown>);
  return [{ path: [], message: `must be a proxy URL string (${SUPPORTED}, or user:pass@host:port) or an object { protocol, host, port, username?, password? }` }];
}

/**
 * Parses a proxy setting, a URL string or a {@link ProxyConfig} object. Strings are auto-detected:
 * `http://`, `https://`, `socks4://`, `socks5://`, `socks5h://` (and `socks://` as SOCKS5), or no
 * scheme at all (`host:port`, `user:pass@host:port`) for an HTTP proxy. User and password may be
 * percent-encoded. Throws a `ValidationError` whose issue path starts with `field` and whose
 * message never quotes the value (it may hold a password).
 *
 * @example
 * ```ts
 * parseProxy('socks5h://bob:s3cret@10.0.0.5:1080');
 * // { protocol: 'socks5h', host: '10.0.0.5', port: 1080, username: 'bob', password: 's3cret', tunnel: false }
 * ```
 */
export function parseProxy(value: string | ProxyConfig, field: (string | number)[] = ['proxy']): ResolvedProxy {
  const resolved = resolveProxyValue(value);
  if (Array.isArray(resolved)) {
    throw new ValidationError('proxy', resolved.map((p) => ({ path: [...field, ...p.path], message: p.message })));
  }
  return resolved;
}

/** `host:port` of a proxy for messages: never the user or password. */
export function describeProxy(proxy: ResolvedProxy): string {
  return `${proxy.protocol}://${isIP(proxy.host) === 6 ? `[${proxy.host}]` : proxy.host}:${proxy.port}`;
}
