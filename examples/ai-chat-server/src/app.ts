import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createServer, type Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { CapacityError, MultisessionError, SessionManager, ValidationError, isMessageFrom, systemClock, type Clock } from 'multisession';
import { openaiChat, type OpenAIChatReply } from 'multisession/adapters/openai-chat';
import { FileError, SessionFiles, type FileLimits } from './files.js';
import { ChatSessions, type BackendSettings } from './sessions.js';

/**
 * The AI chat server of seed 002 on `multisession`: a session per client, made on its first
 * request and found again by the `x-session-id` header or the `sid` cookie; its own history,
 * files and statistics; clear (the conversation) vs delete (everything); a 60-minute idle expiry.
 */

export interface ChatServerOptions {
  backend: BackendSettings;
  /** Idle time after which a client's session is stopped and deleted. Default 60 minutes. */
  idleTimeoutMs?: number;
  /** Most client sessions at once (a new client past it gets 503). Default 1,000. */
  maxSessions?: number;
  fileLimits?: FileLimits;
  /** The manager's clock (a manual one in tests: idle expiry without waiting an hour). */
  clock?: Clock;
  port?: number;
  host?: string;
}

export interface ChatServer {
  readonly url: string;
  readonly manager: SessionManager;
  readonly sessions: ChatSessions;
  readonly server: Server;
  close(): Promise<void>;
}

const COOKIE = 'sid';

function cookieOf(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

type Handler = (req: Request, res: Response, sid: string) => Promise<void>;

export async function startChatServer(options: ChatServerOptions): Promise<ChatServer> {
  const idleTimeoutMs = options.idleTimeoutMs ?? 60 * 60_000;
  const chat = openaiChat();
  const manager = new SessionManager({ adapters: [chat], clock: options.clock ?? systemClock, maxSessions: options.maxSessions ?? 1_000 });
  await manager.open();
  const sessions = new ChatSessions(manager, { backend: options.backend, idleTimeoutMs, fileLimits: options.fileLimits });

  const app = express();
  app.disable('x-powered-by');
  app.use(express.static(fileURLToPath(new URL('../public/', import.meta.url)))); // the chat page at /

  /** Runs `handler` with the client's session (made now if it has none), and tells the client its id. */
  const withSession =
    (handler: Handler, options: { create: boolean } = { create: true }) =>
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        const asked = req.get('x-session-id') ?? cookieOf(req, COOKIE);
        let sid: string;
        if (options.create) {
          const { session, created } = await sessions.resolve(asked);
          sid = session.id;
          if (created) res.status(201);
        } else {
          const found = await sessions.find(asked);
          if (!found) return void res.status(404).json({ error: { code: 'NO_SESSION', message: 'this client has no session (it expired or was deleted); any request to /api/chat or /api/files makes a new one' } });
          sid = found.id;
        }
        res.set('x-session-id', sid);
        res.cookie(COOKIE, sid, { httpOnly: true, sameSite: 'lax', path: '/', maxAge: idleTimeoutMs });
        await handler(req, res, sid);
      } catch (error) {
        next(error);
      }
    };

  app.get('/health', async (_req, res) => {
    res.json({ ok: true, backend: new URL(options.backend.baseUrl).host, model: options.backend.model, sessions: (await manager.statuses()).length });
  });

  // Chat. `{ message, stream? }`; with `stream: true` the answer is Server-Sent Events: `delta`
  // events as the model writes, then `done` with the whole reply.
  app.post(
    '/api/chat',
    express.json({ limit: '256kb' }),
    (req, res, next) => {
      // Checked before a session is made: bad input changes nothing.
      const body = (req.body ?? {}) as { message?: unknown; stream?: unknown };
      if (typeof body.message !== 'string' || body.message.trim() === '') {
        return void res.status(400).json({ error: { code: 'VALIDATION', message: 'message must be a non-empty string' } });
      }
      if (body.stream !== undefined && typeof body.stream !== 'boolean') {
        return void res.status(400).json({ error: { code: 'VALIDATION', message: 'stream must be true or false' } });
      }
      next();
    },
    withSession(async (req, res, sid) => {
      const body = req.body as { message: string; stream?: boolean };
      const system = [options.backend.systemPrompt, await sessions.files(sid).asContext()].filter(Boolean).join('\n\n');
      const action = { text: body.message, system, stream: body.stream === true };
      if (body.stream !== true) {
        const reply = (await manager.send(sid, action)) as OpenAIChatReply;
        return void res.json({ sessionId: sid, reply: reply.text, usage: reply.usage });
      }
      res.writeHead(res.statusCode, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      const forward = (e: Parameters<typeof isMessageFrom>[1]) => {
        if (e.id === sid && isMessageFrom(chat, e) && e.message.kind === 'delta') res.write(`event: delta\ndata: ${JSON.stringify({ text: e.message.text })}\n\n`);
      };
      manager.on('session.message', forward);
      try {
        const reply = (await manager.send(sid, action)) as OpenAIChatReply;
        res.write(`event: done\ndata: ${JSON.stringify({ sessionId: sid, reply: reply.text, usage: reply.usage })}\n\n`);
      } catch (error) {
        res.write(`event: error\ndata: ${JSON.stringify({ message: error instanceof Error ? error.message : String(error) })}\n\n`);
      } finally {
        manager.off('session.message', forward);
        res.end();
      }
    }),
  );

  app.get('/api/session', withSession(async (_req, res, sid) => void res.json(await sessions.details(sid)), { create: false }));
  app.post(
    '/api/session/clear',
    withSession(async (_req, res, sid) => void res.json({ sessionId: sid, cleared: await sessions.clearHistory(sid) }), { create: false }),
  );
  app.delete(
    '/api/session',
    withSession(
      async (_req, res, sid) => {
        await sessions.delete(sid);
        res.removeHeader('set-cookie');
        res.removeHeader('x-session-id');
        res.clearCookie(COOKIE, { path: '/' });
        res.status(204).end();
      },
      { create: false },
    ),
  );

  // Files: raw bytes in, `?name=` names them. Only ever this client's session's KV.
  app.post(
    '/api/files',
    express.raw({ type: () => true, limit: (options.fileLimits?.maxFileBytes ?? 256 * 1024) + 1 }),
    (req, _res, next) => {
      try {
        SessionFiles.checkName(req.query.name); // before a session is made
        next();
      } catch (error) {
        next(error);
      }
    },
    withSession(async (req, res, sid) => {
      await manager.touch(sid);
      const info = await sessions.files(sid).save(String(req.query.name ?? ''), req.get('content-type') ?? '', Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0), Date.now());
      res.status(201).json(info);
    }),
  );
  app.get('/api/files', withSession(async (_req, res, sid) => void res.json({ files: await sessions.files(sid).list() }), { create: false }));
  app.get(
    '/api/files/:name',
    withSession(
      async (req, res, sid) => {
        await manager.touch(sid);
        const file = await sessions.files(sid).read(String(req.params.name));
        if (!file) return void res.status(404).json({ error: { code: 'NO_FILE', message: 'this session has no file of that name' } });
        res.type(file.type).set('content-disposition', `attachment; filename="${file.name}"`).send(file.bytes);
      },
      { create: false },
    ),
  );
  app.delete(
    '/api/files/:name',
    withSession(
      async (req, res, sid) => {
        const deleted = await sessions.files(sid).delete(String(req.params.name));
        res.status(deleted ? 204 : 404).end();
      },
      { create: false },
    ),
  );

  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status =
      error instanceof FileError ? error.status
      : error instanceof ValidationError ? 400
      : error instanceof CapacityError ? 503
      : (error as { status?: unknown }).status === 413 ? 413
      : error instanceof MultisessionError && error.code === 'RATE_LIMITED' ? 429
      : 502;
    const code = error instanceof FileError || error instanceof MultisessionError ? error.code : status === 413 ? 'FILE_TOO_LARGE' : 'BACKEND';
    if (!res.headersSent) res.status(status).json({ error: { code, message: error instanceof Error ? error.message : String(error) } });
  });

  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    manager,
    sessions,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sessions.settled();
      await manager.close();
    },
  };
}
