/**
 * npm run bench:sessions [-- --sessions N] — the core's cost at N sessions (default 100,000) in one
 * process, each figure beside a baseline measured in the same run:
 *   1. create + start N simulated sessions (memory store)          vs  a plain Map of N objects
 *   2. heap per ready session after a forced GC                     vs  heap per plain object
 *   3. CPU spent by health checks, N sessions at 1 s, over 10 s     vs  N empty 1 s timers
 *      (both after a warm-up, so the window is the steady state)
 *   4. list() with a filter, a page of 100 (the median of 50 pages)  vs  filter + slice of a plain array
 * Targets at 100,000: (1) under 5 s, (2) at most 4 KB per session, (3) under 10 % of one core,
 * (4) under 50 ms.
 */
// Measures the built package (dist/), as users run it: `npm run bench:sessions` builds first.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { SessionManager } from '../dist/index.js';
import { simulatedAdapter } from '../dist/testing/index.js';

const { values: args } = parseArgs({ options: { sessions: { type: 'string' } } });
const N = Number(args.sessions ?? process.env.BENCH_SESSIONS ?? 100_000);
if (!Number.isInteger(N) || N < 100) throw new Error('--sessions must be an integer of at least 100');
const HEALTH_WINDOW_MS = Number(process.env.BENCH_HEALTH_WINDOW_MS ?? 10_000);
const WARM_UP_MS = Math.max(2_000, N / 20);
const gc = globalThis.gc;
if (!gc) throw new Error('run with --expose-gc (npm run bench:sessions does)');

function heap() {
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
}
const ms = (ns) => Number(ns) / 1e6;
const fmt = (n, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
function row(what, value, baseline, ratio, target) {
  rows.push([what, value, baseline, ratio, target]);
}

// ---- baseline 1+2: a plain Map of N objects with the same fields as a session snapshot
const heap0 = heap();
const t0 = process.hrtime.bigint();
const plain = new Map();
for (let i = 0; i < N; i++) {
  const id = `s${i}`;
  plain.set(id, {
    id, platform: 'simulated', config: { greeting: 'hello', bidLimit: 10 }, hasCredentials: true, state: 'ready',
    desiredState: 'running', auth: null, health: 'healthy', labels: { team: i % 10 === 0 ? 'a' : 'b' }, metadata: null, priority: 5,
    capacity: null, autoStart: false, idleTimeoutMs: null, allowSharedCredentials: false, createdAt: Date.now(),
    updatedAt: Date.now(), lastActivityAt: Date.now(), lastError: null, transitions: [], version: 1,
  });
}
const plainMs = ms(process.hrtime.bigint() - t0);
const plainHeapPer = (heap() - heap0) / N;

// ---- baseline 4: a page of 100 matching objects from a plain array sorted by id
const sortedPlain = [...plain.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
const plainPage = [];
for (let p = 0; p < 50; p++) {
  const t = process.hrtime.bigint();
  const start = Math.floor((p / 50) * sortedPlain.length);
  const page = sortedPlain.slice(start).filter((s) => s.labels.team === 'a' && s.state === 'ready').slice(0, 100);
  JSON.stringify(page);
  plainPage.push(ms(process.hrtime.bigint() - t));
}
plain.clear();
sortedPlain.length = 0;

// ---- 1+2: create + start N simulated sessions
const heap1 = heap();
const manager = new SessionManager({
  adapters: [simulatedAdapter()],
  maxSessions: N,
  health: { intervalMs: 1_000, timeoutMs: 500, jitter: 0.5 },
  logBufferSize: 50,
});
await manager.open();
const t1 = process.hrtime.bigint();
const BATCH = 500;
for (let i = 0; i < N; i += BATCH) {
  await Promise.all(
    Array.from({ length: Math.min(BATCH, N - i) }, async (_, j) => {
      const id = `s${i + j}`;
      await manager.create({ id, platform: 'simulated', credentials: { token: `token-${id}` }, labels: { team: (i + j) % 10 === 0 ? 'a' : 'b' } });
      await manager.start(id);
    }),
  );
}
const createStartMs = ms(process.hrtime.bigint() - t1);
const perSession = (heap() - heap1) / N;

// ---- 4: list() pages with a filter (labels and state), page size 100, from cursors across the range
let cursor;
const pageTimes = [];
let listed = 0;
for (let p = 0; p < 50; p++) {
  const t = process.hrtime.bigint();
  const page = await manager.list({ labels: { team: 'a' }, state: 'ready', limit: 100, ...(cursor ? { cursor } : {}) });
  JSON.stringify(page);
  pageTimes.push(ms(process.hrtime.bigint() - t));
  listed += page.items.length;
  cursor = page.nextCursor ?? undefined;
}
if (listed === 0) throw new Error('list() found no ready session');

// ---- 3: health-check CPU over the window, vs N empty timers at the same interval
const elu = {};
async function cpuOver(windowMs, label) {
  const c0 = process.cpuUsage();
  const e0 = performance.eventLoopUtilization();
  await new Promise((r) => setTimeout(r, windowMs));
  const c = process.cpuUsage(c0);
  elu[label] = performance.eventLoopUtilization(e0).utilization;
  return (c.user + c.system) / 1000; // ms, every thread of the process
}
let checks = 0;
manager.on('session.health', () => checks++);
// Warm-up: let the first rounds of checks run (JIT, the write-behind flush of the starts)
// so the window measures the steady state.
await new Promise((r) => setTimeout(r, WARM_UP_MS));
const healthCpuMs = await cpuOver(HEALTH_WINDOW_MS, 'health');
await manager.close();

const timers = [];
let ticks = 0;
for (let i = 0; i < N; i++) timers.push(setInterval(() => ticks++, 1_000));
await new Promise((r) => setTimeout(r, WARM_UP_MS)); // the same warm-up
const timerCpuMs = await cpuOver(HEALTH_WINDOW_MS, 'timers');
timers.forEach(clearInterval);

const scale = N / 100_000; // the targets are for 100,000 sessions
const healthShare = healthCpuMs / HEALTH_WINDOW_MS;
const timerShare = timerCpuMs / HEALTH_WINDOW_MS;
const n = N.toLocaleString('en-US');
const createTarget = 5_000 * scale;
row(`create+start ${n} sessions`, `${fmt(createStartMs, 0)} ms`, `${fmt(plainMs, 1)} ms (Map of objects)`, `${fmt(createStartMs / plainMs)}x`, createStartMs < createTarget ? `PASS < ${fmt(createTarget / 1000)} s` : `FAIL ≥ ${fmt(createTarget / 1000)} s`);
row('heap per ready session', `${fmt(perSession / 1024, 2)} KB`, `${fmt(plainHeapPer / 1024, 2)} KB (plain object)`, `${fmt(perSession / plainHeapPer)}x`, perSession <= 4 * 1024 ? 'PASS ≤ 4 KB' : 'FAIL > 4 KB');
row(`health checks, ${n} at 1 s for ${HEALTH_WINDOW_MS / 1000} s`, `${fmt(healthShare * 100, 2)} % of a core`, `${fmt(timerShare * 100, 2)} % (empty timers)`, `${fmt(healthShare / Math.max(timerShare, 1e-9))}x`, healthShare < 0.1 * scale ? `PASS < ${fmt(10 * scale)} %` : `FAIL ≥ ${fmt(10 * scale)} %`);
const listMs = median(pageTimes);
row(`list(): filter, page of 100, of ${n}`, `${fmt(listMs, 2)} ms`, `${fmt(median(plainPage), 2)} ms (filter + slice)`, `${fmt(listMs / Math.max(median(plainPage), 1e-3))}x`, listMs < 50 ? 'PASS < 50 ms' : 'FAIL ≥ 50 ms');

const widths = [0, 1, 2, 3, 4].map((c) => Math.max(...[['measure', 'multisession', 'baseline', 'ratio', 'target'], ...rows].map((r) => r[c].length)));
const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
console.log(line(['measure', 'multisession', 'baseline', 'ratio', 'target']));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
rows.forEach((r) => console.log(line(r)));
console.log(`(health: ${checks.toLocaleString()} non-healthy events in the window; main-thread event-loop utilisation ${fmt(elu.health * 100, 2)} % vs ${fmt(elu.timers * 100, 2)} % for the empty timers, ${ticks.toLocaleString()} ticks)`);
console.log(`(list: ${listed.toLocaleString()} sessions over 50 pages, the slowest page ${fmt(Math.max(...pageTimes), 2)} ms)`);
console.log(`(CPU is process time over every thread, so a loaded machine inflates it: load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`);
