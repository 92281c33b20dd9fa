import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ValidationError, WebhookVerificationError } from '../errors.js';

/**
 * Standard Webhooks 1.0 signatures: `v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`
 * keyed by the secret's bytes (`whsec_` + base64 of 24 to 64 random bytes). Several signatures in
 * one `webhook-signature` header are separated by spaces (a rotation signs with both secrets).
 */

const PREFIX = 'whsec_';

/** A new endpoint secret: `whsec_` + base64 of `bytes` random bytes (24–64, default 32). */
export function generateWebhookSecret(bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes < 24 || bytes > 64) {
    throw new ValidationError('webhook secret size', [{ path: ['bytes'], message: 'must be a whole number of bytes from 24 to 64' }]);
  }
  return PREFIX + randomBytes(bytes).toString('base64');
}

/** The key bytes of a `whsec_` secret; `ValidationError` at `path` unless it is `whsec_` + base64 of 24–64 bytes. */
export function secretBytes(secret: string, path: (string | number)[] = ['secret']): Buffer {
  const fail = (): never => {
    throw new ValidationError('webhook secret', [{ path, message: 'must be "whsec_" followed by the base64 of 24 to 64 random bytes (make one with generateWebhookSecret())' }]);
  };
  if (typeof secret !== 'string' || !secret.startsWith(PREFIX)) return fail();
  const b64 = secret.slice(PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return fail();
  const key = Buffer.from(b64, 'base64');
  if (key.length < 24 || key.length > 64) return fail();
  return key;
}

/** What is signed: the message id, the time in whole seconds and the exact body. */
export interface SignInput {
  id: string;
  /** Seconds since the epoch (the `webhook-timestamp` header). */
  timestamp: number;
  body: string;
}

/**
 * The `webhook-signature` header value for `input`: one `v1,<base64>` per secret, space-separated.
 *
 * @example
 * ```ts
 * const header = sign({ id: 'msg_1', timestamp: Math.floor(Date.now() / 1000), body: '{"type":"x"}' }, secret);
 * ```
 */
export function sign(input: SignInput, secrets: string | readonly string[]): string {
  const list = typeof secrets === 'string' ? [secrets] : secrets;
  return list.map((s, i) => `v1,${signOne(input, secretBytes(s, typeof secrets === 'string' ? ['secret'] : ['secrets', i]))}`).join(' ');
}

function signOne(input: SignInput, key: Buffer): string {
  return createHmac('sha256', key).update(`${input.id}.${input.timestamp}.${input.body}`).digest('base64');
}

/** Options of {@link verify}. */
export interface VerifyOptions {
  /** Largest accepted difference between the webhook's timestamp and now, in seconds. Default 300. */
  toleranceSeconds?: number;
  /** The receiver's clock, in ms (default `Date.now()`). */
  now?: number;
}

/** The three Standard Webhooks headers, from a plain object or a `Headers`. */
function header(headers: Record<string, string | string[] | undefined> | Headers, name: string): string {
  const value = typeof (headers as Headers).get === 'function' ? (headers as Headers).get(name) : (headers as Record<string, string | string[] | undefined>)[name];
  const text = Array.isArray(value) ? value[0] : value;
  if (typeof text !== 'string' || text.length === 0) throw new WebhookVerificationError(`the ${name} header is missing`);
  return text;
}

/**
 * Checks a webhook as a receiver: the `webhook-signature` must hold a `v1` signature made with one
 * of `secrets` over `webhook-id.webhook-timestamp.body`, and the timestamp must be within the
 * tolerance (replays of old messages fail). Returns the parsed payload; throws
 * `WebhookVerificationError` otherwise. Pass the raw body exactly as received.
 *
 * @example
 * ```ts
 * app.post('/hooks', express.text({ type: '*\/*' }), (req, res) => {
 *   const event = verify(req.body, req.headers, process.env.WEBHOOK_SECRET!);
 *   res.sendStatus(204);
 * });
 * ```
 */
export function verify(
  body: string | Buffer,
  headers: Record<string, string | string[] | undefined> | Headers,
  secrets: string | readonly string[],
  options: VerifyOptions = {},
): { type: string; timestamp: string; data: unknown } {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const id = header(headers, 'webhook-id');
  const stamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  const seconds = Number(stamp);
  if (!/^\d+$/.test(stamp) || !Number.isSafeInteger(seconds)) throw new WebhookVerificationError('the webhook-timestamp header is not a whole number of seconds');
  const tolerance = options.toleranceSeconds ?? 300;
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(now - seconds) > tolerance) throw new WebhookVerificationError(`the timestamp is ${now - seconds} s from now, beyond the tolerance of ${tolerance} s`);
  const keys = (typeof secrets === 'string' ? [secrets] : secrets).map((s, i) => secretBytes(s, typeof secrets === 'string' ? ['secret'] : ['secrets', i]));
  const given = signatures
    .split(' ')
    .map((part) => part.split(','))
    .filter(([version, value]) => version === 'v1' && value)
    .map(([, value]) => Buffer.from(value!, 'base64'));
  const matches = keys.some((key) => {
    const expected = Buffer.from(signOne({ id, timestamp: seconds, body: text }, key), 'base64');
    return given.some((g) => g.length === expected.length && timingSafeEqual(g, expected));
  });
  if (!matches) throw new WebhookVerificationError('no v1 signature matches any of the secrets');
  try {
    return JSON.parse(text) as { type: string; timestamp: string; data: unknown };
  } catch {
    throw new WebhookVerificationError('the body is not JSON');
  }
}
