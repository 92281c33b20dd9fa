import type { ValidationIssue } from './errors.js';

/** JSON checks shared by every part of the library (stores, checkpoint, test kit). */

export const MAX_JSON_DEPTH = 256;

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Finds the first part of `value` that JSON cannot represent faithfully: `undefined`, functions,
 * symbols, bigints, non-finite numbers, class instances (Date, Map …), sparse arrays and cycles.
 * Returns null when `value` is a {@link JsonValue}.
 *
 * @example
 * ```ts
 * findJsonProblem({ a: [1, () => 2] }); // { path: ['a', 1], message: 'must be JSON … got function' }
 * findJsonProblem({ a: [1, 2] });       // null
 * ```
 */
export function findJsonProblem(value: unknown, path: (string | number)[] = []): ValidationIssue | null {
  const seen = new Set<object>();
  const walk = (v: unknown, at: (string | number)[], depth: number): ValidationIssue | null => {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return null;
      case 'number':
        return Number.isFinite(v) ? null : { path: at, message: `must be a finite number, got ${String(v)}` };
      case 'object': {
        if (v === null) return null;
        if (depth > MAX_JSON_DEPTH) return { path: at, message: `nests deeper than ${MAX_JSON_DEPTH} levels` };
        if (seen.has(v)) return { path: at, message: 'is circular; JSON values cannot refer to themselves' };
        seen.add(v);
        let problem: ValidationIssue | null = null;
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length && !problem; i++) {
            problem = i in v ? walk(v[i], [...at, i], depth + 1) : { path: [...at, i], message: 'is a hole in a sparse array' };
          }
        } else if (isPlainObject(v)) {
          for (const key of Object.keys(v)) {
            problem = walk((v as Record<string, unknown>)[key], [...at, key], depth + 1);
            if (problem) break;
          }
        } else {
          const name = (v as { constructor?: { name?: string } }).constructor?.name ?? 'object';
          problem = { path: at, message: `must be plain JSON (object, array, string, number, boolean or null), got a ${name}` };
        }
        seen.delete(v);
        return problem;
      }
      default:
        return { path: at, message: `must be JSON (object, array, string, number, boolean or null), got ${typeof v}` };
    }
  };
  return walk(value, path, 0);
}

