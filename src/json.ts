import type { ValidationIssue } from './errors.js';

/** JSON checks shared by every part of the library (stores, checkpoint, test kit). */

export const MAX_JSON_DEPTH = 256;

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Plain JSON within the depth limit (a cycle runs into the limit): no allocation. */
function isJson(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v);
    case 'object': {
      if (v === null) return true;
      if (depth >= MAX_JSON_DEPTH) return false;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (!(i in v) || !isJson(v[i], depth + 1)) return false;
        return true;
      }
      if (!isPlainObject(v)) return false;
      for (const key in v) {
        if (Object.prototype.hasOwnProperty.call(v, key) && !isJson((v as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
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
  // Well-formed JSON (the common case) passes a walk that allocates nothing; only a value it
  // refuses is walked again with a path and an ancestor stack, copied into the issue.
  if (isJson(value, 0)) return null;
  const at = [...path];
  const ancestors: object[] = [];
  const issue = (message: string): ValidationIssue => ({ path: [...at], message });
  const walk = (v: unknown): ValidationIssue | null => {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return null;
      case 'number':
        return Number.isFinite(v) ? null : issue(`must be a finite number, got ${String(v)}`);
      case 'object': {
        if (v === null) return null;
        if (ancestors.length > MAX_JSON_DEPTH) return issue(`nests deeper than ${MAX_JSON_DEPTH} levels`);
        if (ancestors.includes(v)) return issue('is circular; JSON values cannot refer to themselves');
        ancestors.push(v);
        let problem: ValidationIssue | null = null;
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length && !problem; i++) {
            at.push(i);
            problem = i in v ? walk(v[i]) : issue('is a hole in a sparse array');
            at.pop();
          }
        } else if (isPlainObject(v)) {
          for (const key in v) {
            if (!Object.prototype.hasOwnProperty.call(v, key)) continue;
            at.push(key);
            problem = walk((v as Record<string, unknown>)[key]);
            at.pop();
            if (problem) break;
          }
        } else {
          const name = (v as { constructor?: { name?: string } }).constructor?.name ?? 'object';
          problem = issue(`must be plain JSON (object, array, string, number, boolean or null), got a ${name}`);
        }
        ancestors.pop();
        return problem;
      }
      default:
        return issue(`must be JSON (object, array, string, number, boolean or null), got ${typeof v}`);
    }
  };
  return walk(value);
}

/**
 * Finds the first own key named `__proto__` inside `value` (objects and arrays, to
 * {@link MAX_JSON_DEPTH} levels). `JSON.parse` makes such a key an ordinary property, but most
 * code that copies or validates objects (`obj[key] = …`, zod's objects and records) drops it or
 * turns it into a prototype: input that carries one is refused rather than changed silently.
 *
 * @example
 * ```ts
 * findProtoKey(JSON.parse('{"a":{"__proto__":{"x":1}}}'), ['metadata']); // { path: ['metadata', 'a', '__proto__'], … }
 * ```
 */
export function findProtoKey(value: unknown, path: (string | number)[] = []): ValidationIssue | null {
  // The common case (no such key) walks without allocating; only a hit is walked again for its path.
  return hasProtoKey(value, 0) ? protoKeyPath(value, [...path], 0) : null;
}

function hasProtoKey(v: unknown, depth: number): boolean {
  if (v === null || typeof v !== 'object' || depth > MAX_JSON_DEPTH) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (hasProtoKey(v[i], depth + 1)) return true;
    return false;
  }
  for (const key in v) {
    if (!Object.prototype.hasOwnProperty.call(v, key)) continue;
    if (key === '__proto__' || hasProtoKey((v as Record<string, unknown>)[key], depth + 1)) return true;
  }
  return false;
}

function protoKeyPath(v: unknown, at: (string | number)[], depth: number): ValidationIssue | null {
  if (v === null || typeof v !== 'object' || depth > MAX_JSON_DEPTH) return null;
  const keys: (string | number)[] = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  for (const key of keys) {
    if (key === '__proto__') return { path: [...at, key], message: 'a key named __proto__ is not allowed; rename it' };
    at.push(key);
    const found = protoKeyPath((v as Record<string | number, unknown>)[key], at, depth + 1);
    at.pop();
    if (found) return found;
  }
  return null;
}
