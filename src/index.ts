/**
 * multisession — run many accounts' sessions at once.
 *
 * The core: `SessionManager`, the lifecycle, typed events and errors, zod schemas,
 * `defineAdapter`, and the memory driver. Database drivers live in `multisession/sqlite` and
 * `multisession/postgres`; the conformance kits and simulated adapter in `multisession/testing`.
 */
export { SessionManager } from './manager/session-manager.js';
export {
  SESSION_STATES,
  DESIRED_STATES,
  HEALTH_STATUSES,
  AUTH_KINDS,
  TRANSITIONS,
  canTransition,
  type SessionState,
  type DesiredState,
  type HealthStatus,
  type AuthKind,
} from './lifecycle.js';
export {
  sessionIdSchema,
  sessionInputSchema,
  sessionPatchSchema,
  sessionFilterSchema,
  sessionListQuerySchema,
  authInputSchema,
  logsQuerySchema,
  controlOptionsSchema,
  deleteOptionsSchema,
  managerOptionsSchema,
  type SessionInput,
  type SessionUpdate,
  type SessionFilter,
  type SessionListQuery,
  type ControlOptions,
  type DeleteOptions,
  type SessionManagerOptions,
  type ResolvedManagerOptions,
} from './manager/schemas.js';
export type {
  SessionSnapshot,
  SessionPage,
  SessionStatus,
  SessionStatistics,
  SessionAuthInfo,
  TransitionInfo,
  LogEntry,
} from './manager/snapshot.js';
export { SESSION_MANAGER_EVENTS } from './manager/events.js';
export type { SessionManagerEvents, SessionManagerEventName, SessionManagerEventPayload } from './manager/events.js';
export {
  defineAdapter,
  type Adapter,
  type AdapterInfo,
  type AdapterDefinition,
  type AdapterContext,
  type PlatformConnection,
  type HealthReport,
  type AuthInput,
  type SessionKv,
  type SessionLog,
  type SessionStats,
  type SessionAuth,
  type SessionRateLimit,
} from './adapters/contract.js';
export {
  messageEnvelopeSchema,
  isInboundMessage,
  isMessageFrom,
  type InboundMessage,
  type MessageSender,
  type SessionMessageEvent,
  type AdapterMessage,
} from './adapters/message.js';
export type { AdapterUnit, UnitGroup, UnitsChange, SessionUnits } from './adapters/units.js';
export { parseUnitSelector, MAX_RANGE } from './units/selector.js';
export { unitInputSchema, unitsOptionsSchema, type UnitInput, type UnitListQuery, type PickQuery, type AssignOptions, type ReassignOptions, type UnitActorOptions } from './units/schemas.js';
export type { Unit, UnitPage, UnitSelector, SessionCandidate, UnitMoveInfo, ReassignPlan, UnitsMovedEvent, WorkerStatus } from './units/types.js';
export type { WorkUnits } from './units/work-units.js';
export type * from './storage/units-contract.js';
export { unitNumber } from './storage/units-contract.js';
export * from './errors.js';
export {
  networkConfigSchema,
  proxySettingSchema,
  rateLimitSchema,
  parseProxy,
  PROXY_PROTOCOLS,
  DEFAULT_SEND_MAX_WAIT_MS,
  type NetworkConfig,
  type RateLimitConfig,
  type ProxyConfig,
  type ProxyProtocol,
  type ResolvedProxy,
  type SessionFetch,
  type SessionRequestInit,
} from './net/index.js';
export { memoryStorage, type MemoryStorageOptions } from './storage/memory/memory-storage.js';
export { memoryCheckpoint, type MemoryCheckpointOptions } from './storage/memory/memory-checkpoint.js';
export type * from './storage/contract.js';
export { STORAGE_CAPABILITIES, touchesCredentials } from './storage/contract.js';
export { guardStore, isGuarded, storageError, wrapStorageError } from './storage/guarded-storage.js';
export * from './checkpoint/index.js';
export { parseSecretKey, SECRET_KEY_ENV } from './security/credentials.js';
export { redact, REDACTED } from './security/redact.js';
export { systemClock, silentLogger, type Clock, type Logger, type JsonValue, type JsonObject, type JsonPrimitive } from './types.js';
