import { z } from 'zod';
import { ValidationError } from './errors.js';
import type { Clock } from './types.js';

/**
 * Validation helpers shared inside the library (not exported from the package root): zod
 * results become our {@link ValidationError} with field paths.
 */

/** Turns a zod error into our ValidationError. */
export function fromZodError(what: string, error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> }): ValidationError {
  return new ValidationError(
    what,
    error.issues.map((i) => ({
      path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)) as (string | number)[],
      message: keyMessage(i) ?? i.message,
    })),
  );
}

/** A record key's own message ("label keys are …") instead of zod's bare "Invalid key in record". */
function keyMessage(issue: { message: string }): string | undefined {
  const inner = (issue as { code?: string; issues?: ReadonlyArray<{ message?: unknown }> }).issues;
  if ((issue as { code?: string }).code !== 'invalid_key' || !inner?.length) return undefined;
  const messages = inner.map((i) => i.message).filter((m): m is string => typeof m === 'string');
  return messages.length ? messages.join('; ') : undefined;
}

/** Parses with a zod schema, throwing our ValidationError. */
export function parseWith<T>(
  schema: { safeParse(input: unknown): { success: true; data: T } | { success: false; error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> } } },
  input: unknown,
  what: string,
): T {
  const result = schema.safeParse(input);
  if (!result.success) throw fromZodError(what, result.error);
  return result.data;
}

/** An injected {@link Clock}: `now()`, `setTimeout()` and `clearTimeout()`. */
export const clockSchema = z.custom<Clock>(
  (v) => !!v && typeof (v as Clock).now === 'function' && typeof (v as Clock).setTimeout === 'function' && typeof (v as Clock).clearTimeout === 'function',
  'must have now(), setTimeout() and clearTimeout()',
);
