import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isUpdate, type TelegramUpdate } from './updates.js';

/** The header Telegram sends the webhook's `secret_token` in (Node lower-cases header names). */
export const SECRET_TOKEN_HEADER = 'x-telegram-bot-api-secret-token';
/** Largest webhook body read (Telegram's updates are far smaller). */
const MAX_BODY_BYTES = 1_048_576;

/** A live webhook-mode connection, as the router sees it. */
export interface WebhookRoute {
  /** Emits the update; resolves true once the app handled it, false when the connection is shut down. */
  deliver(update: TelegramUpdate): Promise<boolean>;
}

/**
 * The webhook request handler, `(req, res)` for `node:http`, Express or anything built on them.
 * Mount it at the path of `webhookUrl`: one handler serves every webhook-mode session of the
 * adapter, told apart by the `X-Telegram-Bot-Api-Secret-Token` header (each session has its own
 * secret, set with `setWebhook`). It answers 200 once the update was handled (`session.message`
 * listeners done), so Telegram retries anything that was not; 401 without a known secret, 400
 * for a body that is no update, 503 when the session is going down (Telegram retries later).
 * A body already parsed by `express.json()` is used as it is.
 */
export type TelegramWebhookHandler = (req: IncomingMessage, res: ServerResponse) => void;

function reply(res: ServerResponse, status: number, description?: string): void {
  if (res.headersSent) return;
  const body = JSON.stringify(description ? { ok: false, description } : { ok: true });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

const keyOf = (secret: string): string => createHash('sha256').update(secret).digest('base64url');

/** Reads the request body as JSON (or takes the one a body parser left on `req.body`). */
async function bodyOf(req: IncomingMessage & { body?: unknown }): Promise<unknown> {
  const parsed = req.body;
  if (parsed !== undefined && !Buffer.isBuffer(parsed) && typeof parsed !== 'string') return parsed;
  let text: string;
  if (parsed !== undefined) {
    text = parsed.toString();
  } else {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw new RangeError('body too large');
      chunks.push(chunk);
    }
    text = Buffer.concat(chunks).toString('utf8');
  }
  return JSON.parse(text);
}

/**
 * Where webhook requests find their session: secret token → live connection, kept by one adapter
 * instance (by a hash of the secret, so a lookup leaks nothing by its timing). It holds no login
 * state: a connection adds itself when it starts and removes itself when it stops.
 */
export class WebhookRouter {
  readonly #routes = new Map<string, WebhookRoute>();

  add(secret: string, route: WebhookRoute): void {
    this.#routes.set(keyOf(secret), route);
  }

  remove(secret: string, route: WebhookRoute): void {
    const key = keyOf(secret);
    if (this.#routes.get(key) === route) this.#routes.delete(key);
  }

  readonly handler: TelegramWebhookHandler = (req, res) => {
    this.#handle(req, res).catch(() => reply(res, 500, 'the update could not be handled'));
  };

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return reply(res, 405, 'Telegram posts updates');
    }
    const secret = req.headers[SECRET_TOKEN_HEADER];
    const route = typeof secret === 'string' && secret.length > 0 ? this.#routes.get(keyOf(secret)) : undefined;
    if (!route) return reply(res, 401, 'missing or unknown secret token');
    let update: unknown;
    try {
      update = await bodyOf(req);
    } catch (error) {
      return reply(res, error instanceof RangeError ? 413 : 400, 'the body must be a JSON Update');
    }
    if (!isUpdate(update)) return reply(res, 400, 'the body must be a JSON Update with an update_id');
    const delivered = await route.deliver(update);
    return delivered ? reply(res, 200) : reply(res, 503, 'the session is going down; retry later');
  }
}
