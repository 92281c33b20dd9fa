/**
 * A local stand-in for an OpenAI-compatible API on 127.0.0.1, speaking its documented shapes:
 * `GET /v1/models` (`{ object: 'list', data: [{ id, object: 'model', created, owned_by }] }`) and
 * `POST /v1/chat/completions` with `{ model, messages, temperature?, max_tokens?, stream?,
 * stream_options? }`, answering a `chat.completion` object, or with `stream: true` Server-Sent
 * Events — `data: {chat.completion.chunk}` events, a usage chunk (`choices: []`) when
 * `stream_options.include_usage`, then `data: [DONE]`. Errors are `{ error: { message, type,
 * param, code } }` with the HTTP status: 401 `invalid_api_key` for a missing, unknown or revoked
 * key, 404 `model_not_found`, 400 `invalid_request_error`, 429 with `retry-after` and
 * `retry-after-ms` headers. Tests script failures (`failNext`), the replies (`respond`) and read
 * every request.
 *
 * Used by the adapter's tests and by examples/ai-chat-server (its back-end when no real one is set).
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type ChatMessage = { role: string; content: string };

export interface RecordedRequest {
  method: string;
  path: string;
  /** The key of the `Authorization: Bearer` header, or null. */
  key: string | null;
  body: Record<string, Json> | null;
  /** Real time it arrived (Date.now()). */
  at: number;
}

export interface ScriptedFailure {
  status: number;
  message: string;
  type?: string;
  code?: string | null;
  /** 429: seconds for `retry-after`. */
  retryAfter?: number;
  /** 429: ms for `retry-after-ms`. */
  retryAfterMs?: number;
  /** Instead of an HTTP error: stream this many deltas, then an `{ error }` event (stream requests only). */
  midStream?: number;
  /** With `midStream`: cut the connection there instead of sending an error event. */
  cut?: boolean;
}

export interface FakeOpenAIOptions {
  /** Models `/v1/models` lists and completions accept. Default `['fake-gpt']`. */
  models?: string[];
  /** `false`: any key or none is accepted (like a local Ollama). Default true. */
  requireKey?: boolean;
  /** Port to listen on (default any free port). */
  port?: number;
}

export interface FakeOpenAI {
  /** The base URL, `/v1` included: `http://127.0.0.1:<port>/v1`. */
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Completion requests only, with their messages. */
  completions(): { key: string | null; model: string; messages: ChatMessage[]; stream: boolean; body: Record<string, Json> }[];
  /** Registers a key (a new `sk-fake-…` one by default) and returns it. */
  key(key?: string): string;
  /** The back-end refuses `key` from now on (401). */
  revoke(key: string): void;
  /** Answers the next `times` requests to `endpoint` (`chat/completions` or `models`) with this failure. */
  failNext(endpoint: 'chat/completions' | 'models', failure: ScriptedFailure, times?: number): void;
  /** Writes the reply to a conversation. Default: `Echo #<user messages>: <last user message>`. */
  respond: (messages: ChatMessage[], model: string) => string;
  /** Pause between streamed chunks, in ms (default 0). */
  chunkDelayMs: number;
  close(): Promise<void>;
}

/** The default reply: shows how many user messages (history included) the request carried. */
export function echoReply(messages: ChatMessage[]): string {
  const users = messages.filter((m) => m.role === 'user');
  return `Echo #${users.length}: ${users.at(-1)?.content ?? ''}`;
}

/** OpenAI-ish token counts: about four characters a token. */
const tokensOf = (text: string): number => Math.max(1, Math.ceil(text.length / 4));

function send(res: ServerResponse, status: number, body: Json, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers }).end(text);
}

function error(res: ServerResponse, status: number, message: string, type: string, code: string | null, headers: Record<string, string> = {}): void {
  send(res, status, { error: { message, type, param: null, code } }, headers);
}

export async function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const models = options.models ?? ['fake-gpt'];
  const requireKey = options.requireKey ?? true;
  const keys = new Set<string>();
  const revoked = new Set<string>();
  const failures = new Map<string, ScriptedFailure[]>();
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  let nextId = 1;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => error(res, 500, `The server had an error: ${String(e)}`, 'server_error', null));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function bodyOf(req: IncomingMessage): Promise<Record<string, Json> | null | 'bad'> {
    const chunks: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text) return null;
    try {
      const parsed = JSON.parse(text) as Json;
      return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : 'bad';
    } catch {
      return 'bad';
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const auth = req.headers.authorization ?? '';
    const key = /^Bearer (.+)$/.exec(auth)?.[1] ?? null;
    const body = await bodyOf(req);
    requests.push({ method: req.method ?? 'GET', path: url.pathname, key, body: body === 'bad' ? null : body, at: Date.now() });
    if (requireKey && (key === null || !keys.has(key) || revoked.has(key))) {
      const shown = key ? `${key.slice(0, 3)}*****${key.slice(-2)}` : null;
      const message = shown
        ? `Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.`
        : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";
      return error(res, 401, message, 'invalid_request_error', shown ? 'invalid_api_key' : null);
    }
    const endpoint = url.pathname === '/v1/models' ? 'models' : url.pathname === '/v1/chat/completions' ? 'chat/completions' : null;
    if (endpoint === null) return error(res, 404, `Invalid URL (${req.method} ${url.pathname})`, 'invalid_request_error', null);
    const failure = failures.get(endpoint)?.shift();
    if (failure && failure.midStream === undefined) {
      const headers: Record<string, string> = {};
      if (failure.retryAfter !== undefined) headers['retry-after'] = String(failure.retryAfter);
      if (failure.retryAfterMs !== undefined) headers['retry-after-ms'] = String(failure.retryAfterMs);
      return error(res, failure.status, failure.message, failure.type ?? (failure.status === 429 ? 'requests' : 'invalid_request_error'), failure.code ?? null, headers);
    }
    if (endpoint === 'models') {
      if (req.method !== 'GET') return error(res, 405, 'Method not allowed', 'invalid_request_error', null);
      return send(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'fake' })) });
    }
    if (req.method !== 'POST') return error(res, 405, 'Method not allowed', 'invalid_request_error', null);
    if (body === 'bad' || body === null) return error(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error', null);
    const model = body.model;
    if (typeof model !== 'string' || !model) return error(res, 400, 'you must provide a model parameter', 'invalid_request_error', null);
    if (!models.includes(model)) return error(res, 404, `The model \`${model}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found');
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0 || !messages.every((m) => m !== null && typeof m === 'object' && !Array.isArray(m) && typeof m.role === 'string' && typeof m.content === 'string')) {
      return error(res, 400, "Invalid 'messages': expected a non-empty array of { role, content }.", 'invalid_request_error', null);
    }
    const chat = messages as unknown as ChatMessage[];
    const text = fake.respond(chat, model);
    const id = `chatcmpl-fake${nextId++}`;
    const created = Math.floor(Date.now() / 1_000);
    const usage = { prompt_tokens: chat.reduce((n, m) => n + tokensOf(m.content) + 4, 0), completion_tokens: tokensOf(text), total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    if (body.stream !== true) {
      return send(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: 'stop' }],
        usage,
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const chunk = (delta: Record<string, Json>, finish: string | null): Json => ({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
    const write = async (data: Json | '[DONE]'): Promise<void> => {
      if (res.destroyed) return;
      res.write(`data: ${data === '[DONE]' ? data : JSON.stringify(data)}\n\n`);
      if (fake.chunkDelayMs > 0) await new Promise((r) => setTimeout(r, fake.chunkDelayMs));
    };
    await write(chunk({ role: 'assistant', content: '' }, null));
    const pieces = text.match(/\S+\s*|\s+/g) ?? [];
    for (const [i, piece] of pieces.entries()) {
      if (failure?.midStream === i && failure.cut) {
        await new Promise((r) => setTimeout(r, 20)); // the pieces before arrive first
        return void res.destroy();
      }
      if (failure?.midStream === i) {
        await write({ error: { message: failure.message, type: failure.type ?? 'server_error', param: null, code: failure.code ?? null } });
        return void res.end();
      }
      await write(chunk({ content: piece }, null));
    }
    await write(chunk({}, 'stop'));
    const streamOptions = body.stream_options;
    if (streamOptions !== null && typeof streamOptions === 'object' && !Array.isArray(streamOptions) && streamOptions.include_usage === true) {
      await write({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
    }
    await write('[DONE]');
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const fake: FakeOpenAI = {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    completions: () =>
      requests
        .filter((r) => r.path === '/v1/chat/completions' && r.body)
        .map((r) => ({ key: r.key, model: String(r.body!.model), messages: r.body!.messages as unknown as ChatMessage[], stream: r.body!.stream === true, body: r.body! })),
    key(key = `sk-fake-${randomBytes(18).toString('base64url')}`) {
      keys.add(key);
      revoked.delete(key);
      return key;
    },
    revoke(key) {
      revoked.add(key);
    },
    failNext(endpoint, failure, times = 1) {
      failures.set(endpoint, [...(failures.get(endpoint) ?? []), ...Array.from({ length: times }, () => failure)]);
    },
    respond: (messages) => echoReply(messages),
    chunkDelayMs: 0,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}
