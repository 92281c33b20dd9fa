/**
 * A local stand-in for the Telegram Bot API on 127.0.0.1, speaking its documented shapes:
 * `POST|GET /bot<token>/<method>` with JSON, form or query parameters; answers
 * `{ ok: true, result }` or `{ ok: false, error_code, description, parameters? }` with the same
 * HTTP status; 401 for an unknown or revoked token; `getUpdates` long polling (`offset` confirms
 * the updates before it, `timeout` holds the request until an update arrives, a second poller
 * ends the first with 409, a webhook forbids polling with 409); `setWebhook` with `secret_token`,
 * after which updates are posted to the webhook with the `X-Telegram-Bot-Api-Secret-Token` header
 * and kept until it answers 2xx. Tests script failures (`failNext`) and read every call.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Params = Record<string, Json>;
export type Update = { update_id: number } & Record<string, Json>;

export interface RecordedCall {
  method: string;
  params: Params;
  /** Real time it arrived (Date.now()). */
  at: number;
}

export interface Failure {
  status: number;
  description: string;
  /** Seconds, as `parameters.retry_after` (429). */
  retryAfter?: number;
}

const USER = { id: 111, is_bot: false, first_name: 'Ann', last_name: 'Lee', username: 'ann' };

/** A bot token of the shape BotFather hands out. */
export function makeToken(botId: number): string {
  return `${botId}:AA${randomBytes(26).toString('base64url')}`;
}

export class FakeBot {
  readonly token: string;
  readonly id: number;
  readonly username: string;
  revoked = false;
  /** Updates not yet confirmed by an offset (or a webhook's 2xx). */
  updates: Update[] = [];
  readonly calls: RecordedCall[] = [];
  webhook: { url: string; secret: string | null } | null = null;
  /** What the webhook answered, per delivery. */
  readonly webhookDeliveries: { updateId: number; status: number }[] = [];
  readonly failures = new Map<string, Failure[]>();
  #nextUpdateId = 500_000 + Math.floor(Math.random() * 1_000);
  #nextMessageId = 1;
  /** The long poll being held, if any: call to answer it. */
  poll: ((answer: 'updates' | 'conflict' | 'timeout') => void) | null = null;
  #delivering = false;

  constructor(token: string, username: string) {
    this.token = token;
    this.id = Number(token.split(':')[0]);
    this.username = username;
  }

  /** Revokes the token (401 from now on); a long poll held open ends, so the next one hears it. */
  revoke(): void {
    this.revoked = true;
    this.poll?.('timeout');
  }

  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Answers the next `times` calls of `method` with this error. */
  failNext(method: string, failure: Failure, times = 1): void {
    this.failures.set(method, [...(this.failures.get(method) ?? []), ...Array.from({ length: times }, () => failure)]);
  }

  /** Queues an update of any kind: `{ callback_query: {...} }` and so on. */
  pushUpdate(body: Record<string, Json>): Update {
    const update = { update_id: this.#nextUpdateId++, ...body } as Update;
    this.updates.push(update);
    this.poll?.('updates');
    void this.deliverToWebhook();
    return update;
  }

  /** Queues a text message from a user in `chatId`. */
  pushMessage(chatId: number, text: string, from: Record<string, Json> = USER): Update {
    const chat: Record<string, Json> = chatId > 0 ? { id: chatId, type: 'private', first_name: String(from.first_name ?? 'x') } : { id: chatId, type: 'group', title: 'The group' };
    return this.pushUpdate({ message: { message_id: this.#nextMessageId++, date: Math.floor(Date.now() / 1_000), chat, from, text } });
  }

  message(chatId: Json, extra: Record<string, Json>): Record<string, Json> {
    const from = { id: this.id, is_bot: true, first_name: 'Test bot', username: this.username };
    return { message_id: this.#nextMessageId++, date: Math.floor(Date.now() / 1_000), chat: { id: chatId, type: 'private' }, from, ...extra };
  }

  /** Posts pending updates to the webhook in order, each until it answers 2xx. */
  async deliverToWebhook(): Promise<void> {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      while (this.webhook && this.updates.length > 0) {
        const update = this.updates[0]!;
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (this.webhook.secret) headers['X-Telegram-Bot-Api-Secret-Token'] = this.webhook.secret;
        const status = await fetch(this.webhook.url, { method: 'POST', headers, body: JSON.stringify(update), signal: AbortSignal.timeout(10_000) }).then(
          async (r) => (await r.arrayBuffer(), r.status),
          () => 0,
        );
        this.webhookDeliveries.push({ updateId: update.update_id, status });
        if (status >= 200 && status < 300) {
          if (this.updates[0] === update) this.updates.shift();
        } else {
          await new Promise((r) => setTimeout(r, 50)); // Telegram retries later
        }
      }
    } finally {
      this.#delivering = false;
    }
  }
}

export interface FakeBotApi {
  readonly url: string;
  /** Every request the server got, bots known or not. */
  readonly requests: number;
  /** Registers a bot (or returns the one with this token). */
  bot(token?: string, username?: string): FakeBot;
  close(): Promise<void>;
}

function ok(res: ServerResponse, result: Json): void {
  send(res, 200, { ok: true, result });
}

function fail(res: ServerResponse, status: number, description: string, retryAfter?: number): void {
  send(res, status, { ok: false, error_code: status, description, ...(retryAfter !== undefined ? { parameters: { retry_after: retryAfter } } : {}) });
}

function send(res: ServerResponse, status: number, body: Json): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

async function paramsOf(req: IncomingMessage, url: URL): Promise<Params> {
  const params: Params = Object.fromEntries(url.searchParams);
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return params;
  const type = req.headers['content-type'] ?? '';
  if (type.includes('application/json')) return { ...params, ...(JSON.parse(text) as Params) };
  if (type.includes('application/x-www-form-urlencoded')) return { ...params, ...Object.fromEntries(new URLSearchParams(text)) };
  return params;
}

export interface FakeBotApiOptions {
  /**
   * How long an idle keep-alive connection stays open (Node's default: 5 s). Telegram's servers
   * keep them far longer; a load test with many pollers raises it so that a connection closed as
   * a client reuses it does not count as a failure.
   */
  keepAliveTimeoutMs?: number;
}

export async function startFakeBotApi(options: FakeBotApiOptions = {}): Promise<FakeBotApi> {
  const bots = new Map<string, FakeBot>();
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => fail(res, 500, `Internal Server Error: ${String(error)}`));
  });
  if (options.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = options.keepAliveTimeoutMs;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  let requests = 0;
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requests++;
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
    if (!match) return fail(res, 404, 'Not Found');
    const [, token, method] = match as unknown as [string, string, string];
    const params = await paramsOf(req, url).catch(() => null);
    if (params === null) return fail(res, 400, "Bad Request: can't parse JSON object");
    const bot = bots.get(token);
    if (!bot || bot.revoked) return fail(res, 401, 'Unauthorized');
    bot.calls.push({ method, params, at: Date.now() });
    const failure = bot.failures.get(method)?.shift();
    if (failure) return fail(res, failure.status, failure.description, failure.retryAfter);
    return answer(bot, method, params, res);
  }

  function answer(bot: FakeBot, method: string, p: Params, res: ServerResponse): void {
    switch (method) {
      case 'getMe':
        return ok(res, { id: bot.id, is_bot: true, first_name: 'Test bot', username: bot.username, can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false });
      case 'getUpdates':
        return getUpdates(bot, p, res);
      case 'setWebhook': {
        const secret = p.secret_token === undefined ? null : String(p.secret_token);
        if (secret !== null && !/^[A-Za-z0-9_-]{1,256}$/.test(secret)) return fail(res, 400, 'Bad Request: secret token contains unallowed characters');
        if (!p.url) {
          bot.webhook = null;
          return ok(res, true);
        }
        bot.webhook = { url: String(p.url), secret };
        bot.poll?.('conflict');
        ok(res, true);
        void bot.deliverToWebhook();
        return;
      }
      case 'deleteWebhook':
        bot.webhook = null;
        if (p.drop_pending_updates === true || p.drop_pending_updates === 'true') bot.updates = [];
        return ok(res, true);
      case 'getWebhookInfo':
        return ok(res, { url: bot.webhook?.url ?? '', has_custom_certificate: false, pending_update_count: bot.updates.length });
      case 'sendMessage':
        if (p.chat_id === undefined) return fail(res, 400, 'Bad Request: chat_id is empty');
        if (typeof p.text !== 'string' || p.text === '') return fail(res, 400, 'Bad Request: message text is empty');
        return ok(res, bot.message(p.chat_id, { text: p.text }));
      case 'sendPhoto':
        if (p.chat_id === undefined || !p.photo) return fail(res, 400, 'Bad Request: there is no photo in the request');
        return ok(res, bot.message(p.chat_id, { photo: [{ file_id: String(p.photo), file_unique_id: 'u1', width: 90, height: 90 }], ...(p.caption ? { caption: p.caption } : {}) }));
      case 'sendDocument':
        if (p.chat_id === undefined || !p.document) return fail(res, 400, 'Bad Request: there is no document in the request');
        return ok(res, bot.message(p.chat_id, { document: { file_id: String(p.document), file_unique_id: 'u2' }, ...(p.caption ? { caption: p.caption } : {}) }));
      case 'editMessageText':
        if (p.message_id === undefined) return fail(res, 400, 'Bad Request: message identifier is not specified');
        return ok(res, { ...bot.message(p.chat_id ?? 0, { text: String(p.text) }), message_id: p.message_id, edit_date: Math.floor(Date.now() / 1_000) });
      case 'deleteMessage':
      case 'answerCallbackQuery':
      case 'sendChatAction':
        return ok(res, true);
      case 'forwardMessage':
        return ok(res, bot.message(p.chat_id ?? 0, { forward_origin: { type: 'chat', date: 0 } }));
      case 'copyMessage':
        return ok(res, { message_id: Number(p.message_id) + 1_000 });
      default:
        return fail(res, 404, 'Not Found: method not found');
    }
  }

  function getUpdates(bot: FakeBot, p: Params, res: ServerResponse): void {
    if (bot.webhook) return fail(res, 409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
    const offset = Number(p.offset ?? 0);
    const limit = Math.min(100, Math.max(1, Number(p.limit ?? 100)));
    const timeout = Math.max(0, Number(p.timeout ?? 0));
    if (offset > 0) bot.updates = bot.updates.filter((u) => u.update_id >= offset); // confirmed
    // One poller per token: a newer request ends the one held.
    bot.poll?.('conflict');
    const ready = () => bot.updates.slice(0, limit);
    if (ready().length > 0 || timeout === 0) return ok(res, ready());
    const timer = setTimeout(() => finish('timeout'), timeout * 1_000);
    const finish = (answer: 'updates' | 'conflict' | 'timeout'): void => {
      if (bot.poll === finish) bot.poll = null;
      clearTimeout(timer);
      res.off('close', onClose);
      if (answer === 'conflict') fail(res, 409, 'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running');
      else ok(res, ready());
    };
    const onClose = () => {
      if (bot.poll === finish) bot.poll = null;
      clearTimeout(timer);
    };
    bot.poll = finish;
    res.on('close', onClose); // the client gave up (an aborted long poll)
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let nextId = 7_000_000_000;
  return {
    url,
    get requests() {
      return requests;
    },
    bot(token, username) {
      const t = token ?? makeToken(nextId++);
      let bot = bots.get(t);
      if (!bot) bots.set(t, (bot = new FakeBot(t, username ?? `test_${bots.size + 1}_bot`)));
      return bot;
    },
    async close() {
      for (const bot of bots.values()) {
        bot.webhook = null;
        bot.poll?.('timeout');
      }
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
