/**
 * npm run bench:sessions — the core's cost at 10,000 sessions, each figure beside a baseline
 * measured in the same run:
 *   1. create + start 10,000 simulated sessions (memory store)   vs  a plain Map of 10,000 objects
 *   2. heap per ready session after a forced GC                   vs  heap per plain object
 *   3. CPU spent by health checks, 10,000 sessions at 1 s, 10 s   vs  10,000 empty 1 s timers
 *      (both after a 2 s warm-up, so the window is the steady state)
 * Targets: (1) under 2 s, (2) at most 5 KB per session, (3) under 5 % of one core.
 */
// Measures the built package (dist/), as users run it: `npm run bench:sessions` builds first.
import os from 'node:os';
import { SessionManager } from '../dist/index.js';
import { simulatedAdapter } from '../dist/testing/index.js';

const N = Number(process.env.BENCH_SESSIONS ?? 10_000);
const HEALTH_WINDOW_MS = Number(process.env.BENCH_HEALTH_WINDOW_MS ?? 10_000);
const gc = globalThis.gc;
if (!gc) throw new Error('run with --expose-gc (npm run bench:sessions does)');

function heap() {
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
}
const ms = (ns) => Number(ns) / 1e6;
const fmt = (n, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
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
    desiredState: 'running', auth: null, health: 'healthy', labels: { team: 'a' }, metadata: null, priority: 5,
    capacity: null, autoStart: false, idleTimeoutMs: null, allowSharedCredentials: false, createdAt: Date.now(),
    updatedAt: Date.now(), lastActivityAt: Date.now(), lastError: null, transitions: [], version: 1,
  });
}
const plainMs = ms(process.hrtime.bigint() - t0);
const plainHeapPer = (heap() - heap0) / N;
plain.clear();

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
      await manager.create({ id, platform: 'simulated', credentials: { token: `token-${id}` }, labels: { team: 'a' } });
      await manager.start(id);
    }),
  );
}
const createStartMs = ms(process.hrtime.bigint() - t1);
const ready = (await manager.list({ state: 'ready' })).items.length;
if (ready !== N) throw new Error(`only ${ready} of ${N} sessions are ready`);
const perSession = (heap() - heap1) / N;

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
// Warm-up: let the first round of checks run (JIT, the write-behind flush of 10,000 starts)
// so the window measures the steady state.
await new Promise((r) => setTimeout(r, 2_000));
const healthCpuMs = await cpuOver(HEALTH_WINDOW_MS, 'health');
await manager.close();

const timers = [];
let ticks = 0;
for (let i = 0; i < N; i++) timers.push(setInterval(() => ticks++, 1_000));
await new Promise((r) => setTimeout(r, 2_000)); // the same warm-up
const timerCpuMs = await cpuOver(HEALTH_WINDOW_MS, 'timers');
timers.forEach(clearInterval);

const healthShare = healthCpuMs / HEALTH_WINDOW_MS;
const timerShare = timerCpuMs / HEALTH_WINDOW_MS;
row(`create+start ${N.toLocaleString()} sessions`, `${fmt(createStartMs, 0)} ms`, `${fmt(plainMs, 1)} ms (Map of objects)`, `${fmt(createStartMs / plainMs)}x`, createStartMs < 2_000 ? 'PASS < 2 s' : 'FAIL ≥ 2 s');
row('heap per ready session', `${fmt(perSession / 1024, 2)} KB`, `${fmt(plainHeapPer / 1024, 2)} KB (plain object)`, `${fmt(perSession / plainHeapPer)}x`, perSession <= 5 * 1024 ? 'PASS ≤ 5 KB' : 'FAIL > 5 KB');
row(`health checks, ${N.toLocaleString()} at 1 s for ${HEALTH_WINDOW_MS / 1000} s`, `${fmt(healthShare * 100, 2)} % of a core`, `${fmt(timerShare * 100, 2)} % (empty timers)`, `${fmt(healthShare / Math.max(timerShare, 1e-9))}x`, healthShare < 0.05 ? 'PASS < 5 %' : 'FAIL ≥ 5 %');

const widths = [0, 1, 2, 3, 4].map((c) => Math.max(...[['measure', 'multisession', 'baseline', 'ratio', 'target'], ...rows].map((r) => r[c].length)));
const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
console.log(line(['measure', 'multisession', 'baseline', 'ratio', 'target']));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
rows.forEach((r) => console.log(line(r)));
console.log(`(health: ${checks.toLocaleString()} non-healthy events in the window; main-thread event-loop utilisation ${fmt(elu.health * 100, 2)} % vs ${fmt(elu.timers * 100, 2)} % for the empty timers, ${ticks.toLocaleString()} ticks)`);
console.log(`(CPU is process time over every thread, so a loaded machine inflates it: load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`);
