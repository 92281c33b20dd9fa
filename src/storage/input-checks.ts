import { z } from 'zod';
import { CapacityError, ValidationError, type ValidationIssue } from '../errors.js';
import { parseWith } from '../validation.js';
import { findJsonProblem } from '../json.js';
import { DESIRED_STATES, HEALTH_STATUSES, SESSION_STATES } from '../lifecycle.js';
import type { JsonValue } from '../types.js';
import type {
  AuditInput,
  AuditQuery,
  CreateOptions,
  CredentialRewrite,
  KvOperation,
  NewSessionRecord,
  SessionPatch,
  StatDelta,
  StatusUpdate,
  TransitionRecord,
  WriteOptions,
} from './contract.js';

/**
 * Input checks every bundled driver applies (memory, SQLite, PostgreSQL): drivers take plain
 * data from the manager, and a malformed value is refused with a `ValidationError` before
 * anything is written. One module, so the drivers cannot drift apart.
 */

/**
 * Checks a `kvWrite` batch: every operation is `set` with a string key and a JSON value, or
 * `delete` with a string key. Throws a {@link ValidationError} naming the bad operation.
 * Drivers call it before writing anything, so a bad batch changes nothing.
 *
 * @example
 * ```ts
 * assertKvOperations([{ op: 'set', key: 'a', value: () => 1 }]); // throws ValidationError at ops.0.value
 * ```
 */
export function assertKvOperations(ops: unknown): asserts ops is KvOperation[] {
  if (!Array.isArray(ops)) throw new ValidationError('KV operations', [{ path: ['ops'], message: 'must be an array' }]);
  const issues: ValidationIssue[] = [];
  ops.forEach((raw: unknown, i) => {
    const op = raw as Partial<{ op: unknown; key: unknown; value: unknown }> | null;
    if (!op || typeof op !== 'object') {
      issues.push({ path: ['ops', i], message: 'must be { op: "set", key, value } or { op: "delete", key }' });
      return;
    }
    if (typeof op.key !== 'string' || op.key.length === 0) {
      issues.push({ path: ['ops', i, 'key'], message: 'must be a non-empty string' });
    }
    if (op.op === 'set') {
      if (!('value' in op) || op.value === undefined) {
        issues.push({ path: ['ops', i, 'value'], message: 'is missing; use { op: "delete" } to remove a key' });
      } else {
        const problem = findJsonProblem(op.value, ['ops', i, 'value']);
        if (problem) issues.push(problem);
      }
    } else if (op.op !== 'delete') {
      issues.push({ path: ['ops', i, 'op'], message: 'must be "set" or "delete"' });
    }
  });
  if (issues.length) throw new ValidationError('KV operations', issues);
}

const jsonValue = z.custom<JsonValue>((v) => findJsonProblem(v) === null, 'must be a JSON value');
const jsonObject = z.custom<Record<string, JsonValue>>(
  (v) => !!v && typeof v === 'object' && !Array.isArray(v) && findJsonProblem(v) === null,
  'must be a JSON object',
);
const id = z.string().min(1, 'must be a non-empty string');
const time = z.number().finite();
const sessionError = z.object({ code: z.string(), message: z.string(), at: time }).nullable();

const newRecord = z.object({
  id,
  platform: z.string().min(1),
  config: jsonObject,
  labels: z.record(z.string(), z.string()),
  metadata: jsonValue,
  priority: z.number().finite(),
  capacity: z.number().finite().nullable(),
  autoStart: z.boolean(),
  idleTimeoutMs: z.number().finite().nullable(),
  allowSharedCredentials: z.boolean(),
  desiredState: z.enum(DESIRED_STATES),
  credentials: z.string().nullable(),
  credentialsFingerprint: z.string().nullable(),
  state: z.enum(SESSION_STATES),
  health: z.enum(HEALTH_STATUSES),
  lastError: sessionError,
  lastActivityAt: time.nullable(),
  createdAt: time,
  updatedAt: time,
});

const patch = newRecord
  .pick({
    config: true,
    labels: true,
    metadata: true,
    priority: true,
    capacity: true,
    autoStart: true,
    idleTimeoutMs: true,
    allowSharedCredentials: true,
    desiredState: true,
    credentials: true,
    credentialsFingerprint: true,
  })
  .partial()
  .extend({ updatedAt: time });

const fenceToken = z.number().int().positive();
const isFence = (v: unknown): boolean => v === undefined || (Number.isSafeInteger(v) && (v as number) > 0);

const status = z.array(
  z.object({
    id,
    state: z.enum(SESSION_STATES).optional(),
    health: z.enum(HEALTH_STATUSES).optional(),
    lastError: sessionError.optional(),
    lastActivityAt: time.nullable().optional(),
    fence: fenceToken.optional(),
  }),
);

const rewrites = z.array(
  z.object({
    id,
    credentials: z.string().nullable(),
    credentialsFingerprint: z.string().nullable(),
    expectedVersion: z.number().int(),
    updatedAt: time,
  }),
);

const deltas = z.array(z.object({ sessionId: id, name: z.string().min(1), delta: z.number().finite(), fence: fenceToken.optional() }));

const transitions = z.array(
  z.object({ sessionId: id, from: z.enum(SESSION_STATES), to: z.enum(SESSION_STATES), reason: z.string(), at: time, fence: fenceToken.optional() }),
);


const auditEntry = z.object({ at: time, sessionId: id.nullable(), action: z.string().min(1), actor: z.string().nullable(), details: jsonObject });
const auditInputs = z.array(auditEntry);
const writeOptions = z.object({ audit: auditEntry.optional() }).optional();
const createOptions = z.object({ audit: auditEntry.optional(), maxSessions: z.number().int().positive().optional() }).optional();

const auditQuery = z
  .object({
    sessionId: z.string().optional(),
    action: z.string().optional(),
    since: time.optional(),
    limit: z.number().int().positive().default(100),
  })
  .prefault({});

const positiveInt = z.number().int().positive();
const prefixOptions = z.object({ prefix: z.string().optional() }).optional();

// ---------------------------------------------------------------- fast paths
// The hot checks (every create, status batch, transition, counter and audit entry) first run a
// plain predicate that accepts exactly what the schema accepts; only input it refuses goes
// through zod, which builds the ValidationError with its field paths.

const STATES: ReadonlySet<unknown> = new Set(SESSION_STATES);
const HEALTHS: ReadonlySet<unknown> = new Set(HEALTH_STATUSES);
const DESIREDS: ReadonlySet<unknown> = new Set(DESIRED_STATES);
type Loose = Record<string, unknown>;
const isObject = (v: unknown): v is Loose => typeof v === 'object' && v !== null && !Array.isArray(v);
const isFiniteNumber = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const isNonEmpty = (v: unknown): boolean => typeof v === 'string' && v.length > 0;
const isStringOrNull = (v: unknown): boolean => v === null || typeof v === 'string';
const isFiniteOrNull = (v: unknown): boolean => v === null || isFiniteNumber(v);
const isJsonObject = (v: unknown): boolean => isObject(v) && findJsonProblem(v) === null;
function isStringRecord(v: unknown): boolean {
  if (!isObject(v)) return false;
  for (const key in v) if (typeof v[key] !== 'string') return false;
  return true;
}
const isSessionError = (v: unknown): boolean =>
  v === null || (isObject(v) && typeof v.code === 'string' && typeof v.message === 'string' && isFiniteNumber(v.at));

function fastNewRecord(r: unknown): boolean {
  return (
    isObject(r) &&
    isNonEmpty(r.id) &&
    isNonEmpty(r.platform) &&
    isJsonObject(r.config) &&
    isStringRecord(r.labels) &&
    r.metadata !== undefined &&
    findJsonProblem(r.metadata) === null &&
    isFiniteNumber(r.priority) &&
    isFiniteOrNull(r.capacity) &&
    typeof r.autoStart === 'boolean' &&
    isFiniteOrNull(r.idleTimeoutMs) &&
    typeof r.allowSharedCredentials === 'boolean' &&
    DESIREDS.has(r.desiredState) &&
    isStringOrNull(r.credentials) &&
    isStringOrNull(r.credentialsFingerprint) &&
    STATES.has(r.state) &&
    HEALTHS.has(r.health) &&
    isSessionError(r.lastError) &&
    isFiniteOrNull(r.lastActivityAt) &&
    isFiniteNumber(r.createdAt) &&
    isFiniteNumber(r.updatedAt)
  );
}

/** No closure per call: a patch is checked on every write. */
function fastPatch(p: unknown): boolean {
  if (!isObject(p) || !isFiniteNumber(p.updatedAt)) return false;
  return (
    (p.config === undefined || isJsonObject(p.config)) &&
    (p.labels === undefined || isStringRecord(p.labels)) &&
    (p.metadata === undefined || findJsonProblem(p.metadata) === null) &&
    (p.priority === undefined || isFiniteNumber(p.priority)) &&
    (p.capacity === undefined || isFiniteOrNull(p.capacity)) &&
    (p.autoStart === undefined || typeof p.autoStart === 'boolean') &&
    (p.idleTimeoutMs === undefined || isFiniteOrNull(p.idleTimeoutMs)) &&
    (p.allowSharedCredentials === undefined || typeof p.allowSharedCredentials === 'boolean') &&
    (p.desiredState === undefined || DESIREDS.has(p.desiredState)) &&
    (p.credentials === undefined || isStringOrNull(p.credentials)) &&
    (p.credentialsFingerprint === undefined || isStringOrNull(p.credentialsFingerprint))
  );
}

const everyItem = (v: unknown, test: (item: Loose) => boolean): boolean => Array.isArray(v) && v.every((x: unknown) => isObject(x) && test(x));
const fastStatus = (v: unknown) =>
  everyItem(
    v,
    (u) =>
      isNonEmpty(u.id) &&
      (u.state === undefined || STATES.has(u.state)) &&
      (u.health === undefined || HEALTHS.has(u.health)) &&
      (u.lastError === undefined || isSessionError(u.lastError)) &&
      (u.lastActivityAt === undefined || isFiniteOrNull(u.lastActivityAt)) &&
      isFence(u.fence),
  );
const fastDeltas = (v: unknown) => everyItem(v, (d) => isNonEmpty(d.sessionId) && isNonEmpty(d.name) && isFiniteNumber(d.delta) && isFence(d.fence));
const fastTransitions = (v: unknown) =>
  everyItem(v, (t) => isNonEmpty(t.sessionId) && STATES.has(t.from) && STATES.has(t.to) && typeof t.reason === 'string' && isFiniteNumber(t.at) && isFence(t.fence));
const isAuditEntry = (e: Loose): boolean =>
  isFiniteNumber(e.at) && (e.sessionId === null || isNonEmpty(e.sessionId)) && isNonEmpty(e.action) && isStringOrNull(e.actor) && isJsonObject(e.details);
const fastAudit = (v: unknown) => everyItem(v, isAuditEntry);

/** `value` when `fast` accepts it, else the schema's verdict (a ValidationError naming the field). */
function checked<T>(fast: (v: unknown) => boolean, schema: Parameters<typeof parseWith>[0], value: T, what: string): T {
  return fast(value) ? value : (parseWith(schema, value, what) as T);
}

export const checkId = (v: string): string => (isNonEmpty(v) ? v : parseWith(id, v, 'session id'));
const keyString = z.string();
const versionInt = z.number().int();
export const checkKey = (v: string): string => (typeof v === 'string' ? v : parseWith(keyString, v, 'KV key'));
export const checkNewRecord = (v: NewSessionRecord): NewSessionRecord => checked(fastNewRecord, newRecord, v, 'session record');
export const checkPatch = (v: SessionPatch): SessionPatch => checked(fastPatch, patch, v, 'session patch');
export const checkVersion = (v: number): number => (Number.isInteger(v) ? v : parseWith(versionInt, v, 'expected version'));
export const checkStatus = (v: StatusUpdate[]): StatusUpdate[] => checked(fastStatus, status, v, 'status updates');
export const checkDeltas = (v: StatDelta[]): StatDelta[] => checked(fastDeltas, deltas, v, 'stat deltas');
export const checkTransitions = (v: TransitionRecord[]): TransitionRecord[] => checked(fastTransitions, transitions, v, 'transitions');
/** The options of `kv.write`: the fence token, if any. */
export function checkKvWriteOptions(v: { fence?: number } | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (isObject(v) && isFence(v.fence)) return v.fence;
  return parseWith(kvWriteOptions, v, 'KV write options').fence;
}
const kvWriteOptions = z.object({ fence: fenceToken.optional() }).strict();
export const checkAuditInputs = (v: AuditInput[]): AuditInput[] => checked(fastAudit, auditInputs, v, 'audit entries');
/** The audit entry of a session write's options (undefined when none), checked. */
export function checkWriteOptions(v: WriteOptions | undefined): AuditInput | undefined {
  if (v === undefined || (isObject(v) && v.audit === undefined)) return undefined;
  if (isObject(v) && isObject(v.audit) && isAuditEntry(v.audit)) return v.audit as unknown as AuditInput;
  return parseWith(writeOptions, v, 'write options')?.audit;
}
/** `sessions.create`'s options: the audit entry (as {@link checkWriteOptions}) and the store-wide `maxSessions`. */
export function checkCreateOptions(v: CreateOptions | undefined): { audit: AuditInput | undefined; maxSessions: number | undefined } {
  if (v === undefined || (isObject(v) && v.maxSessions === undefined)) return { audit: checkWriteOptions(v), maxSessions: undefined };
  const max = (v as { maxSessions?: unknown }).maxSessions;
  if (typeof max === 'number' && Number.isSafeInteger(max) && max > 0) return { audit: checkWriteOptions({ audit: (v as CreateOptions).audit }), maxSessions: max };
  const parsed = parseWith(createOptions, v, 'create options');
  return { audit: parsed?.audit as AuditInput | undefined, maxSessions: parsed?.maxSessions };
}

/** The store holds `maxSessions` sessions already (`sessions.create` with `maxSessions`). */
export const storeFull = (maxSessions: number): CapacityError =>
  new CapacityError(`The store already holds ${maxSessions} sessions (maxSessions); delete one or raise maxSessions.`, { context: { maxSessions } });

export const checkAuditQuery = (v: AuditQuery | undefined): Required<Pick<AuditQuery, 'limit'>> & AuditQuery =>
  parseWith(auditQuery, v, 'audit query');
export const checkPositive = (v: number, what: string): number => (Number.isSafeInteger(v) && v > 0 ? v : parseWith(positiveInt, v, what));
const epochMs = z.number().int('must be whole milliseconds').min(0, 'must be an epoch time in ms');
export const checkTime = (v: number, what: string): number => parseWith(epochMs, v, what);
export const checkPrefix = (v: { prefix?: string } | undefined, what: string): string | undefined =>
  parseWith(prefixOptions, v, what)?.prefix;

export function checkRewrites(v: CredentialRewrite[]): CredentialRewrite[] {
  const rows = parseWith(rewrites, v, 'credential rewrites');
  const seen = new Set<string>();
  for (const row of rows) {
    if (seen.has(row.id)) {
      throw new ValidationError('credential rewrites', [{ path: ['rows'], message: `session "${row.id}" is listed twice` }]);
    }
    seen.add(row.id);
  }
  return rows;
}
