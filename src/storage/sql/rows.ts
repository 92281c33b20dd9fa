import type { Insertable, Updateable } from 'kysely';
import { DESIRED_STATES, HEALTH_STATUSES, SESSION_STATES } from '../../lifecycle.js';
import type { DesiredState, HealthStatus, SessionState } from '../../lifecycle.js';
import type { JsonObject, JsonValue } from '../../types.js';
import type {
  AuditEntry,
  KvOperation,
  NewSessionRecord,
  SessionError,
  SessionPatch,
  SessionRecord,
  StatDelta,
  StatusUpdate,
  TransitionRecord,
} from '../contract.js';
import type { SqlDialectName } from './migration-sets.js';
import type { SessionRow, SessionsTable } from './schema.js';

/** Mapping between stored rows and the driver contract's plain records, for both dialects. */

const toNumber = (v: number | string | bigint): number => (typeof v === 'number' ? v : Number(v));
export const toNullableNumber = (v: number | string | bigint | null | undefined): number | null =>
  v === null || v === undefined ? null : toNumber(v);
const toBool = (v: boolean | number | string | null | undefined): boolean => v === true || v === 1 || v === '1';

export const boolValue = (dialect: SqlDialectName, v: boolean): boolean | number => (dialect === 'postgres' ? v : v ? 1 : 0);

/** JSON text of a value; `undefined` is stored as `null`. */
export const jsonText = (v: JsonValue | undefined): string => JSON.stringify(v ?? null);

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseColumn<T>(
  problems: string[],
  column: string,
  text: string | null,
  check: (v: unknown) => v is T,
  expected: string,
  fallback: T,
): T {
  if (text === null) return fallback;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    problems.push(`column "${column}" holds invalid JSON (${(err as Error).message})`);
    return fallback;
  }
  if (!check(value)) {
    problems.push(`column "${column}" holds JSON that is not ${expected}`);
    return fallback;
  }
  return value;
}

function parseEnum<T extends string>(problems: string[], column: string, value: string, allowed: readonly T[], fallback: T): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  problems.push(`column "${column}" holds unknown value ${JSON.stringify(value)}`);
  return fallback;
}

const isStringRecord = (v: unknown): v is Record<string, string> =>
  isPlainObject(v) && Object.values(v).every((x) => typeof x === 'string');
const isAnyJson = (_v: unknown): _v is JsonValue => true;
const isSessionError = (v: unknown): v is SessionError | null =>
  v === null || (isPlainObject(v) && typeof v.code === 'string' && typeof v.message === 'string' && typeof v.at === 'number');

/**
 * A stored row as a {@link SessionRecord}. Never throws: a column that cannot be read gets a safe
 * default and the record carries `readError` naming every such column.
 */
export function sessionFromRow(row: SessionRow): SessionRecord {
  const problems: string[] = [];
  const record: SessionRecord = {
    id: row.id,
    platform: row.platform,
    config: parseColumn<JsonObject>(problems, 'config', row.config, isPlainObject as (v: unknown) => v is JsonObject, 'an object', {}),
    labels: parseColumn(problems, 'labels', row.labels, isStringRecord, 'an object of strings', {}),
    metadata: parseColumn(problems, 'metadata', row.metadata, isAnyJson, 'JSON', null),
    priority: toNumber(row.priority),
    capacity: toNullableNumber(row.capacity),
    autoStart: toBool(row.auto_start),
    idleTimeoutMs: toNullableNumber(row.idle_timeout_ms),
    allowSharedCredentials: toBool(row.allow_shared_credentials),
    desiredState: parseEnum<DesiredState>(problems, 'desired_state', row.desired_state, DESIRED_STATES, 'stopped'),
    credentials: row.credentials,
    credentialsFingerprint: row.credentials_fingerprint,
    state: parseEnum<SessionState>(problems, 'state', row.state, SESSION_STATES, 'stopped'),
    health: parseEnum<HealthStatus>(problems, 'health', row.health, HEALTH_STATUSES, 'unknown'),
    lastError: parseColumn(problems, 'last_error', row.last_error, isSessionError, 'an error record', null),
    lastActivityAt: toNullableNumber(row.last_activity_at),
    createdAt: toNumber(row.created_at),
    updatedAt: toNumber(row.updated_at),
    version: toNumber(row.version),
  };
  if (problems.length > 0) record.readError = `Stored session "${row.id}" cannot be read: ${problems.join('; ')}.`;
  return record;
}

export function sessionToRow(dialect: SqlDialectName, r: NewSessionRecord): Insertable<SessionsTable> {
  return {
    id: r.id,
    platform: r.platform,
    config: jsonText(r.config),
    labels: jsonText(r.labels),
    metadata: jsonText(r.metadata),
    priority: r.priority,
    capacity: r.capacity,
    auto_start: boolValue(dialect, r.autoStart),
    idle_timeout_ms: r.idleTimeoutMs,
    allow_shared_credentials: boolValue(dialect, r.allowSharedCredentials),
    desired_state: r.desiredState,
    credentials: r.credentials,
    credentials_fingerprint: r.credentialsFingerprint,
    state: r.state,
    health: r.health,
    last_error: r.lastError === null || r.lastError === undefined ? null : jsonText(r.lastError as unknown as JsonValue),
    last_activity_at: r.lastActivityAt,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    version: 1,
  };
}

/** The columns a patch sets (only the fields present in it), without `version`. */
export function patchToRow(dialect: SqlDialectName, p: SessionPatch): Updateable<SessionsTable> {
  const row: Updateable<SessionsTable> = { updated_at: p.updatedAt };
  if (p.config !== undefined) row.config = jsonText(p.config);
  if (p.labels !== undefined) row.labels = jsonText(p.labels);
  if (p.metadata !== undefined) row.metadata = jsonText(p.metadata);
  if (p.priority !== undefined) row.priority = p.priority;
  if (p.capacity !== undefined) row.capacity = p.capacity;
  if (p.autoStart !== undefined) row.auto_start = boolValue(dialect, p.autoStart);
  if (p.idleTimeoutMs !== undefined) row.idle_timeout_ms = p.idleTimeoutMs;
  if (p.allowSharedCredentials !== undefined) row.allow_shared_credentials = boolValue(dialect, p.allowSharedCredentials);
  if (p.desiredState !== undefined) row.desired_state = p.desiredState;
  if (p.credentials !== undefined) row.credentials = p.credentials;
  if (p.credentialsFingerprint !== undefined) row.credentials_fingerprint = p.credentialsFingerprint;
  return row;
}

/** One status write per session id: later updates in the batch win, field by field. */
export interface MergedStatus {
  id: string;
  state?: SessionState;
  health?: HealthStatus;
  /** JSON text or null; `undefined` leaves the column alone. */
  lastError?: string | null;
  lastActivityAt?: number | null;
  fence?: number;
}

export function mergeStatusUpdates(updates: readonly StatusUpdate[]): MergedStatus[] {
  const byId = new Map<string, MergedStatus>();
  for (const u of updates) {
    let m = byId.get(u.id);
    if (!m) byId.set(u.id, (m = { id: u.id }));
    if (u.state !== undefined) m.state = u.state;
    if (u.health !== undefined) m.health = u.health;
    if (u.lastError !== undefined) m.lastError = u.lastError === null ? null : jsonText(u.lastError as unknown as JsonValue);
    if (u.lastActivityAt !== undefined) m.lastActivityAt = u.lastActivityAt;
    if (u.fence !== undefined) m.fence = u.fence;
  }
  return [...byId.values()];
}

/** Sums deltas per (session, counter), dropping zero-length names. */
export function sumStatDeltas(deltas: readonly StatDelta[]): StatDelta[] {
  const byKey = new Map<string, StatDelta>();
  for (const d of deltas) {
    const k = d.fence === undefined ? `${d.sessionId}\u0000${d.name}` : `${d.sessionId}\u0000${d.name}\u0000${d.fence}`;
    const prev = byKey.get(k);
    if (prev) prev.delta += d.delta;
    else byKey.set(k, d.fence === undefined ? { sessionId: d.sessionId, name: d.name, delta: d.delta } : { sessionId: d.sessionId, name: d.name, delta: d.delta, fence: d.fence });
  }
  return [...byKey.values()];
}

/** The final effect of a list of KV operations applied in order: the last op per key wins. */
export function collapseKvOps(ops: readonly KvOperation[]): { sets: [string, string][]; deletes: string[] } {
  const last = new Map<string, KvOperation>();
  for (const op of ops) {
    last.delete(op.key);
    last.set(op.key, op);
  }
  const sets: [string, string][] = [];
  const deletes: string[] = [];
  for (const op of last.values()) {
    if (op.op === 'set') sets.push([op.key, jsonText(op.value)]);
    else deletes.push(op.key);
  }
  return { sets, deletes };
}

export interface TransitionRow {
  session_id: string;
  from_state: string;
  to_state: string;
  reason: string;
  at: number | string;
}

export const transitionFromRow = (r: TransitionRow): TransitionRecord => ({
  sessionId: r.session_id,
  from: r.from_state as SessionState,
  to: r.to_state as SessionState,
  reason: r.reason,
  at: toNumber(r.at),
});

export interface AuditRow {
  id: number | string;
  at: number | string;
  session_id: string | null;
  action: string;
  actor: string | null;
  details: string;
}

export function auditFromRow(r: AuditRow): AuditEntry {
  let details: JsonObject;
  try {
    const parsed: unknown = JSON.parse(r.details);
    details = isPlainObject(parsed) ? (parsed as JsonObject) : { value: parsed as JsonValue };
  } catch {
    details = { unreadable: r.details };
  }
  return { id: toNumber(r.id), at: toNumber(r.at), sessionId: r.session_id, action: r.action, actor: r.actor, details };
}

/** A KV value; a broken one reads as `null` rather than failing the whole list. */
export function kvValueFromText(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return null;
  }
}

export const statValue = (v: number | string): number => toNumber(v);

/** Length of a string in characters (code points), as SQL's `substr` counts them. */
export const charLength = (text: string): number => [...text].length;
