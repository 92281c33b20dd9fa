/**
 * Real loopback servers for the network tests: a target HTTP server, an HTTP proxy (absolute-form
 * requests and CONNECT tunnels, optional Basic proxy auth) and a SOCKS4/SOCKS5 proxy (optional
 * user/password). Each proxy records what it was asked, so a test can tell which route a request took.
 */
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';

export interface Closable {
  close(): Promise<void>;
  /** Sockets open right now (keep-alive connections included). */
  openSockets(): number;
}

function track(server: net.Server): { sockets: Set<Socket>; close(): Promise<void> } {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

export interface TargetHit {
  method: string;
  path: string;
  /** The `x-session` header the test adapter sends. */
  session: string | undefined;
  /** Where the connection came from (a proxy, or the client itself). */
  remotePort: number;
}

export interface Target extends Closable {
  readonly port: number;
  readonly url: string;
  readonly hits: TargetHit[];
}

/** The target: answers every request with JSON describing it, and records it. */
export async function startTarget(): Promise<Target> {
  const hits: TargetHit[] = [];
  const server = http.createServer((req, res) => {
    const hit: TargetHit = {
      method: req.method ?? '',
      path: req.url ?? '',
      session: req.headers['x-session'] as string | undefined,
      remotePort: req.socket.remotePort ?? 0,
    };
    hits.push(hit);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ...hit, body, proxyAuthorization: req.headers['proxy-authorization'] ?? null }));
    });
  });
  const t = track(server);
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, hits, close: t.close, openSockets: () => t.sockets.size };
}

export interface ProxyEvent {
  kind: 'absolute' | 'connect';
  /** host:port asked for. */
  target: string;
  /** Whether the proxy let it through (auth). */
  allowed: boolean;
}

export interface HttpProxy extends Closable {
  readonly port: number;
  readonly events: ProxyEvent[];
}

/**
 * An HTTP proxy: `GET http://host/path` forwarded, `CONNECT host:port` tunnelled; Basic auth when
 * `auth` is given; spoken over TLS (an `https://` proxy) when `tls` is given.
 */
export async function startHttpProxy(options: { auth?: { user: string; pass: string }; tls?: { key: string; cert: string } } = {}): Promise<HttpProxy> {
  const events: ProxyEvent[] = [];
  const expected = options.auth ? `Basic ${Buffer.from(`${options.auth.user}:${options.auth.pass}`).toString('base64')}` : null;
  const allowed = (header: string | undefined) => expected === null || header === expected;
  const handler: http.RequestListener = (req, res) => {
    const url = new URL(req.url ?? '/');
    const ok = allowed(req.headers['proxy-authorization']);
    events.push({ kind: 'absolute', target: url.host, allowed: ok });
    if (!ok) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test"' }).end();
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = http.request(
      { host: url.hostname, port: url.port || 80, path: `${url.pathname}${url.search}`, method: req.method, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  };
  const server = options.tls ? https.createServer(options.tls, handler) : http.createServer(handler);
  server.on('connect', (req: http.IncomingMessage, client: Socket, head: Buffer) => {
    const ok = allowed(req.headers['proxy-authorization']);
    events.push({ kind: 'connect', target: req.url ?? '', allowed: ok });
    if (!ok) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), host === 'localhost' ? '127.0.0.1' : host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
  });
  const t = track(server);
  const port = await listen(server);
  return { port, events, close: t.close, openSockets: () => t.sockets.size };
}

/** A target over TLS with the given certificate: answers JSON with the path and `x-session`. */
export async function startTlsTarget(tls: { key: string; cert: string }): Promise<Target> {
  const hits: TargetHit[] = [];
  const server = https.createServer(tls, (req, res) => {
    const hit: TargetHit = { method: req.method ?? '', path: req.url ?? '', session: req.headers['x-session'] as string | undefined, remotePort: req.socket.remotePort ?? 0 };
    hits.push(hit);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ...hit, tls: true }));
  });
  const t = track(server);
  const port = await listen(server);
  return { port, url: `https://localhost:${port}`, hits, close: t.close, openSockets: () => t.sockets.size };
}

export interface SocksEvent {
  version: 4 | 5;
  /** The destination as sent: an IP address, or a name (socks5h, socks4a). */
  host: string;
  addressType: 'ipv4' | 'ipv6' | 'domain';
  port: number;
  user: string | null;
  allowed: boolean;
}

export interface SocksProxy extends Closable {
  readonly port: number;
  readonly events: SocksEvent[];
}

/** Reads exact byte counts from a socket. */
function byteReader(socket: Socket) {
  let buffered = Buffer.alloc(0);
  let waiting: { n: number; resolve(b: Buffer): void; reject(e: Error): void } | null = null;
  const pump = () => {
    if (waiting && buffered.length >= waiting.n) {
      const w = waiting;
      waiting = null;
      const out = buffered.subarray(0, w.n);
      buffered = buffered.subarray(w.n);
      w.resolve(out);
    }
  };
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    pump();
  };
  socket.on('data', onData);
  socket.on('close', () => waiting?.reject(new Error('closed')));
  return {
    read(n: number): Promise<Buffer> {
      return new Promise((resolve, reject) => {
        waiting = { n, resolve, reject };
        pump();
      });
    },
    /** Reads up to a NUL byte (SOCKS4 user id and 4a host). */
    async readNul(): Promise<string> {
      const bytes: number[] = [];
      for (;;) {
        const [b] = await this.read(1);
        if (b === 0) return Buffer.from(bytes).toString('utf8');
        bytes.push(b!);
      }
    },
    /** Stops reading; returns what was read ahead. */
    detach(): Buffer {
      socket.off('data', onData);
      return buffered;
    },
  };
}

/**
 * A SOCKS proxy speaking SOCKS4/4a and SOCKS5 (CONNECT only). With `auth`, SOCKS5 clients must
 * use user/password (method 0x02) and SOCKS4 clients must send the user id. Destinations on the
 * loopback (127.0.0.1, ::1, localhost) are connected to 127.0.0.1, where the target listens.
 */
export async function startSocksProxy(options: { auth?: { user: string; pass: string } } = {}): Promise<SocksProxy> {
  const events: SocksEvent[] = [];
  const auth = options.auth;
  const splice = (client: Socket, reader: ReturnType<typeof byteReader>, port: number, reply: (ok: boolean) => void) => {
    const upstream = net.connect(port, '127.0.0.1', () => {
      reply(true);
      const ahead = reader.detach();
      if (ahead.length) upstream.write(ahead);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => {
      reply(false);
      client.destroy();
    });
    client.on('close', () => upstream.destroy());
  };
  const server = net.createServer((client) => {
    client.on('error', () => undefined);
    const reader = byteReader(client);
    void (async () => {
      const [version] = await reader.read(1);
      if (version === 4) {
        const head = await reader.read(7);
        const port = head.readUInt16BE(1);
        const ip = [...head.subarray(3, 7)].join('.');
        const user = await reader.readNul();
        const socks4a = ip.startsWith('0.0.0.') && ip !== '0.0.0.0';
        const host = socks4a ? await reader.readNul() : ip;
        const ok = !auth || user === auth.user;
        events.push({ version: 4, host, addressType: socks4a ? 'domain' : 'ipv4', port, user: user || null, allowed: ok });
        const reply = (granted: boolean) => client.write(Buffer.from([0, granted ? 0x5a : 0x5b, 0, 0, 0, 0, 0, 0]));
        if (!ok) {
          reply(false);
          client.end();
          return;
        }
        splice(client, reader, port, reply);
        return;
      }
      if (version !== 5) return void client.destroy();
      const [count] = await reader.read(1);
      const methods = [...(await reader.read(count!))];
      const method = auth ? (methods.includes(2) ? 2 : 0xff) : methods.includes(0) ? 0 : 0xff;
      client.write(Buffer.from([5, method]));
      if (method === 0xff) return void client.end();
      let user: string | null = null;
      if (method === 2) {
        const [, ulen] = await reader.read(2);
        user = (await reader.read(ulen!)).toString('utf8');
        const [plen] = await reader.read(1);
        const pass = (await reader.read(plen!)).toString('utf8');
        const ok = user === auth!.user && pass === auth!.pass;
        client.write(Buffer.from([1, ok ? 0 : 1]));
        if (!ok) {
          events.push({ version: 5, host: '', addressType: 'domain', port: 0, user, allowed: false });
          return void client.end();
        }
      }
      const [, cmd, , atyp] = await reader.read(4);
      let host: string;
      let addressType: SocksEvent['addressType'];
      if (atyp === 1) {
        host = [...(await reader.read(4))].join('.');
        addressType = 'ipv4';
      } else if (atyp === 4) {
        const b = await reader.read(16);
        host = (b.toString('hex').match(/.{4}/g) ?? []).map((g) => g.replace(/^0+(?=.)/, '')).join(':');
        addressType = 'ipv6';
      } else {
        const [len] = await reader.read(1);
        host = (await reader.read(len!)).toString('utf8');
        addressType = 'domain';
      }
      const port = (await reader.read(2)).readUInt16BE(0);
      events.push({ version: 5, host, addressType, port, user, allowed: true });
      const reply = (ok: boolean) => client.write(Buffer.from([5, ok ? 0 : 5, 0, 1, 127, 0, 0, 1, 0, 0]));
      if (cmd !== 1) {
        client.write(Buffer.from([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]));
        return void client.end();
      }
      splice(client, reader, port, reply);
    })().catch(() => client.destroy());
  });
  const t = track(server);
  const port = await listen(server);
  return { port, events, close: t.close, openSockets: () => t.sockets.size };
}
