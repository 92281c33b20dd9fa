import { lookup } from 'node:dns/promises';
import { isIP, type Socket } from 'node:net';
import type { Dispatcher, buildConnector } from 'undici';
import type { ResolvedProxy } from './proxy.js';

/** undici, loaded on first use (an app that never calls `ctx.fetch` never loads it). */
export type Undici = typeof import('undici');
let undiciModule: Promise<Undici> | null = null;
export function loadUndici(): Promise<Undici> {
  undiciModule ??= import('undici').catch((error: unknown) => {
    undiciModule = null;
    throw error;
  });
  return undiciModule;
}

let socksModule: Promise<typeof import('socks')> | null = null;
function loadSocks(): Promise<typeof import('socks')> {
  socksModule ??= import('socks').catch((error: unknown) => {
    socksModule = null;
    throw error;
  });
  return socksModule;
}

/** How long opening a connection (to the proxy, through it, and TLS) may take. */
export const CONNECT_TIMEOUT_MS = 30_000;

/**
 * An undici dispatcher that sends every request through `proxy`:
 * - `http`/`https` proxies: undici's `ProxyAgent` (`CONNECT` tunnels for `https://` targets, and
 *   for `http://` targets when `tunnel` is set; otherwise absolute-form requests). Proxy auth goes
 *   as a `Proxy-Authorization: Basic` token; the proxy URI given to undici carries no password.
 * - `socks4`/`socks5`/`socks5h`: an undici `Agent` whose `connect` opens the TCP stream through
 *   the SOCKS proxy (the `socks` package) and, for `https://` targets, TLS over it with undici's
 *   own connector. `socks4` and `socks5` resolve the target's name here; `socks5h` lets the proxy
 *   resolve it. undici 7's own `Socks5ProxyAgent` is not used: it has no SOCKS4, always sends
 *   names to the proxy, and emits a process-wide ExperimentalWarning.
 */
export async function createProxyDispatcher(proxy: ResolvedProxy): Promise<Dispatcher> {
  const undici = await loadUndici();
  const hostForUri = isIP(proxy.host) === 6 ? `[${proxy.host}]` : proxy.host;
  if (proxy.protocol === 'http' || proxy.protocol === 'https') {
    const token =
      proxy.username !== null ? `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}` : undefined;
    return new undici.ProxyAgent({
      uri: `${proxy.protocol}://${hostForUri}:${proxy.port}`,
      ...(token ? { token } : {}),
      proxyTunnel: proxy.tunnel,
      connectTimeout: CONNECT_TIMEOUT_MS,
    });
  }
  const { SocksClient } = await loadSocks();
  const tlsConnect = undici.buildConnector({ timeout: CONNECT_TIMEOUT_MS });
  const type = proxy.protocol === 'socks4' ? 4 : 5;
  const connect: buildConnector.connector = (opts, callback) => {
    const protocol = opts.protocol;
    const port = Number(opts.port) || (protocol === 'https:' ? 443 : 80);
    const rawHost = opts.hostname.startsWith('[') ? opts.hostname.slice(1, -1) : opts.hostname;
    const open = async (): Promise<Socket> => {
      let host = rawHost;
      if (proxy.protocol !== 'socks5h' && !isIP(host)) {
        host = (await lookup(host, { family: proxy.protocol === 'socks4' ? 4 : 0 })).address;
      }
      const { socket } = await SocksClient.createConnection({
        command: 'connect',
        proxy: {
          host: proxy.host,
          port: proxy.port,
          type,
          ...(proxy.username !== null ? { userId: proxy.username } : {}),
          ...(proxy.password !== null ? { password: proxy.password } : {}),
        },
        destination: { host, port },
        timeout: CONNECT_TIMEOUT_MS,
      });
      return socket;
    };
    open().then(
      (socket) => {
        if (protocol !== 'https:') {
          socket.setNoDelay(true);
          callback(null, socket);
          return;
        }
        tlsConnect({ ...opts, hostname: rawHost, port: String(port), httpSocket: socket }, (error, tlsSocket) => {
          if (error) {
            socket.destroy();
            callback(error, null);
          } else callback(null, tlsSocket!);
        });
      },
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), null),
    );
  };
  return new undici.Agent({ connect });
}
