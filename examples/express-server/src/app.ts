import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response } from 'express';
import QRCode from 'qrcode';
import { z } from 'zod';
import {
  AuthNotPendingError,
  DuplicateCredentialsError,
  ValidationError,
  sessionIdSchema,
  systemClock,
  type AuditEntry,
  type Checkpoint,
  type Clock,
  type CheckpointStats,
  type SessionFilter as LibraryFilter,
  type SessionListQuery,
  type SessionManager,
  type SessionPage,
  type SessionSnapshot,
} from 'multisession';
import { ApiKeyStore, canAccess, type Principal } from './api-keys.js';
import { EventStreams } from './event-streams.js';
import { HttpCounters, renderMetrics } from './metrics.js';
import { buildOpenApiDocument } from './openapi.js';
import { HttpProblem, fieldsOf, toProblem } from './problem.js';
import { RateLimiter, type RateLimitOptions } from './rate-limit.js';
import { DEFAULT_MAX_JSON_DEPTH, depthLimit, refuseProtoKeys } from './request-guards.js';
import { TrafficCounter } from './traffic.js';
import { unitRoutes } from './units-routes.js';
import * as s from './http-schemas.js';
import type { Webhooks } from 'multisession/webhooks';
import { webhookRoutes } from './webhook-routes.js';

export interface AppOptions {
  /** Where API keys are checked. */
  keys: ApiKeyStore;
  /** Per-key rate limit. Default: 600 requests a minute. */
  rateLimit?: RateLimitOptions;
  /** Largest accepted JSON body (express/bytes syntax). Default `64kb`. */
  bodyLimit?: string;
  /** Origins allowed by CORS (`*` for any). Default: none (CORS off). */
  corsOrigins?: readonly string[];
  /** Storage reachability for /health (e.g. `() => storage.ping()`) and its kind. */
  ping?: () => Promise<void>;
  storageKind?: string;
  /** Item counts of a checkpoint stream. Default: `manager.checkpoint(stream).stats()`. */
  checkpointStats?: (stream: string) => Promise<CheckpointStats>;
  /** Checkpoint streams always shown in /metrics (others appear once their stats were asked for). */
  checkpointStreams?: readonly string[];
  /** Serve the web page (default true). */
  webPage?: boolean;
  /** Heartbeat interval of the event stream. Default 15 s. */
  sseHeartbeatMs?: number;
  /** Most bytes an event stream may have waiting for a client that stopped reading; past it the client is dropped. Default 1 MiB. */
  sseMaxBufferBytes?: number;
  /** Most event streams one API key may hold open. Default 10. */
  sseMaxStreamsPerKey?: number;
  /** Most nesting levels of a JSON body (the body is level 1). Default 64. */
  jsonMaxDepth?: number;
  /**
   * Duplicate-credential conflicts a session-scoped key may run into before its creates and
   * updates are refused with 429 for a while (each conflict tells it that some session holds the
   * credentials it tried). Default 5 per 15 minutes.
   */
  credentialConflicts?: RateLimitOptions;
  /** The webhooks of `multisession/webhooks` (`/api/v1/webhooks`); without them those routes answer 404. */
  webhooks?: Webhooks;
  /** The clock of the rate limits (a manual clock in tests). Default: the system clock. */
  clock?: Clock;
  version?: string;
  /**
   * Public `POST` routes a platform calls (e.g. the `telegram-bot` adapter's webhook handler):
   * no API key, the handler checks the platform's own secret; mounted before the JSON parser.
   */
  platformHooks?: readonly { path: string; handler: (req: IncomingMessage, res: ServerResponse) => void }[];
}

/** The app, plus what the embedding server needs to shut it down. */
export interface AppHandle {
  app: express.Express;
  /** Ends every open event stream and stops listening to the manager (call before closing the HTTP server). */
  closeStreams(): void;
}

const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));

type SessionFilter = NonNullable<LibraryFilter>;

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

function principalOf(req: Request): Principal {
  if (!req.principal) throw new HttpProblem(401, 'UNAUTHORIZED', 'Send an API key.');
  return req.principal;
}

function actorOf(req: Request): string {
  const p = principalOf(req);
  return `key:${p.name}`;
}

function requireAdmin(req: Request): void {
  if (principalOf(req).role !== 'admin') {
    throw new HttpProblem(403, 'FORBIDDEN', 'This endpoint needs an admin key; a session-scoped key cannot use it.');
  }
}

function parsePart<T>(schema: z.ZodType<T>, input: unknown, where: 'query' | 'body' | 'path.id' | 'path.stream' | 'path.nodeId'): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const fields = fieldsOf(r.error.issues.map((i) => ({ path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)), message: i.message })), where);
  const what = where.startsWith('path.') ? `path parameter ${where.slice(5)}` : where;
  throw new HttpProblem(400, 'VALIDATION', `Invalid ${what}: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`, { fields });
}

function badCursor(): HttpProblem {
  return new HttpProblem(400, 'VALIDATION', `Invalid query: query.cursor: ${s.CURSOR_MESSAGE}`, {
    fields: [{ path: 'query.cursor', pointer: '#/cursor', message: s.CURSOR_MESSAGE }],
  });
}

/** `manager.list()` with the HTTP layer's words for a refused cursor (not the library's "list()"). */
async function listPage(manager: SessionManager, query: SessionListQuery): Promise<SessionPage> {
  try {
    return await manager.list(query);
  } catch (err) {
    if (err instanceof ValidationError && err.issues.some((i) => i.path[0] === 'cursor')) throw badCursor();
    throw err;
  }
}

/** `key=value` (or `key:value`) pairs as one object; a label named `__proto__` is a key like any other. */
function labelsOf(pairs: readonly string[]): Record<string, string> {
  return Object.fromEntries(pairs.map((pair) => {
    const at = pair.search(/[=:]/);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }));
}


/** The session id from the path; 403 when the key may not act on it. */
function sessionParam(req: Request): string {
  const id = parsePart(sessionIdSchema, String(req.params.id ?? ''), 'path.id');
  const principal = principalOf(req);
  if (!canAccess(principal, id)) {
    throw new HttpProblem(403, 'FORBIDDEN', `This key may not act on session "${id}"; use a key that lists it, or an admin key.`);
  }
  return id;
}

function presentedKey(req: Request, allowQuery: boolean): string | undefined {
  const auth = req.get('authorization');
  if (auth) {
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    return m ? m[1]!.trim() : undefined;
  }
  const header = req.get('x-api-key');
  if (header) return header.trim();
  if (allowQuery && typeof req.query.key === 'string') return req.query.key;
  return undefined;
}

/** An audit entry as a session-scoped key may see it: no id of a session outside its scope. */
function auditFor(principal: Principal, entry: AuditEntry): AuditEntry {
  const other = entry.details.otherSessionId;
  if (principal.role === 'admin' || typeof other !== 'string' || canAccess(principal, other)) return entry;
  const { otherSessionId: _hidden, ...details } = entry.details;
  return { ...entry, details };
}

const NO_STORE_PATHS = /^\/(api\/|api-docs$|metrics$)/;
const EXPOSED_HEADERS = 'Retry-After, Location, X-Cleared-Entries';

/**
 * Builds the Express app over a running manager: REST API, event stream, metrics, OpenAPI and
 * the web page. It never opens or closes the manager.
 */
export function createApp(manager: SessionManager, options: AppOptions): AppHandle {
  const app = express();
  const keys = options.keys;
  const clock = options.clock ?? systemClock;
  const now = () => clock.now();
  const limiter = new RateLimiter(options.rateLimit ?? { max: 600, windowMs: 60_000 }, now);
  const conflictLimit = options.credentialConflicts ?? { max: 5, windowMs: 15 * 60_000 };
  const conflicts = new RateLimiter(conflictLimit, now);
  const http = new HttpCounters();
  const startedAt = Date.now();
  const streams = new EventStreams(manager, http, {
    ...(options.sseHeartbeatMs ? { heartbeatMs: options.sseHeartbeatMs } : {}),
    ...(options.sseMaxBufferBytes ? { maxBufferBytes: options.sseMaxBufferBytes } : {}),
    ...(options.sseMaxStreamsPerKey ? { maxPerKey: options.sseMaxStreamsPerKey } : {}),
  });
  const traffic = new TrafficCounter(manager, now);
  // A revoked key's open streams end at once (its next request is refused anyway).
  const stopWatchingKeys = keys.onRevoke((keyId) => streams.closeKey(keyId, 'the API key was revoked'));
  const checkpointStreams = new Set(options.checkpointStreams ?? []);
  const corsOrigins = new Set(options.corsOrigins ?? []);
  let openapi: Record<string, unknown> | null = null;

  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.set('query parser', 'simple');

  // Security headers and request counting.
  app.use((req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    // API answers are per key and change all the time: no cache (browser or proxy) keeps them.
    if (NO_STORE_PATHS.test(req.path)) res.setHeader('Cache-Control', 'no-store');
    res.on('finish', () => http.count(req.method, res.statusCode));
    next();
  });

  // CORS: off unless origins are configured.
  if (corsOrigins.size > 0) {
    app.use((req, res, next) => {
      const origin = req.get('origin');
      if (origin && (corsOrigins.has('*') || corsOrigins.has(origin))) {
        res.setHeader('Access-Control-Allow-Origin', corsOrigins.has('*') ? '*' : origin);
        res.setHeader('Vary', 'Origin');
        res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
        if (req.method === 'OPTIONS') {
          res.setHeader('Access-Control-Allow-Methods', 'GET,POST,PATCH,DELETE,OPTIONS');
          res.setHeader('Access-Control-Allow-Headers', 'Authorization,Content-Type,X-API-Key');
          res.setHeader('Access-Control-Max-Age', '600');
          res.status(204).end();
          return;
        }
      }
      next();
    });
  }

  // ----- public: page, health, OpenAPI -----
  if (options.webPage !== false) {
    app.use(
      express.static(PUBLIC_DIR, {
        index: 'index.html',
        setHeaders(res) {
          res.setHeader(
            'Content-Security-Policy',
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
          );
        },
      }),
    );
  }

  for (const hook of options.platformHooks ?? []) app.post(hook.path, (req, res) => hook.handler(req, res));

  app.get('/api/v1/health', async (_req, res) => {
    const t0 = performance.now();
    let ok = true;
    let error: string | undefined;
    try {
      if (options.ping) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            options.ping(),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error('storage ping timed out after 5 s')), 5_000);
              timer.unref();
            }),
          ]);
        } finally {
          clearTimeout(timer);
        }
      }
    } catch (err) {
      ok = false;
      error = err instanceof Error ? err.message : String(err);
    }
    const latencyMs = ok ? Math.round((performance.now() - t0) * 100) / 100 : null;
    let sessions = 0;
    try {
      sessions = (await manager.statuses()).length;
    } catch {
      ok = false;
    }
    res.status(ok ? 200 : 503).json({
      status: ok ? 'ok' : 'degraded',
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      storage: { kind: options.storageKind ?? 'unknown', ok, latencyMs, ...(error ? { error } : {}) },
      sessions,
    });
  });

  app.get('/api-docs', (req, res) => {
    openapi ??= buildOpenApiDocument({ version: options.version ?? '0.0.0' });
    res.json({ ...openapi, servers: [{ url: `${req.protocol}://${req.get('host') ?? 'localhost'}` }] });
  });

  // ----- authentication and rate limit for everything else -----
  const authenticate = (req: Request, res: Response, next: NextFunction) => {
    const allowQuery = req.baseUrl + req.path === '/api/v1/events';
    const key = presentedKey(req, allowQuery);
    const principal = keys.verify(key);
    const caller = principal ? `key:${principal.keyId}` : `ip:${req.socket.remoteAddress ?? 'unknown'}`;
    const waitMs = limiter.take(caller);
    if (waitMs > 0) {
      http.rateLimited += 1;
      const seconds = Math.ceil(waitMs / 1000);
      const whose = principal
        ? 'for this API key'
        : 'from this address without a valid API key (such requests share one bucket per address; a valid key has its own)';
      throw new HttpProblem(429, 'RATE_LIMITED', `Too many requests ${whose}; retry in ${seconds} s.`, {
        headers: { 'Retry-After': String(seconds) },
      });
    }
    if (!principal) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="multisession"');
      throw new HttpProblem(
        401,
        'UNAUTHORIZED',
        key === undefined
          ? 'Send an API key as "Authorization: Bearer <key>" or "X-API-Key: <key>".'
          : 'The API key is not valid; check it or ask an admin for a new one.',
      );
    }
    req.principal = principal;
    next();
  };
  app.use('/api/v1', authenticate);
  app.use('/metrics', authenticate);

  // Body: JSON only, limited in size.
  app.use('/api/v1', (req, _res, next) => {
    const hasBody = Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding') !== undefined;
    if (hasBody && !req.is(['application/json', 'application/*+json'])) {
      throw new HttpProblem(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the body as JSON with "Content-Type: application/json".');
    }
    next();
  });
  app.use(
    '/api/v1',
    express.json({
      limit: options.bodyLimit ?? '64kb',
      strict: false,
      type: ['application/json', 'application/*+json'],
      // Nesting is limited on the raw bytes, before the body is parsed and validated.
      verify: depthLimit(options.jsonMaxDepth ?? DEFAULT_MAX_JSON_DEPTH),
    }),
    refuseProtoKeys,
  );

  const api = express.Router();
  // Before /sessions/:id, so that /sessions/optimal is not read as a session id.
  unitRoutes(api, manager, { principalOf, requireAdmin, actorOf });

  const visible = (req: Request, id: string) => canAccess(principalOf(req), id);

  /**
   * A create or update under the duplicate-credential rules for session-scoped keys: a conflict
   * never names a session outside the key's scope, and a key that keeps running into conflicts
   * (guessing credentials) is refused for a while. Admin keys see every session anyway.
   */
  async function underCredentialGuard<T>(req: Request, id: string, work: () => Promise<T>): Promise<T> {
    const principal = principalOf(req);
    const scoped = principal.role !== 'admin';
    const bucket = `key:${principal.keyId}`;
    if (scoped) {
      const waitMs = conflicts.wait(bucket);
      if (waitMs > 0) {
        const seconds = Math.ceil(waitMs / 1000);
        throw new HttpProblem(429, 'RATE_LIMITED', `This API key ran into ${conflictLimit.max} credential conflicts within ${Math.round(conflictLimit.windowMs / 1000)} s; it may create or change sessions again in ${seconds} s.`, {
          headers: { 'Retry-After': String(seconds) },
        });
      }
    }
    try {
      return await work();
    } catch (err) {
      if (!(err instanceof DuplicateCredentialsError)) throw err;
      http.credentialConflicts += 1;
      if (!scoped) throw err;
      conflicts.take(bucket);
      if (canAccess(principal, String(err.context.otherSessionId))) throw err;
      throw new HttpProblem(409, 'DUPLICATE_CREDENTIALS', `Session "${id}": another session already uses these credentials; use other credentials.`, {
        context: { sessionId: id },
      });
    }
  }

  // ----- adapters -----
  api.get('/adapters', (_req, res) => {
    res.json(manager.adapterInfo());
  });

  // ----- sessions -----
  api.post('/sessions', async (req, res) => {
    const principal = principalOf(req);
    const body: unknown = req.body;
    if (principal.role !== 'admin') {
      const id = (body as { id?: unknown } | undefined)?.id;
      if (typeof id !== 'string' || !canAccess(principal, id)) {
        throw new HttpProblem(403, 'FORBIDDEN', 'A session-scoped key may only create sessions whose id it lists.');
      }
    }
    const id = String((body as { id?: unknown } | undefined)?.id ?? '');
    const snapshot = await underCredentialGuard(req, id, () => manager.create(body as Parameters<SessionManager['create']>[0], { actor: actorOf(req) }));
    res.status(201).location(`/api/v1/sessions/${encodeURIComponent(snapshot.id)}`).json(snapshot);
  });

  api.get('/sessions', async (req, res) => {
    const q = parsePart(s.listQuerySchema, req.query, 'query');
    const filter: SessionFilter = {
      ...(q.state ? { state: q.state } : {}),
      ...(q.health ? { health: q.health } : {}),
      ...(q.desiredState ? { desiredState: q.desiredState } : {}),
      ...(q.platform ? { platform: q.platform } : {}),
      ...(q.label ? { labels: labelsOf(q.label) } : {}),
    };
    const principal = principalOf(req);
    // A scoped key's pages are read from its own sessions only: full pages, and cursors that
    // never name a session it may not see.
    const scope = principal.role === 'admin' ? {} : { ids: [...(principal.sessions ?? [])] };
    res.json(await listPage(manager, { ...filter, ...scope, limit: q.limit, ...(q.cursor ? { cursor: q.cursor } : {}) }));
  });

  api.get('/sessions/status', async (req, res) => {
    res.json((await manager.statuses()).filter((x) => visible(req, x.id)));
  });

  api.get('/sessions/:id', async (req, res) => {
    res.json(await manager.get(sessionParam(req)));
  });

  api.patch('/sessions/:id', async (req, res) => {
    const id = sessionParam(req);
    res.json(await underCredentialGuard(req, id, () => manager.update(id, req.body, { actor: actorOf(req) })));
  });

  api.delete('/sessions/:id', async (req, res) => {
    const id = sessionParam(req);
    const q = parsePart(s.deleteQuerySchema, req.query, 'query');
    await manager.delete(id, { force: q.force ?? false, actor: actorOf(req) });
    res.status(204).end();
  });

  const controls = ['start', 'stop', 'restart', 'logout', 'clear'] as const;
  for (const action of controls) {
    api.post(`/sessions/:id/${action}`, async (req, res) => {
      const id = sessionParam(req);
      const body = parsePart(s.controlBodySchema, req.body ?? {}, 'body');
      const opts = { actor: actorOf(req), ...(body.reason ? { reason: body.reason } : {}) };
      let snapshot: SessionSnapshot;
      switch (action) {
        case 'start': snapshot = await manager.start(id, opts); break;
        case 'stop': snapshot = await manager.stop(id, opts); break;
        case 'restart': snapshot = await manager.restart(id, opts); break;
        case 'logout': snapshot = await manager.logout(id, opts); break;
        case 'clear': {
          // clear() answers how many context entries it dropped; the session itself is unchanged.
          const cleared = await manager.clear(id, opts);
          res.setHeader('X-Cleared-Entries', String(cleared));
          snapshot = await manager.get(id);
          break;
        }
      }
      res.json(snapshot);
    });
  }

  api.post('/sessions/:id/auth', async (req, res) => {
    const id = sessionParam(req);
    // Answer with the state the submission leads to (ready, or the next auth step) when it comes
    // quickly; the event stream tells the rest.
    let settle: () => void = () => {};
    const moved = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2_000);
      timer.unref();
      const onState = (e: { id: string }) => {
        if (e.id === id) resolve();
      };
      manager.on('session.state', onState);
      manager.on('session.auth', onState);
      settle = () => {
        clearTimeout(timer);
        manager.off('session.state', onState);
        manager.off('session.auth', onState);
      };
    });
    try {
      // Audited by the manager with the key as actor (kind and outcome, never the value).
      await manager.submitAuth(id, req.body, { actor: actorOf(req) });
      await moved;
    } finally {
      settle();
    }
    res.json(await manager.get(id));
  });

  api.post('/sessions/:id/touch', async (req, res) => {
    const id = sessionParam(req);
    await manager.touch(id);
    res.status(204).end();
  });

  api.get('/sessions/:id/status', async (req, res) => {
    res.json(await manager.status(sessionParam(req)));
  });

  api.get('/sessions/:id/statistics', async (req, res) => {
    res.json(await manager.stats(sessionParam(req)));
  });

  api.get('/sessions/:id/traffic', async (req, res) => {
    const id = sessionParam(req);
    await manager.status(id); // 404 for a session that does not exist
    res.json({ id, bucketMs: 60_000, buckets: traffic.buckets(id) });
  });

  api.get('/sessions/:id/logs', async (req, res) => {
    const id = sessionParam(req);
    const q = parsePart(s.logsQuerySchema, req.query, 'query');
    res.json(await manager.logs(id, { ...(q.limit ? { limit: q.limit } : {}), ...(q.level ? { level: q.level } : {}) }));
  });

  async function pendingQr(id: string): Promise<{ data: string; expiresAt: number | null }> {
    const snap = await manager.get(id);
    if (snap.state !== 'authenticating' || snap.auth?.kind !== 'qr' || typeof snap.auth.data !== 'string') {
      throw new AuthNotPendingError(id, `Session "${id}" shows no QR code (it is "${snap.state}"${snap.auth ? `, waiting for ${snap.auth.kind}` : ''}); start it and wait for the session.auth event.`);
    }
    return { data: snap.auth.data, expiresAt: snap.auth.expiresAt };
  }

  api.get('/sessions/:id/qr', async (req, res) => {
    const id = sessionParam(req);
    const qr = await pendingQr(id);
    const dataUrl = await QRCode.toDataURL(qr.data, { errorCorrectionLevel: 'M', margin: 2, width: 280 });
    res.setHeader('Cache-Control', 'no-store');
    res.json({ id, data: qr.data, expiresAt: qr.expiresAt, dataUrl });
  });

  api.get('/sessions/:id/qr.png', async (req, res) => {
    const id = sessionParam(req);
    const qr = await pendingQr(id);
    const png = await QRCode.toBuffer(qr.data, { type: 'png', errorCorrectionLevel: 'M', margin: 2, width: 280 });
    res.setHeader('Cache-Control', 'no-store');
    res.type('image/png').send(png);
  });

  api.post('/sessions/:id/messages', async (req, res) => {
    const id = sessionParam(req);
    if (req.body === undefined) {
      throw new HttpProblem(400, 'VALIDATION', 'Send the action as a JSON body.', {
        fields: [{ path: 'body', pointer: '#', message: 'is required' }],
      });
    }
    const result = await manager.send(id, req.body);
    res.json({ result: result ?? null });
  });

  // ----- events (SSE) -----
  api.get('/events', (req, res) => {
    const q = parsePart(s.eventsQuerySchema, req.query, 'query');
    const principal = principalOf(req);
    const only = q.session ? new Set(q.session) : null;
    if (only && principal.role !== 'admin') {
      for (const id of only) {
        if (!canAccess(principal, id)) throw new HttpProblem(403, 'FORBIDDEN', `This key may not watch session "${id}".`);
      }
    }
    streams.open(res, principal, only);
  });

  // ----- checkpoints, audit, keys (admin) -----
  const checkpoints = new Map<string, Checkpoint>();
  async function checkpointStats(stream: string): Promise<CheckpointStats> {
    if (options.checkpointStats) return options.checkpointStats(stream);
    let cp = checkpoints.get(stream);
    if (!cp) {
      cp = manager.checkpoint(stream);
      checkpoints.set(stream, cp);
    }
    return cp.stats();
  }

  api.get('/checkpoints/:stream/stats', async (req, res) => {
    requireAdmin(req);
    const stream = parsePart(s.streamNameSchema, req.params.stream, 'path.stream');
    const stats = await checkpointStats(stream);
    checkpointStreams.add(stream);
    res.json({ stream, ...stats });
  });

  api.get('/audit', async (req, res) => {
    const q = parsePart(s.auditQuerySchema, req.query, 'query');
    const principal = principalOf(req);
    if (principal.role !== 'admin' && (!q.sessionId || !canAccess(principal, q.sessionId))) {
      throw new HttpProblem(403, 'FORBIDDEN', 'A session-scoped key may read the audit log only with ?sessionId= of a session it lists.');
    }
    res.json((await manager.audit(q)).map((entry) => auditFor(principal, entry)));
  });

  // ----- cluster nodes (admin: operational information) -----
  api.get('/nodes', async (req, res) => {
    requireAdmin(req);
    res.json({ self: manager.nodeId, nodes: await manager.nodes() });
  });

  api.post('/nodes/:nodeId/drain', async (req, res) => {
    requireAdmin(req);
    const nodeId = parsePart(s.nodeIdSchema, String(req.params.nodeId ?? ''), 'path.nodeId');
    try {
      // Here: stops this node's sessions and releases their leases; another node: forwarded to it.
      await manager.drain({ nodeId });
    } catch (err) {
      // The library names a node that is not (or no longer) live a validation error of `nodeId`;
      // over HTTP it is a missing resource, like an unknown session or key.
      if (err instanceof ValidationError && err.issues.some((i) => i.path[0] === 'nodeId')) {
        throw new HttpProblem(404, 'NODE_NOT_FOUND', `No live node "${nodeId}" shares this store; GET /api/v1/nodes lists them.`);
      }
      throw err;
    }
    const node = (await manager.nodes()).find((n) => n.nodeId === nodeId) ?? null;
    res.json({ nodeId, node });
  });

  api.get('/keys', (req, res) => {
    requireAdmin(req);
    res.json(keys.list());
  });

  api.post('/keys', (req, res) => {
    requireAdmin(req);
    const body = parsePart(s.createKeySchema, req.body, 'body');
    const { key, info } = keys.create(body);
    res.status(201).json({ ...info, key });
  });

  api.delete('/keys/:keyId', (req, res) => {
    requireAdmin(req);
    if (!keys.revoke(String(req.params.keyId))) throw new HttpProblem(404, 'KEY_NOT_FOUND', `No API key has id "${String(req.params.keyId)}".`);
    res.status(204).end();
  });

  if (options.webhooks) webhookRoutes(api, options.webhooks, { parse: parsePart, requireAdmin });

  api.use((req) => {
    throw new HttpProblem(404, 'NOT_FOUND', `No endpoint ${req.method} /api/v1${req.path}; see /api-docs.`);
  });

  app.use('/api/v1', api);

  // ----- metrics -----
  app.get('/metrics', async (req, res) => {
    requireAdmin(req);
    const statuses = await manager.statuses();
    let nodes: Awaited<ReturnType<SessionManager['nodes']>> = [];
    try {
      nodes = await manager.nodes();
    } catch {
      // The node table could not be read: the scrape goes on without the node gauges.
    }
    const counts = new Map<string, CheckpointStats>();
    for (const stream of checkpointStreams) {
      try {
        counts.set(stream, await checkpointStats(stream));
      } catch {
        // A stream whose store cannot be read is left out rather than failing the scrape.
      }
    }
    let storageUp = true;
    try {
      await options.ping?.();
    } catch {
      storageUp = false;
    }
    res.type('text/plain; version=0.0.4; charset=utf-8').send(
      renderMetrics({ statuses, nodes, checkpoints: counts, http, uptimeSeconds: (Date.now() - startedAt) / 1000, storageUp }),
    );
  });

  app.use((req) => {
    throw new HttpProblem(404, 'NOT_FOUND', `Nothing at ${req.method} ${req.path}.`);
  });

  // Errors → RFC 9457 problem documents.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const where = req.method === 'GET' || req.method === 'DELETE' ? 'query' : 'body';
    const { problem, headers } = toProblem(err, req.originalUrl.split('?')[0] ?? req.path, where);
    if (problem.status >= 500) console.error(`[multisession-server] ${req.method} ${req.path}:`, err);
    if (res.headersSent) {
      res.end();
      return;
    }
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.setHeader('Cache-Control', 'no-store');
    res.status(problem.status).type('application/problem+json').send(JSON.stringify(problem));
  });

  return {
    app,
    closeStreams() {
      stopWatchingKeys();
      traffic.close();
      streams.closeAll();
    },
  };
}

