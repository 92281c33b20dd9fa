/**
 * A local stand-in for Discord on 127.0.0.1, speaking its documented shapes:
 * - REST under `/api/v10` with `Authorization: Bot <token>`: `GET /gateway/bot`, `GET /users/@me`,
 *   messages (create, edit, delete), typing, reactions, DMs. Errors are `{ message, code }` with
 *   the HTTP status; 401 for an unknown or revoked token; every answer carries the bucket headers
 *   (`X-RateLimit-Limit`, `-Remaining`, `-Reset-After`, `-Bucket`) of its route and channel, and a
 *   request to an exhausted bucket gets Discord's 429 (`{ message, retry_after, global: false }`)
 *   and counts as a violation. Buckets reset only when the test says (`resetBuckets`), so tests on a
 *   manual clock decide when time has passed.
 * - The gateway (v10 JSON) on `/gateway` (and `/resume` for `resume_gateway_url`): HELLO with a
 *   `heartbeat_interval`, HEARTBEAT_ACK (unless switched off), IDENTIFY → READY (or close 4004 for a
 *   refused token, 4014 for privileged intents the bot was not granted), RESUME → the missed
 *   events then RESUMED (or op 9 INVALID_SESSION false for an unknown session), op 7 and op 9 on
 *   demand, MESSAGE_CREATE dispatches with sequence numbers. A session survives its socket unless
 *   the client closed with 1000/1001.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

export interface RestCall {
  verb: string;
  path: string;
  body: Json;
  /** Real time it arrived. */
  at: number;
}

export interface GatewayFrame {
  op: number;
  d: Json;
}

export interface ScriptedFailure {
  status: number;
  body: Obj;
  headers?: Record<string, string>;
}

const PRIVILEGED = { GuildMembers: 1 << 1, GuildPresences: 1 << 8, MessageContent: 1 << 15 } as const;
const EPOCH = 1_420_070_400_000n;
let increment = 0n;
/** A snowflake id, as Discord makes them. */
export function snowflake(): string {
  return String(((BigInt(Date.now()) - EPOCH) << 22n) | (increment++ & 0xfffn));
}

const USER = { id: '80351110224678912', username: 'nelly', global_name: 'Nelly', discriminator: '0', bot: false };

interface GatewaySession {
  id: string;
  seq: number;
  events: { s: number; t: string; d: Json }[];
  socket: WebSocket | null;
  invalid: boolean;
}

export class FakeDiscordBot {
  readonly userId: string;
  readonly token: string;
  readonly username: string;
  revoked = false;
  /** Privileged intents switched on for this bot in the "Developer Portal". */
  granted: (keyof typeof PRIVILEGED)[] = [];
  ackHeartbeats = true;
  /** HEARTBEAT_ACKs sent. */
  acks = 0;
  /** The next this many IDENTIFY or RESUME frames are answered by closing the socket with 4000. */
  dropLogins = 0;
  /** `session_start_limit.remaining` of `GET /gateway/bot` (each IDENTIFY spends one). */
  identifiesLeft = 999;
  readonly calls: RestCall[] = [];
  /** Every frame the bot sent on any of its sockets, in order. */
  readonly frames: (GatewayFrame & { socket: number })[] = [];
  /** Close codes the client used when it closed a socket. */
  readonly clientCloses: number[] = [];
  /** Requests that came while their bucket was exhausted (Discord would count them against the bot). */
  violations = 0;
  /** Bucket size and window announced to the client. */
  limits = { limit: 1_000, resetAfter: 1 };
  readonly sessions = new Map<string, GatewaySession>();
  sockets = 0;
  readonly failures: { route: RegExp; failure: ScriptedFailure }[] = [];
  readonly #buckets = new Map<string, number>();
  /**
   * Messages for the bot while no socket of it is up: dispatched after the next READY or RESUMED
   * (more lenient than Discord, which keeps events only for a session that is resumed).
   */
  readonly #pending: Obj[] = [];
  #live: GatewaySession | null = null;

  constructor(userId: string) {
    this.userId = userId;
    this.username = `bot${userId.slice(-4)}`;
    this.token = `${Buffer.from(userId).toString('base64url')}.${randomBytes(5).toString('base64url')}.${randomBytes(20).toString('base64url')}`;
  }

  get user(): Obj {
    return { id: this.userId, username: this.username, global_name: null, discriminator: '0', bot: true };
  }

  /** The live gateway session (with a socket), if any. */
  get live(): GatewaySession | null {
    return this.#live?.socket ? this.#live : null;
  }

  framesOf(op: number): (GatewayFrame & { socket: number })[] {
    return this.frames.filter((f) => f.op === op);
  }

  callsOf(verb: string, path: RegExp): RestCall[] {
    return this.calls.filter((c) => c.verb === verb && path.test(c.path));
  }

  /** Answers the next request whose `VERB /path` matches `route` with this failure. */
  failNext(route: RegExp, failure: ScriptedFailure): void {
    this.failures.push({ route, failure });
  }

  resetBuckets(): void {
    this.#buckets.clear();
  }

  /** A message in `channelId` from a user (or `author`): dispatched now, or kept for the session. */
  pushMessage(channelId: string, content: string, extra: Obj = {}): Obj {
    const message: Obj = { id: snowflake(), channel_id: channelId, author: USER, content, timestamp: new Date().toISOString(), edited_timestamp: null, tts: false, mention_everyone: false, mentions: [], attachments: [], embeds: [], type: 0, ...extra };
    const session = this.live && !this.live.invalid ? this.live : null;
    if (session) dispatch(session, 'MESSAGE_CREATE', message);
    else this.#pending.push(message);
    return message;
  }

  /** Sends op 7 RECONNECT on the live socket. */
  reconnect(): void {
    this.live?.socket?.send(JSON.stringify({ op: 7, d: null }));
  }

  /** Sends op 9 INVALID_SESSION; not resumable: the session is gone. */
  invalidate(resumable: boolean): void {
    const session = this.live;
    if (!session) return;
    if (!resumable) session.invalid = true;
    session.socket?.send(JSON.stringify({ op: 9, d: resumable }));
  }

  /** Discord closes the live socket with `code`. */
  closeWith(code: number, reason = ''): void {
    this.live?.socket?.close(code, reason);
  }

  /** Revokes the token: 401 from REST, and the live socket closes with 4004. */
  revoke(): void {
    this.revoked = true;
    this.closeWith(4004, 'Authentication failed.');
  }

  /** A bucket's remaining count after this request, or -1 when it was already exhausted. */
  take(key: string): number {
    const left = this.#buckets.get(key) ?? this.limits.limit;
    if (left <= 0) return -1;
    this.#buckets.set(key, left - 1);
    return left - 1;
  }

  startSession(ws: WebSocket): GatewaySession {
    const session: GatewaySession = { id: randomBytes(16).toString('hex'), seq: 0, events: [], socket: ws, invalid: false };
    this.sessions.set(session.id, session);
    this.#live = session;
    return session;
  }

  attach(session: GatewaySession, ws: WebSocket): void {
    session.socket = ws;
    this.#live = session;
  }

  flushPending(session: GatewaySession): void {
    for (const message of this.#pending.splice(0)) dispatch(session, 'MESSAGE_CREATE', message);
  }
}

/** A dispatch (op 0) with the session's next sequence number, kept for replay on RESUME. */
function dispatch(session: GatewaySession, t: string, d: Json): void {
  const s = ++session.seq;
  session.events.push({ s, t, d });
  session.socket?.send(JSON.stringify({ op: 0, s, t, d }));
}

export interface FakeDiscord {
  readonly url: string;
  readonly gatewayUrl: string;
  /** Every REST request and gateway connection, bots known or not. */
  readonly requests: number;
  heartbeatInterval: number;
  bot(options?: { granted?: FakeDiscordBot['granted'] }): FakeDiscordBot;
  close(): Promise<void>;
}

/** Starts the fake on 127.0.0.1 (a free port). */
export async function startFakeDiscord(): Promise<FakeDiscord> {
  const bots = new Map<string, FakeDiscordBot>();
  const sockets = new Set<Socket>();
  let requests = 0;
  let nextUser = 1_100_000_000_000_000_000n;
  const state = { heartbeatInterval: 41_250 };

  const send = (res: ServerResponse, status: number, body: Json | undefined, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };

  const server = http.createServer((req, res) => {
    requests++;
    void handle(req, res).catch(() => send(res, 500, { message: '500: Internal Server Error', code: 0 }));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    if (!url.pathname.startsWith('/api/v10/')) return send(res, 404, { message: '404: Not Found', code: 0 });
    const path = url.pathname.slice('/api/v10'.length);
    const verb = req.method ?? 'GET';
    const auth = /^Bot (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const bot = auth ? bots.get(auth) : undefined;
    if (!bot || bot.revoked) return send(res, 401, { message: '401: Unauthorized', code: 0 });
    let body: Json = null;
    if (text) {
      try {
        body = JSON.parse(text) as Json;
      } catch {
        return send(res, 400, { message: '400: Bad Request', code: 50109 });
      }
    }
    bot.calls.push({ verb, path, body, at: Date.now() });
    const routeName = `${verb} ${path}`;
    const scripted = bot.failures.findIndex((f) => f.route.test(routeName));
    if (scripted >= 0) {
      const { failure } = bot.failures.splice(scripted, 1)[0]!;
      return send(res, failure.status, failure.body, failure.headers);
    }
    // The bucket: messages routes share one hash per channel, as Discord groups them.
    const channel = /^\/channels\/(\d+)/.exec(path)?.[1] ?? '';
    const hash = /\/messages(\/\d+)?$/.test(path) ? 'msgs0a1b2c3d' : path.includes('/reactions/') ? 'react4e5f6a7b' : path.endsWith('/typing') ? 'type8c9d0e1f' : 'misc2a3b4c5d';
    const left = bot.take(`${hash}:${channel}`);
    const limitHeaders = { 'x-ratelimit-limit': String(bot.limits.limit), 'x-ratelimit-remaining': String(Math.max(0, left)), 'x-ratelimit-reset': String(Date.now() / 1_000 + bot.limits.resetAfter), 'x-ratelimit-reset-after': String(bot.limits.resetAfter), 'x-ratelimit-bucket': hash };
    if (left < 0) {
      bot.violations++;
      return send(res, 429, { message: 'You are being rate limited.', retry_after: bot.limits.resetAfter, global: false }, { ...limitHeaders, 'retry-after': String(Math.ceil(bot.limits.resetAfter)), 'x-ratelimit-scope': 'user' });
    }
    const ok = (status: number, answer?: Json) => send(res, status, answer, limitHeaders);
    let m: RegExpExecArray | null;
    if (verb === 'GET' && path === '/gateway/bot') {
      return ok(200, { url: `ws://127.0.0.1:${port}/gateway`, shards: 1, session_start_limit: { total: 1_000, remaining: bot.identifiesLeft, reset_after: 14_400_000, max_concurrency: 1 } });
    }
    if (verb === 'GET' && path === '/users/@me') return ok(200, bot.user);
    if (verb === 'POST' && (m = /^\/channels\/(\d+)\/messages$/.exec(path))) {
      return ok(200, { id: snowflake(), channel_id: m[1]!, author: bot.user, timestamp: new Date().toISOString(), type: 0, ...(body as Obj) });
    }
    if (verb === 'PATCH' && (m = /^\/channels\/(\d+)\/messages\/(\d+)$/.exec(path))) {
      return ok(200, { id: m[2]!, channel_id: m[1]!, author: bot.user, edited_timestamp: new Date().toISOString(), type: 0, ...(body as Obj) });
    }
    if (verb === 'DELETE' && /^\/channels\/\d+\/messages\/\d+$/.test(path)) return ok(204);
    if (verb === 'POST' && /^\/channels\/\d+\/typing$/.test(path)) return ok(204);
    if (verb === 'PUT' && /^\/channels\/\d+\/messages\/\d+\/reactions\/[^/]+\/@me$/.test(path)) return ok(204);
    if (verb === 'POST' && path === '/users/@me/channels') return ok(200, { id: snowflake(), type: 1, recipients: [USER] });
    return send(res, 404, { message: '404: Not Found', code: 0 });
  }

  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    requests++;
    const url = new URL(req.url ?? '/', 'http://x');
    if (!['/gateway', '/resume'].includes(url.pathname) || url.searchParams.get('v') !== '10' || url.searchParams.get('encoding') !== 'json') {
      socket.destroy();
      return;
    }
    // Both ends live in the test process: the fake drops the TCP connection as soon as it reads
    // the client's close frame (no 30 s close timer of `ws` outlives a test), and the session has
    // no socket from that moment (a message pushed meanwhile waits for the next one).
    let onClientClose: (code: number) => void = () => undefined;
    socket.on('data', (chunk: Buffer) => {
      if (chunk.length < 2 || (chunk[0]! & 0x0f) !== 0x8) return;
      const masked = (chunk[1]! & 0x80) !== 0;
      const length = chunk[1]! & 0x7f;
      const at = masked ? 6 : 2;
      const code = length >= 2 && chunk.length >= at + 2 ? ((chunk[at]! ^ (masked ? chunk[2]! : 0)) << 8) | (chunk[at + 1]! ^ (masked ? chunk[3]! : 0)) : 1005;
      onClientClose(code);
      setImmediate(() => socket.destroy());
    });
    wss.handleUpgrade(req, socket, head, (ws) => (onClientClose = onSocket(ws)));
  });

  /** Serves one gateway socket; returns what to do when the client sends its close frame. */
  function onSocket(ws: WebSocket): (code: number) => void {
    let bot: FakeDiscordBot | null = null;
    let session: GatewaySession | null = null;
    let number = 0;
    let serverClosed = false;
    ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: state.heartbeatInterval } }));
    const detach = (): void => {
      if (session?.socket === ws) session.socket = null;
    };
    const close = ws.close.bind(ws);
    ws.close = (code?: number, reason?: string) => {
      serverClosed = true;
      close(code, reason);
    };
    ws.on('close', detach);
    ws.on('message', (data) => {
      let frame: GatewayFrame;
      try {
        frame = JSON.parse(String(data)) as GatewayFrame;
      } catch {
        ws.close(4002, 'Decode error.');
        return;
      }
      const d = (frame.d ?? {}) as Obj;
      const known = bot ?? (typeof d.token === 'string' ? (bots.get(d.token) ?? null) : null);
      if (known && !bot) {
        bot = known;
        number = ++known.sockets;
      }
      bot?.frames.push({ op: frame.op, d: frame.d, socket: number });
      if (frame.op === 1) {
        if (bot?.ackHeartbeats !== false) {
          ws.send(JSON.stringify({ op: 11 }));
          if (bot) bot.acks++;
        }
        return;
      }
      if (frame.op !== 2 && frame.op !== 6) return;
      if (!bot || bot.revoked || d.token !== bot.token) {
        ws.close(4004, 'Authentication failed.');
        return;
      }
      if (bot.dropLogins > 0) {
        bot.dropLogins--;
        ws.close(4000, 'Unknown error.');
        return;
      }
      if (frame.op === 2) {
        const intents = typeof d.intents === 'number' ? d.intents : 0;
        const denied = Object.entries(PRIVILEGED).filter(([name, bit]) => (intents & bit) !== 0 && !bot!.granted.includes(name as keyof typeof PRIVILEGED));
        if (denied.length) {
          ws.close(4014, 'Disallowed intent(s).');
          return;
        }
        bot.identifiesLeft = Math.max(0, bot.identifiesLeft - 1);
        session = bot.startSession(ws);
        dispatch(session, 'READY', { v: 10, user: bot.user, guilds: [], session_id: session.id, resume_gateway_url: `ws://127.0.0.1:${port}/resume`, shard: [0, 1], application: { id: bot.userId, flags: 0 } });
        bot.flushPending(session);
        return;
      }
      const resumed = typeof d.session_id === 'string' ? bot.sessions.get(d.session_id) : undefined;
      if (!resumed || resumed.invalid) {
        ws.send(JSON.stringify({ op: 9, d: false }));
        return;
      }
      session = resumed;
      bot.attach(resumed, ws);
      const after = typeof d.seq === 'number' ? d.seq : 0;
      for (const e of resumed.events) if (e.s > after) ws.send(JSON.stringify({ op: 0, s: e.s, t: e.t, d: e.d }));
      dispatch(resumed, 'RESUMED', null);
      bot.flushPending(resumed);
    });
    return (code) => {
      detach();
      if (serverClosed || !bot) return;
      bot.clientCloses.push(code);
      if ((code === 1000 || code === 1001) && session) session.invalid = true;
    };
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/api`,
    gatewayUrl: `ws://127.0.0.1:${port}/gateway`,
    get requests() {
      return requests;
    },
    get heartbeatInterval() {
      return state.heartbeatInterval;
    },
    set heartbeatInterval(ms: number) {
      state.heartbeatInterval = ms;
    },
    bot(options = {}) {
      const bot = new FakeDiscordBot(String(nextUser++));
      bot.granted = options.granted ?? [];
      bots.set(bot.token, bot);
      return bot;
    },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
