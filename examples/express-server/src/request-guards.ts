import type { NextFunction, Request, Response } from 'express';
import { HttpProblem, fieldsOf } from './problem.js';

/**
 * Checks of a JSON body made before anything validates it: how deep it nests (counted on the raw
 * bytes, so a body nested thousands of levels deep never reaches a recursive validator), and
 * keys named `__proto__` (`JSON.parse` makes them ordinary keys, which later copies drop or turn
 * into prototypes: refused with their path instead of being lost silently).
 */

/** Default most nesting levels of a JSON body (the body itself is level 1). */
export const DEFAULT_MAX_JSON_DEPTH = 64;

/** The deepest nesting of a JSON text, counted outside strings; stops counting past `limit`. */
export function jsonDepth(text: Buffer, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** `express.json({ verify })`: refuses a body deeper than `maxDepth` before it is parsed. */
export function depthLimit(maxDepth: number): (req: Request, res: Response, body: Buffer) => void {
  return (_req, _res, body) => {
    if (jsonDepth(body, maxDepth) <= maxDepth) return;
    const message = `nests deeper than ${maxDepth} levels`;
    throw new HttpProblem(400, 'VALIDATION', `The JSON body ${message}; send flatter data.`, {
      fields: [{ path: 'body', pointer: '#', message }],
    });
  };
}

/** The path of the first key named `__proto__` in a parsed body (depth already bounded), or null. */
export function protoKeyPath(value: unknown, at: (string | number)[] = []): (string | number)[] | null {
  if (value === null || typeof value !== 'object') return null;
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  for (const [key, v] of entries) {
    if (key === '__proto__') return [...at, key];
    const found = protoKeyPath(v, [...at, key]);
    if (found) return found;
  }
  return null;
}

/** Middleware after `express.json()`: a `__proto__` key anywhere in the body is a 400 naming it. */
export function refuseProtoKeys(req: Request, _res: Response, next: NextFunction): void {
  const path = protoKeyPath(req.body);
  if (path) {
    const fields = fieldsOf([{ path, message: 'a key named __proto__ is not allowed; rename it' }], 'body');
    throw new HttpProblem(400, 'VALIDATION', `Invalid body: ${fields[0]!.path}: ${fields[0]!.message}`, { fields });
  }
  next();
}
