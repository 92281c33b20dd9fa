/**
 * Typed errors. Every error the library throws on purpose is a {@link MultisessionError} with a
 * stable `code`, a message that says what to change, optional structured `context`, and `cause`
 * when it wraps another error.
 *
 * @example
 * ```ts
 * try { await manager.start('bot-1'); }
 * catch (err) {
 *   if (err instanceof SessionNotFoundError) console.log(err.code, err.context.sessionId);
 * }
 * ```
 */
export type ErrorCode =
  | 'VALIDATION'
  | 'SESSION_NOT_FOUND'
  | 'SESSION_EXISTS'
  | 'INVALID_TRANSITION'
  | 'SESSION_NOT_READY'
  | 'CAPACITY'
  | 'CONFLICT'
  | 'AUTH_TIMEOUT'
  | 'AUTH_NOT_PENDING'
  | 'ADAPTER'
  | 'PERMANENT_FAILURE'
  | 'ADAPTER_NOT_FOUND'
  | 'MANAGER_CLOSED'
  | 'MANAGER_NOT_OPEN'
  | 'STORAGE'
  | 'LEASE_LOST'
  | 'DECRYPTION'
  | 'SECRET_KEY_REQUIRED'
  | 'DUPLICATE_CREDENTIALS'
  | 'ABORTED'
  | 'TIMEOUT'
  | 'RATE_LIMITED'
  | 'PLATFORM_CONFLICT'
  | 'UNSUPPORTED'
  | 'OWNERSHIP_LOST'
  | 'NODE_ID_IN_USE'
  | 'OWNER_UNAVAILABLE'
  | 'WEBHOOK_NOT_FOUND'
  | 'WEBHOOK_VERIFICATION';

export interface ErrorOptions {
  cause?: unknown;
  context?: Record<string, unknown>;
}

/** Base class of every error the library raises on purpose. */
export class MultisessionError extends Error {
  readonly code: ErrorCode;
  readonly context: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = options.context ?? {};
  }

  /** Plain data for logs and HTTP problem documents (never carries credentials). */
  toJSON(): { name: string; code: ErrorCode; message: string; context: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, context: this.context };
  }
}

/** One problem found in an input: where (`path`) and what is wrong. */
export interface ValidationIssue {
  path: (string | number)[];
  message: string;
}

/** An input failed validation. `issues` names each field path and what to change. */
export class ValidationError extends MultisessionError {
  readonly issues: ValidationIssue[];
  constructor(what: string, issues: ValidationIssue[], options: ErrorOptions = {}) {
    const detail = issues
      .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
      .join('; ');
    super('VALIDATION', `Invalid ${what}: ${detail}`, {
      ...options,
      context: { ...options.context, issues },
    });
    this.issues = issues;
  }
}

export class SessionNotFoundError extends MultisessionError {
  constructor(sessionId: string, options: ErrorOptions = {}) {
    super('SESSION_NOT_FOUND', `Session "${sessionId}" does not exist; create it first or check the id.`, {
      ...options,
      context: { ...options.context, sessionId },
    });
  }
}

export class SessionExistsError extends MultisessionError {
  constructor(sessionId: string, options: ErrorOptions = {}) {
    super('SESSION_EXISTS', `Session "${sessionId}" already exists; choose another id or update it instead.`, {
      ...options,
      context: { ...options.context, sessionId },
    });
  }
}

export class InvalidTransitionError extends MultisessionError {
  constructor(sessionId: string, from: string, to: string, options: ErrorOptions = {}) {
    super(
      'INVALID_TRANSITION',
      `Session "${sessionId}" cannot go from "${from}" to "${to}".`,
      { ...options, context: { ...options.context, sessionId, from, to } },
    );
  }
}

/** An operation needs the session in another state (e.g. `send` needs `ready` or `degraded`). */
export class SessionNotReadyError extends MultisessionError {
  constructor(sessionId: string, state: string, operation: string, options: ErrorOptions = {}) {
    super(
      'SESSION_NOT_READY',
      `Session "${sessionId}" is "${state}"; ${operation} needs it "ready" or "degraded". Start it and wait for session.ready.`,
      { ...options, context: { ...options.context, sessionId, state, operation } },
    );
  }
}

export class CapacityError extends MultisessionError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('CAPACITY', message, options);
  }
}

/** An optimistic update lost: someone else changed the record first. Re-read and retry. */
export class ConflictError extends MultisessionError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('CONFLICT', message, options);
  }
}

export class AuthTimeoutError extends MultisessionError {
  constructor(sessionId: string, kind: string, timeoutMs: number, options: ErrorOptions = {}) {
    super(
      'AUTH_TIMEOUT',
      `Session "${sessionId}" waited ${timeoutMs} ms for ${kind} authentication; submit it sooner or raise authTimeoutMs.`,
      { ...options, context: { ...options.context, sessionId, kind, timeoutMs } },
    );
  }
}

export class AuthNotPendingError extends MultisessionError {
  constructor(sessionId: string, message: string, options: ErrorOptions = {}) {
    super('AUTH_NOT_PENDING', message, { ...options, context: { ...options.context, sessionId } });
  }
}

/** An adapter threw, rejected or timed out. Always carries the session id and the `cause`. */
export class AdapterError extends MultisessionError {
  constructor(sessionId: string, operation: string, cause: unknown, options: ErrorOptions = {}) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('ADAPTER', `Session "${sessionId}": adapter ${operation} failed: ${reason}`, {
      ...options,
      cause,
      context: { ...options.context, sessionId, operation },
    });
  }
}

/**
 * A failure the adapter knows waiting will not mend (the platform refuses the configuration: a
 * privileged intent not granted, an API version it no longer serves …). Reject `start()` with it,
 * or pass it to `ctx.fail()`: the session ends `failed` at once, without back-off restarts. Say in
 * the message what to change. (Refused credentials are `ctx.expired()` instead.)
 */
export class PermanentFailureError extends MultisessionError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('PERMANENT_FAILURE', message, options);
  }
}

/** True when `error` or an error in its `cause` chain is a {@link PermanentFailureError}. */
export function isPermanentFailure(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof PermanentFailureError) return true;
  }
  return false;
}

export class AdapterNotFoundError extends MultisessionError {
  constructor(platform: string, known: string[], options: ErrorOptions = {}) {
    super(
      'ADAPTER_NOT_FOUND',
      `No adapter is registered for platform "${platform}"; registered: ${known.length ? known.join(', ') : '(none)'}. Pass it in the manager's adapters option.`,
      { ...options, context: { ...options.context, platform, known } },
    );
  }
}

/** A call that needs an open manager came before `await manager.open()`. */
export class ManagerNotOpenError extends MultisessionError {
  constructor(options: ErrorOptions = {}) {
    super('MANAGER_NOT_OPEN', 'The SessionManager is not open; call `await manager.open()` first.', options);
  }
}

export class ManagerClosedError extends MultisessionError {
  constructor(options: ErrorOptions = {}) {
    super('MANAGER_CLOSED', 'The SessionManager is closed; create a new one.', options);
  }
}

export class StorageError extends MultisessionError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('STORAGE', message, options);
  }
}

/** A lease was lost (expired and taken over, released, or completed): nothing was changed. */
export class LeaseLostError extends MultisessionError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('LEASE_LOST', message, options);
  }
}

export class DecryptionError extends MultisessionError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('DECRYPTION', message, options);
  }
}

export class SecretKeyRequiredError extends MultisessionError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('SECRET_KEY_REQUIRED', message, options);
  }
}

export class DuplicateCredentialsError extends MultisessionError {
  constructor(sessionId: string, otherSessionId: string, options: ErrorOptions = {}) {
    super(
      'DUPLICATE_CREDENTIALS',
      `Session "${sessionId}" uses the same credentials as session "${otherSessionId}"; use other credentials, or set allowSharedCredentials: true on this session to share them on purpose.`,
      { ...options, context: { ...options.context, sessionId, otherSessionId } },
    );
  }
}

export class AbortedError extends MultisessionError {
  constructor(message = 'The operation was aborted.', options: ErrorOptions = {}) {
    super('ABORTED', message, options);
  }
}

/** A wait (e.g. `manager.waitFor`) ran out of time. */
export class TimeoutError extends MultisessionError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('TIMEOUT', message, options);
  }
}

/**
 * The session may not send now. Either its own outbound rate limit (its config's `rateLimit`)
 * would make the call wait longer than allowed (`rateLimit.maxWaitMs`), or the platform said
 * "slow down" (HTTP 429 and the like: the adapter called `ctx.rateLimit.pause`, and `reason`
 * says why). Nothing was sent; retry after `retryAfterMs`, send less often, or raise `maxWaitMs`.
 */
export class RateLimitError extends MultisessionError {
  /** How long until the session may send again, in ms. */
  readonly retryAfterMs: number;
  /**
   * @param maxWaitMs the longest wait that was allowed, or `null` for a platform's "slow down"
   *   told to the caller of `send()` as it is
   * @param options.reason why the session is held back (e.g. `Telegram: Too Many Requests`); without it, its own `rateLimit`
   */
  constructor(sessionId: string, retryAfterMs: number, maxWaitMs: number | null, options: ErrorOptions & { reason?: string } = {}) {
    const after = Math.ceil(retryAfterMs);
    const { reason, ...rest } = options;
    const message =
      reason === undefined
        ? `Session "${sessionId}" is rate limited: its next request may go in ${after} ms, longer than rateLimit.maxWaitMs (${maxWaitMs} ms); retry later, send less often or raise rateLimit.maxWaitMs.`
        : maxWaitMs === null
          ? `Session "${sessionId}" was told to slow down (${reason}): its outbound traffic is paused for ${after} ms; retry after that.`
          : `Session "${sessionId}" is held back (${reason}): its next request may go in ${after} ms, longer than the ${maxWaitMs} ms it may wait; retry after that, or send less often.`;
    super('RATE_LIMITED', message, {
      ...rest,
      context: { ...rest.context, sessionId, retryAfterMs: after, ...(maxWaitMs === null ? {} : { maxWaitMs }), ...(reason === undefined ? {} : { reason }) },
    });
    this.retryAfterMs = after;
  }
}

/**
 * The platform says another client uses the same credentials right now: a second process
 * polling the same bot token, a webhook set on it, a second login of the account. Stop the other
 * client; the session retries with back-off meanwhile (and ends `failed` when retries run out).
 */
export class PlatformConflictError extends MultisessionError {
  constructor(sessionId: string, platform: string, detail: string, options: ErrorOptions = {}) {
    super(
      'PLATFORM_CONFLICT',
      `Session "${sessionId}": ${platform} says another client is using these credentials (${detail}); stop the other client, or give this session other credentials.`,
      { ...options, context: { ...options.context, sessionId, platform, detail } },
    );
  }
}

/**
 * The storage driver in use lacks a capability the call needs (a custom driver without `kv`,
 * `audit`, `checkpoint` …). Use a driver that has it, or implement the capability.
 */
export class UnsupportedError extends MultisessionError {
  constructor(capability: string, storage: string, options: ErrorOptions = {}) {
    super(
      'UNSUPPORTED',
      `The storage driver "${storage}" has no ${capability} capability; use a driver that has it (memory, sqlite, postgres) or implement StorageDriver.${capability}.`,
      { ...options, context: { ...options.context, capability, storage } },
    );
  }
}

/** A lost compare-and-swap on a session's version (`ConflictError` with both versions in `context`). */
export function versionConflict(sessionId: string, expectedVersion: number, actualVersion: number | null, advice: string): ConflictError {
  return new ConflictError(
    `Session "${sessionId}" was changed by someone else (expected version ${expectedVersion}${actualVersion === null ? '' : `, stored version ${actualVersion}`}); ${advice}.`,
    { context: { sessionId, expectedVersion, actualVersion } },
  );
}

/** A session's ownership lease was lost (expired, taken over, or the session deleted): the runtime stops, its writes are refused. */
export class OwnershipLostError extends MultisessionError {
  constructor(sessionId: string, detail: string, options: ErrorOptions = {}) {
    super('OWNERSHIP_LOST', `Session "${sessionId}" is no longer owned by this node (${detail}); the node that owns it now runs it.`, { ...options, context: { sessionId } });
  }
}

/** Another live process has joined the store under the same node id. */
export class NodeIdInUseError extends MultisessionError {
  constructor(nodeId: string, detail: string) {
    super('NODE_ID_IN_USE', `Node id "${nodeId}" is in use by a live node (${detail}); give each process its own cluster.nodeId, or leave it unset for a random one.`, { context: { nodeId } });
  }
}

/** The node that owns a session did not answer a command in time. */
export class OwnerUnavailableError extends MultisessionError {
  constructor(sessionId: string, nodeId: string | null, detail: string) {
    const who = sessionId ? `Session "${sessionId}" runs on node ${nodeId ? `"${nodeId}"` : '(none)'}, which` : `Node "${nodeId}"`;
    super('OWNER_UNAVAILABLE', `${who} did not answer: ${detail}.`, { context: { sessionId, nodeId } });
  }
}

/** A webhook endpoint or delivery id that does not exist (`context.kind`: `endpoint` or `delivery`). */
export class WebhookNotFoundError extends MultisessionError {
  constructor(kind: 'endpoint' | 'delivery', id: string) {
    super('WEBHOOK_NOT_FOUND', `Webhook ${kind} "${id}" does not exist; list the ${kind === 'endpoint' ? 'endpoints' : "endpoint's deliveries"} to find its id.`, {
      context: { kind, id },
    });
  }
}

/** A webhook a receiver got failed `verify()`: a bad or missing signature, or a timestamp too old or too new. */
export class WebhookVerificationError extends MultisessionError {
  constructor(detail: string) {
    super('WEBHOOK_VERIFICATION', `The webhook could not be verified: ${detail}. Check the endpoint's secret and the clocks; never process an unverified webhook.`);
  }
}
