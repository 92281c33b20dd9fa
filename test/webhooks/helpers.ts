import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { memoryStorage, type StorageDriver } from 'multisession';
import { postgresStorage } from 'multisession/postgres';
import { sqliteStorage } from 'multisession/sqlite';
import { PG_URL, postgresForTests } from '../helpers/postgres.js';

export const SECRET_KEY = Buffer.alloc(32, 7).toString('base64');

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  path: string;
}

export type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hold';

/**
 * A real webhook receiver on 127.0.0.1: records every request and answers with `answer(request, n)`
 * (`'hold'`: never answers, like a receiver that hangs mid-delivery).
 */
export async function startReceiver(answer: (r: Received, n: number) => Answer = () => ({ status: 204 })): Promise<{
  url: string;
  port: number;
  received: Received[];
  setAnswer(fn: (r: Received, n: number) => Answer): void;
  close(): Promise<void>;
}> {
  const received: Received[] = [];
  let respond = answer;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const r = { headers: req.headers, body, path: req.url ?? '/' };
      received.push(r);
      const a = respond(r, received.length);
      if (a === 'hold') return;
      res.writeHead(a.status, a.headers ?? {});
      res.end(a.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    received,
    setAnswer: (fn) => (respond = fn),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The drivers the webhook tests run on: a fresh, empty store per call. */
export async function driversForTests(): Promise<{ name: string; make: () => Promise<StorageDriver> }[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-webhooks-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const { reachable, freshSchema } = await postgresForTests('ms_webhooks');
  let n = 0;
  const list = [
    { name: 'memory', make: async () => memoryStorage() },
    { name: 'sqlite', make: async () => sqliteStorage({ filename: join(dir, `w${++n}.db`) }) },
  ];
  if (reachable) list.push({ name: 'postgres', make: async () => postgresStorage({ connectionString: PG_URL }, { schema: freshSchema(), poolSize: 3 }) });
  return list;
}
