import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type RunningServer, type ServerOptions } from '../src/server.js';

export interface TestServer {
  server: RunningServer;
  url: string;
  adminKey: string;
  dir: string;
  /** fetch against the server with the admin key (or `key`), JSON in and out. */
  call(method: string, path: string, init?: { body?: unknown; key?: string | null; headers?: Record<string, string>; raw?: string }): Promise<Reply>;
  close(): Promise<void>;
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export async function startTestServer(options: ServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-server-'));
  const server = await createServer({
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    print: () => {},
    rateLimit: { max: 10_000, windowMs: 60_000 },
    ...options,
  });
  const adminKey = server.createdAdminKey ?? options.apiKey;
  if (!adminKey) throw new Error('test server has no admin key');
  const url = server.url;
  return {
    server,
    url,
    adminKey,
    dir,
    async call(method, path, init = {}) {
      const headers: Record<string, string> = { ...(init.headers ?? {}) };
      const key = init.key === undefined ? adminKey : init.key;
      if (key !== null) headers.authorization = `Bearer ${key}`;
      let body: string | undefined;
      if (init.raw !== undefined) body = init.raw;
      else if (init.body !== undefined) {
        body = JSON.stringify(init.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(url + path, { method, headers, body });
      const text = await res.text();
      let json: unknown = undefined;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, text, json };
    },
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls the session's status until it is in one of `states` (no wall-time assertions: just a bound). */
export async function waitForState(t: TestServer, id: string, states: string[], key?: string): Promise<any> {
  for (let i = 0; i < 400; i++) {
    const r = await t.call('GET', `/api/v1/sessions/${id}/status`, key ? { key } : {});
    if (r.status === 200 && states.includes(r.json.state)) return r.json;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`session ${id} never reached ${states.join('|')}`);
}

/** The demo adapter's QR payload is `multisession-demo:<id>:<code>`: the code a phone would read. */
export function codeFromQr(payload: string): string {
  const code = payload.split(':').pop();
  if (!code) throw new Error(`unexpected QR payload ${payload}`);
  return code;
}

export interface EventStream {
  events: Array<{ event: string; data: any }>;
  /** Resolves once the collected events satisfy `until`. */
  until(pred: (events: Array<{ event: string; data: any }>) => boolean): Promise<Array<{ event: string; data: any }>>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens a Server-Sent Events stream with fetch; resolves once the server's `hello` arrived (subscribed). */
export async function openEvents(url: string): Promise<EventStream> {
  const ac = new AbortController();
  const res = await fetch(url, { signal: ac.signal });
  if (res.status !== 200 || !res.body) throw new Error(`events answered ${res.status}`);
  const events: Array<{ event: string; data: any }> = [];
  const waiters = new Set<() => void>();
  const decoder = new TextDecoder();
  let buffer = '';
  const reader = res.body.getReader();
  let markEnded: () => void = () => {};
  const ended = new Promise<void>((resolve) => (markEnded = resolve));
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let idx;
        while ((idx = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, idx);
          buffer = buffer.slice(idx + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length) events.push({ event, data: JSON.parse(data.join('\n')) });
        }
        for (const w of [...waiters]) w();
      }
    } catch {
      // aborted
    }
    markEnded();
  })();
  const stream: EventStream = {
    events,
    ended,
    until(pred) {
      return new Promise((resolve) => {
        const check = () => {
          if (pred(events)) {
            waiters.delete(check);
            resolve(events);
          }
        };
        waiters.add(check);
        check();
      });
    },
    close() {
      ac.abort();
    },
  };
  await stream.until((evs) => evs.some((e) => e.event === 'hello'));
  return stream;
}
