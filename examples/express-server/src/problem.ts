import { MultisessionError, ValidationError, type ErrorCode } from 'multisession';

/**
 * RFC 9457 problem details. Every error response of the server is one of these, served as
 * `application/problem+json`, carrying the library's stable `code` and, for validation errors,
 * each field path (`errors[].path` as a dotted string and `errors[].pointer` as a JSON pointer).
 */
export interface ProblemField {
  /** Where the problem is: `body.credentials.token`, `query.state`, … */
  path: string;
  /** The same place as a JSON pointer into the request part (`#/credentials/token`). */
  pointer: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: string;
  errors?: ProblemField[];
  [extra: string]: unknown;
}

/** HTTP status for each library error code (see docs/server-api.md, "Errors"). */
export const STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = Object.freeze({
  VALIDATION: 400,
  ADAPTER_NOT_FOUND: 400,
  SESSION_NOT_FOUND: 404,
  WEBHOOK_NOT_FOUND: 404,
  // A receiver's check (verify()); the server itself never raises it.
  WEBHOOK_VERIFICATION: 400,
  SESSION_EXISTS: 409,
  CONFLICT: 409,
  INVALID_TRANSITION: 409,
  SESSION_NOT_READY: 409,
  DUPLICATE_CREDENTIALS: 409,
  AUTH_NOT_PENDING: 409,
  AUTH_TIMEOUT: 409,
  LEASE_LOST: 409,
  OWNERSHIP_LOST: 409,
  NODE_ID_IN_USE: 409,
  OWNER_UNAVAILABLE: 503,
  // The session count is a limit the client can act on (delete sessions), not a server fault.
  CAPACITY: 409,
  // A session's own outbound rate limit (rateLimit in its config): retry after Retry-After.
  RATE_LIMITED: 429,
  // Another client uses the session's credentials on the platform (a second bot poller …).
  PLATFORM_CONFLICT: 409,
  ADAPTER: 502,
  PERMANENT_FAILURE: 502,
  TIMEOUT: 504,
  ABORTED: 503,
  MANAGER_CLOSED: 503,
  MANAGER_NOT_OPEN: 503,
  // The store lacks a capability (a custom driver): the server cannot do this at all.
  UNSUPPORTED: 501,
  STORAGE: 503,
  DECRYPTION: 500,
  SECRET_KEY_REQUIRED: 500,
});

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function problemType(code: string): string {
  return `urn:multisession:problem:${code.toLowerCase().replace(/_/g, '-')}`;
}

/** An error the HTTP layer raises itself (401, 403, 413, 429 …). */
export class HttpProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: ProblemField[] | undefined;
  readonly headers: Record<string, string>;
  readonly context: Record<string, unknown> | undefined;
  constructor(
    status: number,
    code: string,
    detail: string,
    extra: { fields?: ProblemField[]; headers?: Record<string, string>; context?: Record<string, unknown> } = {},
  ) {
    super(detail);
    this.status = status;
    this.code = code;
    this.fields = extra.fields;
    this.headers = extra.headers ?? {};
    this.context = extra.context;
  }
}

export function fieldsOf(issues: ReadonlyArray<{ path: ReadonlyArray<string | number>; message: string }>, where: string): ProblemField[] {
  return issues.map((i) => ({
    path: [where, ...i.path].join('.'),
    pointer: i.path.length ? `#/${i.path.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}` : '#',
    message: i.message,
  }));
}

/** Turns any thrown value into a problem document. Unknown errors become a bare 500. */
export function toProblem(err: unknown, instance: string, where = 'body'): { problem: Problem; headers: Record<string, string> } {
  if (err instanceof HttpProblem) {
    const problem: Problem = {
      type: problemType(err.code),
      title: TITLES[err.status] ?? 'Error',
      status: err.status,
      detail: err.message,
      instance,
      code: err.code,
    };
    if (err.fields) problem.errors = err.fields;
    if (err.context) problem.context = err.context;
    return { problem, headers: err.headers };
  }
  if (err instanceof MultisessionError) {
    const status = STATUS_BY_CODE[err.code] ?? 500;
    const problem: Problem = {
      type: problemType(err.code),
      title: TITLES[status] ?? 'Error',
      status,
      detail: err.message,
      instance,
      code: err.code,
    };
    if (err instanceof ValidationError) problem.errors = fieldsOf(err.issues, where);
    else if (err.code === 'ADAPTER_NOT_FOUND') {
      problem.errors = [{ path: `${where}.platform`, pointer: '#/platform', message: err.message }];
    }
    // The library's context never carries credentials; the issues are already in `errors`.
    const { issues: _issues, ...context } = err.context;
    if (Object.keys(context).length > 0) problem.context = context;
    const retryAfterMs = (err as { retryAfterMs?: unknown }).retryAfterMs;
    const headers: Record<string, string> = typeof retryAfterMs === 'number' ? { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) } : {};
    return { problem, headers };
  }
  const status = typeof (err as { status?: unknown })?.status === 'number' ? (err as { status: number }).status : 500;
  if (status === 415) {
    // body-parser's refusals: a charset other than UTF-8, or a Content-Encoding it cannot undo.
    const e = err as { type?: string; charset?: string; encoding?: string };
    const detail =
      e.type === 'charset.unsupported'
        ? `The charset "${e.charset ?? ''}" is not supported; send the JSON body as UTF-8.`
        : e.type === 'encoding.unsupported'
          ? `The Content-Encoding "${e.encoding ?? ''}" is not supported; send the body plain, or as gzip, deflate or br.`
          : 'Send the body as JSON with "Content-Type: application/json".';
    return { problem: bare(415, 'UNSUPPORTED_MEDIA_TYPE', detail, instance), headers: {} };
  }
  if (status === 413) {
    return { problem: bare(413, 'BODY_TOO_LARGE', 'The request body is larger than the server accepts; send less.', instance), headers: {} };
  }
  if (status === 400 && (err as { type?: string }).type === 'entity.parse.failed') {
    return {
      problem: {
        ...bare(400, 'VALIDATION', 'The request body is not valid JSON; send a JSON document.', instance),
        errors: [{ path: where, pointer: '#', message: 'is not valid JSON' }],
      },
      headers: {},
    };
  }
  if (status >= 400 && status < 500) {
    return { problem: bare(status, 'BAD_REQUEST', (err as Error).message ?? 'Bad request.', instance), headers: {} };
  }
  return { problem: bare(500, 'INTERNAL', 'The server failed to handle the request; see its log.', instance), headers: {} };
}

function bare(status: number, code: string, detail: string, instance: string): Problem {
  return { type: problemType(code), title: TITLES[status] ?? 'Error', status, detail, instance, code };
}
