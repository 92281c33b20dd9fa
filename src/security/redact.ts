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

/** Every string leaf of a credentials value (to scrub from messages). */
export function secretStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) secretStrings(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) secretStrings(v, out);
  return out;
}
