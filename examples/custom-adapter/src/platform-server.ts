import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small, real HTTP "chat platform" for the http-poller adapter to talk to: the example's
 * stand-in for Telegram's Bot API, a helpdesk API or any service with a token, a login code and
 * a polling endpoint. Used by the tests and by `main.ts`. JSON over HTTP:
 *
 * | request | answer |
 * | --- | --- |
 * | `POST /login` `{ token }` | `200 { step: 'code', hint }` (a code was "sent" to the account owner); `401` unknown or revoked token |
 * | `POST /login/code` `{ token, code }` | `200 { sessionKey }`; `400` wrong code; `401` revoked token |
 * | `GET /updates?after=<id>` (Bearer session key) | `200 { messages: [{ id, from, text }] }`, the account's messages with a larger id; `401` bad key |
 * | `POST /messages` `{ text, to? }` (Bearer) | `201 { id }` |
 * | `GET /ping` (Bearer) | `200 { ok: true }`; `503` while the platform is down; `401` bad key |
 * | `POST /logout` (Bearer) | `204`; the session key stops working |
 */

export interface PlatformMessage {
  id: number;
  from: string;
  text: string;
}

export interface SentMessage {
  account: string;
  to: string | null;
  text: string;
}

export interface PlatformServerOptions {
  /** API token → the login code its owner receives. */
  accounts: Record<string, { code: string }>;
}

export interface PlatformServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Every message the accounts sent, oldest first (tokens are not recorded: account = its label). */
  readonly sent: SentMessage[];
  /** Requests that reached the server, as `METHOD /path` (for tests). */
  readonly requests: string[];
  /** Delivers an inbound message to the account of `token`. */
  push(token: string, from: string, text: string): PlatformMessage;
  /** Revokes a token: its login and every session key made from it stop working (401). */
  revoke(token: string): void;
  /** While down, `/ping` answers 503 and `/updates` 503. */
  setDown(down: boolean): void;
  /** Session keys currently valid. */
  sessionCount(): number;
  close(): Promise<void>;
}

/** Starts the platform on an ephemeral port of 127.0.0.1. */
export async function startPlatformServer(options: PlatformServerOptions): Promise<PlatformServer> {
  const accounts = new Map(Object.entries(options.accounts).map(([token, a], i) => [token, { code: a.code, label: `account-${i + 1}` }]));
  const revoked = new Set<string>();
  const inbox = new Map<string, PlatformMessage[]>();
  const sessions = new Map<string, string>(); // session key → token
  const sent: SentMessage[] = [];
  const requests: string[] = [];
  let nextId = 1;
  let down = false;

  const send = (res: ServerResponse, status: number, body?: unknown): void => {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  };

  const readJson = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (chunks.length === 0) return {};
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  };

  /** The token behind the request's Bearer session key, or null (answered 401). */
  const tokenOf = (req: IncomingMessage): string | null => {
    const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const token = match ? sessions.get(match[1]!) : undefined;
    return token !== undefined && !revoked.has(token) ? token : null;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://platform');
    const route = `${req.method} ${url.pathname}`;
    requests.push(route);
    switch (route) {
      case 'POST /login': {
        const { token } = await readJson(req);
        if (typeof token !== 'string' || !accounts.has(token) || revoked.has(token)) return send(res, 401, { error: 'unknown or revoked token' });
        return send(res, 200, { step: 'code', hint: `a login code was sent to ${accounts.get(token)!.label}` });
      }
      case 'POST /login/code': {
        const { token, code } = await readJson(req);
        if (typeof token !== 'string' || !accounts.has(token) || revoked.has(token)) return send(res, 401, { error: 'unknown or revoked token' });
        if (code !== accounts.get(token)!.code) return send(res, 400, { error: 'wrong code' });
        const sessionKey = randomBytes(16).toString('hex');
        sessions.set(sessionKey, token);
        return send(res, 200, { sessionKey });
      }
      case 'GET /updates': {
        const token = tokenOf(req);
        if (token === null) return send(res, 401, { error: 'bad session key' });
        if (down) return send(res, 503, { error: 'platform down' });
        const after = Number(url.searchParams.get('after') ?? 0);
        return send(res, 200, { messages: (inbox.get(token) ?? []).filter((m) => m.id > after) });
      }
      case 'POST /messages': {
        const token = tokenOf(req);
        if (token === null) return send(res, 401, { error: 'bad session key' });
        if (down) return send(res, 503, { error: 'platform down' });
        const { text, to } = await readJson(req);
        if (typeof text !== 'string' || text.length === 0) return send(res, 400, { error: 'text is required' });
        sent.push({ account: accounts.get(token)!.label, to: typeof to === 'string' ? to : null, text });
        return send(res, 201, { id: nextId++ });
      }
      case 'GET /ping': {
        const token = tokenOf(req);
        if (token === null) return send(res, 401, { error: 'bad session key' });
        return down ? send(res, 503, { error: 'platform down' }) : send(res, 200, { ok: true });
      }
      case 'POST /logout': {
        const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
        if (match) sessions.delete(match[1]!);
        return send(res, 204);
      }
      default:
        return send(res, 404, { error: `no route ${route}` });
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => send(res, 400, { error: error instanceof Error ? error.message : String(error) }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    sent,
    requests,
    push(token, from, text) {
      if (!accounts.has(token)) throw new Error('unknown token');
      const message = { id: nextId++, from, text };
      const list = inbox.get(token) ?? [];
      list.push(message);
      inbox.set(token, list);
      return message;
    },
    revoke(token) {
      revoked.add(token);
    },
    setDown(value) {
      down = value;
    },
    sessionCount() {
      return [...sessions.values()].filter((t) => !revoked.has(t)).length;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
