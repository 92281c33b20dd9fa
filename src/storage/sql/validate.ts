import { z } from 'zod';
import { ValidationError, parseWith } from '../../errors.js';
import { DESIRED_STATES, HEALTH_STATUSES, SESSION_STATES } from '../../manager/lifecycle.js';
import type { JsonValue } from '../../types.js';
import type {
  AuditInput,
  AuditQuery,
  CredentialRewrite,
  NewSessionRecord,
  SessionPatch,
  StatDelta,
  StatusUpdate,
  TransitionRecord,
} from '../driver.js';
import { assertKvOperations, findJsonProblem } from '../memory.js';

/**
 * Input checks of the SQL drivers, the same rules the memory driver applies: a malformed value is
 * refused with a `ValidationError` before anything is written.
 */
export { assertKvOperations };

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

const status = z.array(
  z.object({
    id,
    state: z.enum(SESSION_STATES).optional(),
    health: z.enum(HEALTH_STATUSES).optional(),
    lastError: sessionError.optional(),
    lastActivityAt: time.nullable().optional(),
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

const deltas = z.array(z.object({ sessionId: id, name: z.string().min(1), delta: z.number().finite() }));

const transitions = z.array(
  z.object({ sessionId: id, from: z.enum(SESSION_STATES), to: z.enum(SESSION_STATES), reason: z.string(), at: time }),
);

const auditInputs = z.array(
  z.object({ at: time, sessionId: id.nullable(), action: z.string().min(1), actor: z.string().nullable(), details: jsonObject }),
);

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

export const checkId = (v: string): string => parseWith(id, v, 'session id');
export const checkKey = (v: string): string => parseWith(z.string(), v, 'KV key');
export const checkNewRecord = (v: NewSessionRecord): NewSessionRecord => parseWith(newRecord, v, 'session record') as NewSessionRecord;
export const checkPatch = (v: SessionPatch): SessionPatch => parseWith(patch, v, 'session patch') as SessionPatch;
export const checkVersion = (v: number): number => parseWith(z.number().int(), v, 'expected version');
export const checkStatus = (v: StatusUpdate[]): StatusUpdate[] => parseWith(status, v, 'status updates') as StatusUpdate[];
export const checkDeltas = (v: StatDelta[]): StatDelta[] => parseWith(deltas, v, 'stat deltas');
export const checkTransitions = (v: TransitionRecord[]): TransitionRecord[] => parseWith(transitions, v, 'transitions');
export const checkAuditInputs = (v: AuditInput[]): AuditInput[] => parseWith(auditInputs, v, 'audit entries') as AuditInput[];
export const checkAuditQuery = (v: AuditQuery | undefined): Required<Pick<AuditQuery, 'limit'>> & AuditQuery =>
  parseWith(auditQuery, v, 'audit query');
export const checkPositive = (v: number, what: string): number => parseWith(positiveInt, v, what);
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
