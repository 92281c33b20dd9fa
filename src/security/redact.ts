/** Key names whose values are secrets wherever they appear in log data or details. */
const SECRET_KEY_PATTERN = /pass(word)?|secret|token|credential|api[-_]?key|authorization|cookie|private[-_]?key|session[-_]?string/i;

export const REDACTED = '[redacted]';

/** A copy of `data` with every secret-looking key's value replaced, down to a few levels. */
export function redact<T>(data: T, depth = 4): T {
  if (depth < 0 || data === null || typeof data !== 'object') return data;
  if (data instanceof Error) return data;
  if (Array.isArray(data)) return data.map((v) => redact(v, depth - 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    out[k] = SECRET_KEY_PATTERN.test(k) ? REDACTED : redact(v, depth - 1);
  }
  return out as T;
}

/** Removes every occurrence of each secret string from a text (error messages from adapters). */
export function scrubText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join(REDACTED);
  return out;
}

/**
 * Every string leaf of a credentials value (to scrub from messages), and every number written as
 * text (a PIN is as secret as a token). `scrubText` skips values shorter than 4 characters.
 */
export function secretStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (typeof value === 'number' && Number.isFinite(value)) out.push(String(value));
  else if (Array.isArray(value)) for (const v of value) secretStrings(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) secretStrings(v, out);
  return out;
}

/** A copy of `data` with every secret string replaced inside every string leaf. */
export function scrubDeep<T>(data: T, secrets: readonly string[], depth = 6): T {
  if (!secrets.length) return data;
  if (typeof data === 'string') return scrubText(data, secrets) as T;
  if (depth < 0 || data === null || typeof data !== 'object') return data;
  if (data instanceof Error) return scrubError(data, secrets) as T;
  if (Array.isArray(data)) return data.map((v) => scrubDeep(v, secrets, depth - 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) out[k] = scrubDeep(v, secrets, depth - 1);
  return out as T;
}

/**
 * An error safe to keep and print: when its message, stack or any cause in its chain contains a
 * secret, a copy (same name, code and shape) with the secrets replaced; otherwise the error itself.
 */
export function scrubError(error: unknown, secrets: readonly string[], depth = 5): unknown {
  if (!secrets.length || depth < 0) return error;
  if (!(error instanceof Error)) return typeof error === 'string' ? scrubText(error, secrets) : error;
  const cause = (error as { cause?: unknown }).cause;
  const safeCause = cause === undefined ? undefined : scrubError(cause, secrets, depth - 1);
  const leaks = (t: string | undefined) => !!t && secrets.some((s) => s.length >= 4 && t.includes(s));
  if (!leaks(error.message) && !leaks(error.stack) && safeCause === cause) return error;
  const copy = Object.create(Object.getPrototypeOf(error)) as Error & Record<string, unknown>;
  for (const key of Object.getOwnPropertyNames(error)) {
    if (key === 'cause') continue;
    const value = (error as unknown as Record<string, unknown>)[key];
    Object.defineProperty(copy, key, {
      value: typeof value === 'string' ? scrubText(value, secrets) : value,
      writable: true,
      configurable: true,
      enumerable: Object.prototype.propertyIsEnumerable.call(error, key),
    });
  }
  if (cause !== undefined) Object.defineProperty(copy, 'cause', { value: safeCause, writable: true, configurable: true, enumerable: false });
  return copy;
}
