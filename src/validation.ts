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
      message: i.message,
    })),
  );
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
