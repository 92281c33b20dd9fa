/**
 * `npm run bench:server`: requests per second of the example server's paged session list,
 * `GET /api/v1/sessions?limit=100` at concurrency 50, over 10,000 ready sessions (memory store,
 * the library's simulated adapter), beside baselines measured in the same run on a bare Express
 * app on 127.0.0.1 that answers the same 100 session snapshots (the same bytes as a page):
 *
 *   bare res.json(): a precomputed array, serialized per request as the server does (the target's baseline)
 *   bare JSON text:  the same array serialized once, sent as text (no JSON work per request at all)
 *
 *   (a) the first page, admin key                           target ≥ 0.5× bare res.json()
 *   (b) a page at a random place (a cursor), admin key       (for information)
 *   (c) a session-scoped key's page (the key lists 1,000)    (for information)
 *   p50 / p99 latency of each
 *
 * The servers run in this process; the load (bench/server-load.mjs: an undici Pool of 50
 * keep-alive connections, 50 loops) runs in a child process, so the client's CPU neither slows
 * the servers' event loop nor counts in their CPU time per request, which is printed too: on a
 * busy machine it is steadier than requests per second. Each figure is the best of ROUNDS rounds
 * (baselines and server taking turns): on a shared machine the least-disturbed round is the
 * steadiest figure; the median is shown too.
 *
 *   npm run bench:server
 *   SESSIONS=10000 ROUNDS=5 BENCH_SECONDS=3 CONCURRENCY=50 npm run bench:server
 *   ONLY=first ROUNDS=2 node --cpu-prof --import tsx bench/server.ts   # profile one figure
 */
import { fork } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';

const SESSIONS = Number(process.env.SESSIONS ?? 10_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 50);
const PAGE = 100;
const TARGET = 0.5;

/** What bench/server-load.mjs is given, and what it answers. */
interface LoadJob {
  origin: string;
  /** Request paths, taken in turn. */
  paths: string[];
  headers: Record<string, string>;
  concurrency: number;
  warmUpMs: number;
  durationMs: number;
}

interface LoadResult {
  perSec: number;
  p50: number;
  p99: number;
  bytesPerResponse: number;
  failures: number;
  /** CPU time of this process (the server; the load runs elsewhere) per request, in µs. */
  cpuPerRequestUs: number;
}

/** Runs one load in a fresh child process; adds the CPU this process spent meanwhile, per request. */
function inChild(job: LoadJob): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(new URL('./server-load.mjs', import.meta.url), { execArgv: [] });
    let cpu0: NodeJS.CpuUsage;
    let result: Omit<LoadResult, 'cpuPerRequestUs'> & { sent: number } | undefined;
    child.once('spawn', () => {
      cpu0 = process.cpuUsage();
      child.send(job);
    });
    child.once('message', (r) => {
      const cpu = process.cpuUsage(cpu0);
      result = r as typeof result;
      resolve({ ...result!, cpuPerRequestUs: (cpu.user + cpu.system) / result!.sent });
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (!result) reject(new Error(`load process exited with ${code} before answering`));
    });
  });
}

function listen(server: Server): Promise<string> {
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

async function main(): Promise<void> {
  const { createServer } = await import('node:http');
  const { default: express } = await import('express');
  const { SessionManager, memoryStorage } = await import('multisession');
  const { simulatedAdapter } = await import('multisession/testing');
  const { ApiKeyStore, createApp } = await import('../examples/express-server/src/index.js');

  // ---- the example server over 10,000 ready sessions
  const manager = new SessionManager({
    storage: memoryStorage(),
    adapters: [simulatedAdapter({ name: 'demo' })],
    maxSessions: SESSIONS,
    health: { intervalMs: 3_600_000 },
  });
  await manager.open();
  const ids = Array.from({ length: SESSIONS }, (_, i) => `bot-${String(i).padStart(6, '0')}`);
  const t0 = performance.now();
  await Promise.all(
    ids.map(async (id, i) => {
      await manager.create({
        id,
        platform: 'demo',
        credentials: { token: `token-${id}` },
        config: { greeting: `hello ${i}` },
        labels: { shard: String(i % 16), team: i % 2 ? 'blue' : 'green' },
        metadata: { owner: `owner-${i}` },
      });
      await manager.start(id);
    }),
  );
  const setupMs = performance.now() - t0;
  const keys = new ApiKeyStore({ file: null });
  const admin = keys.create({ name: 'bench-admin', role: 'admin' }).key;
  const scoped = keys.create({ name: 'bench-scoped', role: 'session', sessions: ids.filter((_, i) => i % 10 === 3).slice(0, 1_000) }).key;
  const handle = createApp(manager, { keys, rateLimit: { max: 1e12, windowMs: 60_000 }, webPage: false });
  const server = createServer(handle.app);
  const serverUrl = await listen(server);

  // Cursors of every page, for (b).
  const cursors: string[] = [];
  for (let page = await manager.list({ limit: PAGE }); page.nextCursor; page = await manager.list({ limit: PAGE, cursor: page.nextCursor })) {
    cursors.push(page.nextCursor);
  }
  const shuffled = cursors.map((c) => ({ c, k: Math.random() })).sort((a, b) => a.k - b.k).map((x) => x.c);

  // ---- the baseline: a bare Express app answering the same 100 snapshots
  const firstPage = (await manager.list({ limit: PAGE })).items; // snapshots are copies: nothing else changes them
  const firstPageText = JSON.stringify(firstPage);
  const bare = express();
  bare.get('/api/v1/sessions', (_req, res) => {
    res.json(firstPage);
  });
  // The same bytes, serialized once: what a route costs with no JSON work per request at all.
  bare.get('/api/v1/sessions.json', (_req, res) => {
    res.type('application/json').send(firstPageText);
  });
  const bareServer = createServer(bare);
  const bareUrl = await listen(bareServer);

  const job = (origin: string, paths: string[], key?: string): LoadJob => ({
    origin,
    paths,
    headers: key ? { authorization: `Bearer ${key}` } : {},
    concurrency: CONCURRENCY,
    warmUpMs: 500,
    durationMs: SECONDS * 1000,
  });
  const runs = {
    bare: job(bareUrl, ['/api/v1/sessions']),
    bareText: job(bareUrl, ['/api/v1/sessions.json']),
    first: job(serverUrl, [`/api/v1/sessions?limit=${PAGE}`], admin),
    random: job(serverUrl, shuffled.map((c) => `/api/v1/sessions?limit=${PAGE}&cursor=${c}`), admin),
    scoped: job(serverUrl, [`/api/v1/sessions?limit=${PAGE}`], scoped),
  };
  // ONLY=first,bare runs just those, without the table (to profile one figure).
  const only = process.env.ONLY ? new Set(process.env.ONLY.split(',')) : null;
  const results: Record<keyof typeof runs, LoadResult[]> = { bare: [], bareText: [], first: [], random: [], scoped: [] };

  console.log(`bench:server — ${SESSIONS.toLocaleString('en')} ready sessions (memory store, created and started in ${(setupMs / 1000).toFixed(1)} s)`);
  console.log(`GET /api/v1/sessions?limit=${PAGE}, concurrency ${CONCURRENCY}, ${ROUNDS} rounds of ${SECONDS} s each (after 0.5 s of warm-up)\n`);
  for (let round = 0; round < ROUNDS; round++) {
    // Baseline and server take turns, starting with each in alternate rounds.
    const order = (round % 2 ? ['first', 'bare', 'random', 'bareText', 'scoped'] : ['bare', 'first', 'bareText', 'scoped', 'random']) as Array<keyof typeof runs>;
    for (const name of order) {
      if (only && !only.has(name)) continue;
      const r = await inChild(runs[name]);
      if (r.failures) throw new Error(`${name}: ${r.failures} responses were not 200`);
      results[name].push(r);
    }
    console.log(`  round ${round + 1}: ${(Object.keys(runs) as Array<keyof typeof runs>).filter((n) => results[n].length > round).map((n) => `${n} ${Math.round(results[n].at(-1)!.perSec)}/s`).join(', ')}`);
  }

  if (!only) summary(results);

  handle.closeStreams();
  const closed = Promise.all([new Promise((r) => server.close(r)), new Promise((r) => bareServer.close(r))]);
  server.closeAllConnections();
  bareServer.closeAllConnections();
  await closed;
  await manager.close();
}

/** The table: each figure beside the bare endpoints, with the ratios and the verdict on the target. */
function summary(results: Record<'bare' | 'bareText' | 'first' | 'random' | 'scoped', LoadResult[]>): void {
  const best = (rs: LoadResult[]) => rs.reduce((a, b) => (b.perSec > a.perSec ? b : a));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  /** The least CPU a request took in any round: the least-disturbed round. */
  const cpu = (rs: LoadResult[]) => Math.min(...rs.map((r) => r.cpuPerRequestUs));
  const fmt = (n: number, w: number, d = 0) => n.toLocaleString('en', { maximumFractionDigits: d, minimumFractionDigits: d }).padStart(w);
  const base = results.bare;
  const columns = ['best/s', 'median/s', 'p50 ms', 'p99 ms', 'bytes', 'CPU µs/req', 'best', 'median', 'by CPU'];
  console.log(`\n${''.padEnd(38)}${columns.map((c, i) => c.padStart(i === 5 ? 12 : 9)).join('')}`);
  const line = (label: string, rs: LoadResult[], target: boolean) => {
    const b = best(rs);
    const ratios = [b.perSec / best(base).perSec, median(rs.map((r) => r.perSec)) / median(base.map((r) => r.perSec)), cpu(base) / cpu(rs)];
    const verdict = target ? `  ${ratios[0]! >= TARGET && ratios[1]! >= TARGET ? 'ok' : 'MISSED'} (target ≥ ${TARGET}×)` : '';
    console.log(
      `${label.padEnd(38)}${fmt(b.perSec, 9)}${fmt(median(rs.map((r) => r.perSec)), 9)}${fmt(b.p50, 9, 1)}${fmt(b.p99, 9, 1)}` +
        `${fmt(b.bytesPerResponse, 9)}${fmt(cpu(rs), 12)}${ratios.map((r) => `${fmt(r, 8, 2)}×`).join('')}${verdict}`,
    );
  };
  line('bare Express, res.json(100 snapshots)', results.bare, false);
  line('bare Express, the JSON text sent', results.bareText, false);
  line('(a) server, first page, admin key', results.first, true);
  line('(b) server, a random page (cursor)', results.random, false);
  line("(c) server, a scoped key's page", results.scoped, false);
  console.log('\nRatios are to bare res.json(): best round to best round, median to median, and its CPU per request');
  console.log('to the server\'s (the least of any round). p50/p99 are of the best round.');
}

await main();
