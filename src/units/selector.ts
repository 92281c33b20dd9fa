import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { parseWith } from '../validation.js';
import type { UnitSelector } from './types.js';

/** The widest range a selector may name. */
export const MAX_RANGE = 100_000;
/** Unit ids: 1-200 of A-Z, a-z, 0-9 and `_ . : @ -`. */
export const UNIT_ID = /^[A-Za-z0-9_.:@-]{1,200}$/;
export const unitIdSchema = z.string().regex(UNIT_ID, 'must be 1-200 of A-Z, a-z, 0-9, _ . : @ -');
const sessionId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a session id (1-64 of A-Z, a-z, 0-9, _ and -)');

/** Every id once: a list that names one twice is refused at the second. */
export const unitIdsSchema = z
  .array(unitIdSchema)
  .min(1, 'name at least one unit')
  .max(MAX_RANGE, `name at most ${MAX_RANGE} units per call`)
  .superRefine((ids, ctx) => {
    const seen = new Set<string>();
    ids.forEach((id, i) => {
      if (seen.has(id)) ctx.addIssue({ code: 'custom', path: [i], message: `unit "${id}" is listed twice` });
      seen.add(id);
    });
  });

const range = z
  .tuple([z.number().int().min(-Number.MAX_SAFE_INTEGER), z.number().int().max(Number.MAX_SAFE_INTEGER)])
  .superRefine(([from, to], ctx) => {
    if (from > to) ctx.addIssue({ code: 'custom', path: [], message: `is reversed (${from} > ${to}); write [${to}, ${from}]` });
    else if (to - from + 1 > MAX_RANGE) ctx.addIssue({ code: 'custom', path: [], message: `spans ${to - from + 1} ids, more than ${MAX_RANGE}; split it` });
  });

const selectorSchema = z.union([
  z.strictObject({ ids: unitIdsSchema }),
  z.strictObject({ range }),
  z.strictObject({ fromSession: sessionId }),
]);

/** A selector object, checked: exactly one of `ids`, `range`, `fromSession` (a mix is refused). */
export function checkSelector(input: unknown, what = 'unit selector'): UnitSelector {
  if (input && typeof input === 'object' && !Array.isArray(input)) {
    const forms = ['ids', 'range', 'fromSession'].filter((k) => k in input);
    if (forms.length > 1) throw new ValidationError(what, [{ path: ['selector'], message: `mixes ${forms.join(' and ')}; give exactly one of ids, range or fromSession` }]);
    const [form] = forms;
    if (form === 'ids') return { ids: parseWith(z.strictObject({ ids: unitIdsSchema }), input, what).ids.slice() };
    if (form === 'range') return { range: [...parseWith(z.strictObject({ range }), input, what).range] as [number, number] };
    if (form === 'fromSession') return parseWith(z.strictObject({ fromSession: sessionId }), input, what);
  }
  return parseWith(selectorSchema, input, what);
}

/**
 * Reads seed 003's text forms of a selector: `1,2,3` (ids), `1-10` (a range, both ends
 * included) and `all_from:session` (every unit of a session). A `ValidationError` says what is
 * wrong (a reversed or too wide range, an empty id, a mix of forms such as `1-3,5`).
 *
 * @example
 * ```ts
 * parseUnitSelector('1,2,3');          // { ids: ['1', '2', '3'] }
 * parseUnitSelector('10-20');          // { range: [10, 20] }
 * parseUnitSelector('all_from:user2'); // { fromSession: 'user2' }
 * ```
 */
export function parseUnitSelector(text: string): UnitSelector {
  if (typeof text !== 'string') throw new ValidationError('unit selector', [{ path: ['selector'], message: 'must be text such as 1,2,3 or 1-10 or all_from:name' }]);
  const s = text.trim();
  if (s.startsWith('all_from:')) return checkSelector({ fromSession: s.slice('all_from:'.length).trim() });
  const m = /^(-?\d+)\s*-\s*(-?\d+)$/.exec(s);
  if (m) return checkSelector({ range: [Number(m[1]), Number(m[2])] });
  const ids = s.split(',').map((p) => p.trim());
  if (ids.some((id) => /^\d+-\d+$/.test(id))) {
    throw new ValidationError('unit selector', [{ path: ['selector'], message: `"${text}" mixes a range with a list; give either 1,2,3 or 1-10` }]);
  }
  return checkSelector({ ids });
}
