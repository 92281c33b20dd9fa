import type { Response } from 'express';
import { SESSION_MANAGER_EVENTS, type SessionManager } from 'multisession';
import { canAccess, type Principal } from './api-keys.js';
import type { HttpCounters } from './metrics.js';
import { HttpProblem } from './problem.js';

type EventName = (typeof SESSION_MANAGER_EVENTS)[number];

export interface EventStreamLimits {
  /** Comment line interval that keeps proxies from closing an idle stream. Default 15 s. */
  heartbeatMs?: number;
  /**
   * Most bytes one stream may have waiting to be sent (a client that stopped reading): past it
   * the server drops the connection, so a stalled client cannot make it hold messages forever.
   * Default 1 MiB.
   */
  maxBufferBytes?: number;
  /** Most streams one API key may hold open at once; one more is a `429 TOO_MANY_STREAMS`. Default 10. */
  maxPerKey?: number;
}

interface Stream {
  readonly res: Response;
  readonly keyId: string;
  readonly done: () => void;
}

/** What an error event carries: its name, message and code, never a stack or a cause. */
function sseData(name: EventName, payload: Record<string, unknown>): Record<string, unknown> {
  if (name === 'session.error' || name === 'manager.error') {
    const { error, ...rest } = payload as { error?: Error };
    const code = (error as { code?: unknown } | undefined)?.code;
    return { ...rest, error: { name: error?.name ?? 'Error', message: error?.message ?? '', ...(typeof code === 'string' ? { code } : {}) } };
  }
  return payload;
}

/**
 * The server's open event streams (Server-Sent Events over the manager's events): each filtered
 * to what its key may see, bounded in what it may keep waiting for a slow client, limited in
 * number per key, and ended at once when its key is revoked or the server closes.
 */
export class EventStreams {
  readonly #manager: SessionManager;
  readonly #http: HttpCounters;
  readonly #heartbeatMs: number;
  readonly #maxBuffer: number;
  readonly #maxPerKey: number;
  readonly #streams = new Set<Stream>();

  constructor(manager: SessionManager, http: HttpCounters, limits: EventStreamLimits = {}) {
    this.#manager = manager;
    this.#http = http;
    this.#heartbeatMs = limits.heartbeatMs ?? 15_000;
    this.#maxBuffer = limits.maxBufferBytes ?? 1024 * 1024;
    this.#maxPerKey = limits.maxPerKey ?? 10;
  }

  /** Starts a stream on `res` for `principal` (only the sessions in `only`, when given). */
  open(res: Response, principal: Principal, only: ReadonlySet<string> | null): void {
    const held = [...this.#streams].filter((s) => s.keyId === principal.keyId).length;
    if (held >= this.#maxPerKey) {
      throw new HttpProblem(429, 'TOO_MANY_STREAMS', `This API key has ${held} event streams open, the most it may; close one (or share one stream between tabs) and retry.`, {
        headers: { 'Retry-After': '5' },
      });
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    const listeners: Array<[EventName, (payload: Record<string, unknown>) => void]> = [];
    const heartbeat = setInterval(() => send(': keep-alive\n\n'), this.#heartbeatMs);
    heartbeat.unref();
    const done = (): void => {
      if (!this.#streams.delete(stream)) return;
      clearInterval(heartbeat);
      for (const [name, fn] of listeners) this.#manager.off(name, fn as never);
      this.#http.sseClients -= 1;
    };
    const stream: Stream = { res, keyId: principal.keyId, done };
    const send = (text: string): void => {
      if (res.writableEnded || res.destroyed) return;
      res.write(text);
      // What the client has not taken yet (Node's buffer and the socket's): a reader that stopped.
      if (res.writableLength > this.#maxBuffer) {
        this.#http.sseDropped += 1;
        done();
        res.destroy();
      }
    };
    let seq = 0;
    for (const name of SESSION_MANAGER_EVENTS) {
      const fn = (payload: Record<string, unknown>) => {
        const id = typeof payload.id === 'string' ? payload.id : null;
        if (id === null) {
          if (principal.role !== 'admin' || only) return;
        } else if ((only && !only.has(id)) || !canAccess(principal, id)) return;
        seq += 1;
        send(`id: ${seq}\nevent: ${name}\ndata: ${JSON.stringify(sseData(name, payload))}\n\n`);
      };
      this.#manager.on(name, fn as never);
      listeners.push([name, fn]);
    }
    this.#http.sseClients += 1;
    this.#streams.add(stream);
    res.on('close', done);
    send('retry: 2000\n\n');
    send(`event: hello\ndata: ${JSON.stringify({ at: Date.now(), sessions: only ? [...only] : null })}\n\n`);
  }

  /** Ends every stream of one API key at once (it was revoked), with a last `bye` event. */
  closeKey(keyId: string, reason: string): number {
    let n = 0;
    for (const stream of [...this.#streams]) {
      if (stream.keyId !== keyId) continue;
      n += 1;
      this.#end(stream, reason);
    }
    return n;
  }

  /** Ends every stream (the server is closing). */
  closeAll(reason = 'the server is shutting down'): void {
    for (const stream of [...this.#streams]) this.#end(stream, reason);
  }

  #end(stream: Stream, reason: string): void {
    stream.done();
    if (stream.res.writableEnded || stream.res.destroyed) return;
    stream.res.end(`event: bye\ndata: ${JSON.stringify({ reason })}\n\n`);
  }
}
