import { ValidationError, type ValidationIssue } from '../errors.js';
import { findJsonProblem } from '../json.js';
import { HEALTH_STATUSES, SESSION_STATES } from '../lifecycle.js';
import { checkAuditInputs } from './input-checks.js';
import type { NewUnitRecord, UnitMove, UnitQuery, UnitWriteOptions } from './units-contract.js';

/**
 * The input checks of the `units` capability every bundled driver applies: a malformed value is
 * refused with a `ValidationError` naming the field before anything is written.
 */

/** The longest unit id and kind. */
export const MAX_UNIT_ID = 200;
export const MAX_UNIT_KIND = 64;

const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_UNIT_ID;
const isSession = (v: unknown): v is string | null => v === null || (typeof v === 'string' && v.length > 0);
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function fail(what: string, issues: ValidationIssue[]): void {
  if (issues.length) throw new ValidationError(what, issues.slice(0, 20));
}

function checkList<T>(v: unknown, name: string, what: string, each: (item: Record<string, unknown>, path: (string | number)[], issues: ValidationIssue[]) => void): T[] {
  if (!Array.isArray(v)) throw new ValidationError(what, [{ path: [name], message: 'must be an array' }]);
  const issues: ValidationIssue[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < v.length && issues.length < 20; i++) {
    const item = v[i] as Record<string, unknown> | null;
    if (!item || typeof item !== 'object') {
      issues.push({ path: [name, i], message: 'must be an object' });
      continue;
    }
    if (!isId(item.id)) issues.push({ path: [name, i, 'id'], message: `must be a string of 1-${MAX_UNIT_ID} characters` });
    else if (seen.has(item.id)) issues.push({ path: [name, i, 'id'], message: `unit "${item.id}" is listed twice` });
    else seen.add(item.id);
    each(item, [name, i], issues);
  }
  fail(what, issues);
  return v as T[];
}

export function checkNewUnits(v: NewUnitRecord[]): NewUnitRecord[] {
  return checkList<NewUnitRecord>(v, 'units', 'units to add', (u, path, issues) => {
    if (typeof u.kind !== 'string' || u.kind.length === 0 || u.kind.length > MAX_UNIT_KIND) issues.push({ path: [...path, 'kind'], message: `must be a string of 1-${MAX_UNIT_KIND} characters` });
    const problem = u.data === undefined ? { path: [...path, 'data'], message: 'must be a JSON value' } : findJsonProblem(u.data, [...path, 'data']);
    if (problem) issues.push(problem);
    if (!isSession(u.sessionId)) issues.push({ path: [...path, 'sessionId'], message: 'must be a session id or null' });
    if (!isTime(u.createdAt)) issues.push({ path: [...path, 'createdAt'], message: 'must be an epoch time in ms' });
  });
}

export function checkMoves(v: UnitMove[]): UnitMove[] {
  return checkList<UnitMove>(v, 'moves', 'unit moves', (m, path, issues) => {
    if (!isSession(m.from)) issues.push({ path: [...path, 'from'], message: 'must be a session id or null' });
    if (!isSession(m.to)) issues.push({ path: [...path, 'to'], message: 'must be a session id or null' });
  });
}

export function checkUnitIds(v: string[], what = 'unit ids'): string[] {
  if (!Array.isArray(v)) throw new ValidationError(what, [{ path: ['ids'], message: 'must be an array' }]);
  const issues: ValidationIssue[] = [];
  const seen = new Set<string>();
  v.forEach((id, i) => {
    if (!isId(id)) issues.push({ path: ['ids', i], message: `must be a string of 1-${MAX_UNIT_ID} characters` });
    else if (seen.has(id)) issues.push({ path: ['ids', i], message: `unit "${id}" is listed twice` });
    else seen.add(id);
  });
  fail(what, issues);
  return v;
}

export function checkUnitId(v: string): string {
  if (!isId(v)) throw new ValidationError('unit id', [{ path: ['id'], message: `must be a string of 1-${MAX_UNIT_ID} characters` }]);
  return v;
}

export function checkUnitWriteOptions(v: UnitWriteOptions): UnitWriteOptions {
  const issues: ValidationIssue[] = [];
  if (!v || typeof v !== 'object') throw new ValidationError('unit write options', [{ path: [], message: 'must be an object' }]);
  if (!isTime(v.at)) issues.push({ path: ['at'], message: 'must be an epoch time in ms' });
  if (v.accept !== undefined) {
    const { states, health } = v.accept ?? {};
    if (states !== undefined && (!Array.isArray(states) || states.some((s) => !SESSION_STATES.includes(s)))) issues.push({ path: ['accept', 'states'], message: `must be states among ${SESSION_STATES.join(', ')}` });
    if (health !== undefined && (!Array.isArray(health) || health.some((h) => !HEALTH_STATUSES.includes(h)))) issues.push({ path: ['accept', 'health'], message: `must be health values among ${HEALTH_STATUSES.join(', ')}` });
  }
  fail('unit write options', issues);
  if (v.audit !== undefined) checkAuditInputs(v.audit);
  return v;
}

export interface CheckedUnitQuery extends UnitQuery {
  limit: number;
}

export function checkUnitQuery(q: UnitQuery | undefined): CheckedUnitQuery {
  const v = q ?? {};
  const issues: ValidationIssue[] = [];
  if (v.sessionId !== undefined && !(typeof v.sessionId === 'string' && v.sessionId.length > 0)) issues.push({ path: ['sessionId'], message: 'must be a session id' });
  if (v.unassigned !== undefined && typeof v.unassigned !== 'boolean') issues.push({ path: ['unassigned'], message: 'must be a boolean' });
  if (v.kind !== undefined && typeof v.kind !== 'string') issues.push({ path: ['kind'], message: 'must be a string' });
  if (v.after !== undefined && typeof v.after !== 'string') issues.push({ path: ['after'], message: 'must be a unit id' });
  if (v.ids !== undefined) checkUnitIds(v.ids as string[]);
  if (v.range !== undefined) {
    const r = v.range;
    if (!Array.isArray(r) || r.length !== 2 || !r.every((n) => Number.isSafeInteger(n)) || r[0]! > r[1]!) issues.push({ path: ['range'], message: 'must be [from, to], whole numbers with from <= to' });
  }
  const limit = v.limit ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(limit) || limit < 1) issues.push({ path: ['limit'], message: 'must be a whole number of at least 1' });
  fail('unit query', issues);
  return { ...v, limit };
}
