import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Checkpoint } from '../../src/checkpoint/index.js';

const WORKER = fileURLToPath(new URL('./checkpoint-worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ChaosOptions {
  /** Env the worker needs to reach the store (CHAOS_BACKEND, CHAOS_DB or CHAOS_PG_URL + CHAOS_SCHEMA). */
  env: Record<string, string>;
  /** The parent's view of the same stream. */
  checkpoint: Checkpoint;
  /** The ledger as rows { key, token, writes }. */
  ledger: () => Promise<{ key: string; token: number; writes: number }[]>;
  items: number;
  workers: number;
  leaseMs: number;
  /** Give up after this long (the test then fails). */
  deadlineMs: number;
}

export interface ChaosReport {
  kills: number;
  restarts: number;
  stopMs: number;
  staleTokens: Map<string, number>;
  logs: string[];
  exitCodes: (number | null)[];
}

interface Slot {
  n: number;
  gen: number;
  child: ChildProcess;
  exited: Promise<number | null>;
  victim: boolean;
}

/**
 * Runs the chaos scenario: N worker processes drain the stream while workers are SIGKILLed at
 * random and restarted, and the victim (slot 0) is SIGSTOPped after claiming a batch by hand,
 * longer than its lease, until other workers have taken that batch over; then SIGCONTed so it
 * tries to complete it.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const logDir = mkdtempSync(join(tmpdir(), 'ms-chaos-'));
  const report: ChaosReport = { kills: 0, restarts: 0, stopMs: 0, staleTokens: new Map(), logs: [], exitCodes: [] };
  const slots: Slot[] = [];
  let finished = false;
  let staleResolve: ((line: string) => void) | null = null;
  const stalled = new Promise<string>((resolve) => (staleResolve = resolve));
  let staleDone: () => void = () => {};
  const staleFinished = new Promise<void>((resolve) => (staleDone = resolve));

  const spawnSlot = (n: number, gen: number): Slot => {
    const victim = n === 0 && gen === 0;
    const id = `w${n}g${gen}`;
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...o.env,
        CHAOS_ID: id,
        CHAOS_LOG: join(logDir, `${id}.log`),
        CHAOS_LEASE_MS: String(o.leaseMs),
        CHAOS_STALE: victim ? '1' : '0',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      let i: number;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        if (line.startsWith('STALLED')) staleResolve?.(line);
        if (line.startsWith('STALE-DONE')) staleDone();
      }
    });
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code, signal) => {
        if (code !== 0 && signal !== 'SIGKILL') report.logs.push(`worker ${id} exited ${code ?? signal}: ${stderr}`);
        resolve(code);
      }),
    );
    return { n, gen, child, exited, victim };
  };

  for (let n = 0; n < o.workers; n++) slots.push(spawnSlot(n, 0));
  const started = Date.now();
  const overdue = () => Date.now() - started > o.deadlineMs;

  // Random SIGKILL + restart of the non-victim workers while work remains.
  const killer = (async () => {
    await sleep(1500);
    while (!finished && !overdue()) {
      await sleep(400 + Math.floor(Math.random() * 600));
      const s = await o.checkpoint.stats();
      if (s.done === s.total) break;
      const candidates = slots.filter((x) => !x.victim && x.child.exitCode === null && x.child.signalCode === null);
      const pick = candidates[Math.floor(Math.random() * candidates.length)];
      if (!pick) continue;
      pick.child.kill('SIGKILL');
      await pick.exited;
      report.kills += 1;
      const next = spawnSlot(pick.n, pick.gen + 1);
      slots[slots.indexOf(pick)] = next;
      report.restarts += 1;
    }
  })();

  // The victim: SIGSTOP after it claimed its batch; SIGCONT once others took that batch over.
  const victimRun = (async () => {
    const line = await Promise.race([stalled, sleep(o.deadlineMs).then(() => '')]);
    if (!line) throw new Error('the victim never reported STALLED');
    const victim = slots.find((s) => s.victim)!;
    victim.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    for (const pair of line.slice('STALLED '.length).split(',').filter(Boolean)) {
      const [key, token] = pair.split(':');
      report.staleTokens.set(key!, Number(token));
    }
    // Stop for longer than the lease, until every stale item was re-leased or done by someone else.
    for (;;) {
      await sleep(200);
      if (overdue()) break;
      if (Date.now() - stoppedAt < 2 * o.leaseMs) continue;
      const items = await Promise.all([...report.staleTokens.keys()].map((k) => o.checkpoint.get(k)));
      if (items.every((it) => it && it.token > report.staleTokens.get(it.key)!)) break;
    }
    report.stopMs = Date.now() - stoppedAt;
    victim.child.kill('SIGCONT');
    victim.child.stdin!.write('go\n');
    await Promise.race([staleFinished, sleep(30_000)]);
  })();

  try {
    // Wait until every item is done and every worker has exited.
    for (;;) {
      await sleep(250);
      const s = await o.checkpoint.stats();
      if (s.done === s.total) break;
      if (overdue()) throw new Error(`chaos run overdue: ${JSON.stringify(s)}`);
    }
    finished = true;
    await killer;
    await victimRun;
    report.exitCodes = await Promise.all(
      slots.map((s) => Promise.race([s.exited, sleep(20_000).then(() => -1 as number | null)])),
    );
    for (const f of readdirSync(logDir)) report.logs.push(...readFileSync(join(logDir, f), 'utf8').split('\n').filter(Boolean));
    return report;
  } finally {
    finished = true;
    for (const s of slots) {
      if (s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill('SIGCONT');
        s.child.kill('SIGKILL');
      }
    }
    rmSync(logDir, { recursive: true, force: true });
  }
}

/** Checks every chaos invariant; returns a list of violations (empty when all hold). */
export async function verifyChaos(o: ChaosOptions, report: ChaosReport): Promise<string[]> {
  const problems: string[] = [];
  const stats = await o.checkpoint.stats();
  if (stats.done !== o.items || stats.total !== o.items) problems.push(`stats ${JSON.stringify(stats)}`);

  const finalTokens = new Map<string, number>();
  let cursor: string | null = null;
  do {
    const page = await o.checkpoint.list({ limit: 1000, cursor });
    for (const it of page.items) {
      finalTokens.set(it.key, it.token);
      if (it.status !== 'done') problems.push(`${it.key} is ${it.status}`);
    }
    cursor = page.cursor;
  } while (cursor);

  // The ledger holds each item exactly once, written by the lease that completed it.
  const ledger = await o.ledger();
  if (ledger.length !== o.items) problems.push(`ledger has ${ledger.length} rows, want ${o.items}`);
  if (new Set(ledger.map((r) => r.key)).size !== ledger.length) problems.push('ledger has duplicate keys');
  for (const row of ledger) {
    if (finalTokens.get(row.key) !== row.token) problems.push(`ledger ${row.key} token ${row.token} != final ${finalTokens.get(row.key)}`);
  }

  // Completions: at most one success per key, always with the final token.
  const okByKey = new Map<string, number>();
  const claimed = new Map<string, { at: number; token: number; worker: string }[]>();
  let staleLost = 0;
  let staleOk = 0;
  let lostOnComplete = 0;
  for (const line of report.logs) {
    const [kind, worker, a, b] = line.split(' ');
    if (kind === 'ok') {
      if (okByKey.has(a!)) problems.push(`${a} completed twice`);
      okByKey.set(a!, Number(b));
      if (finalTokens.get(a!) !== Number(b)) problems.push(`${a} completed with stale token ${b}`);
    } else if (kind === 'stale-ok') {
      staleOk += 1;
    } else if (kind === 'stale-lost') {
      staleLost += 1;
      if (b === undefined || !line.endsWith('LEASE_LOST')) problems.push(`stale completion without LeaseLostError: ${line}`);
    } else if (kind === 'lost' && line.includes(' complete ')) {
      lostOnComplete += 1;
    } else if (kind === 'claim') {
      // claim <worker> <ms> key:token,…  (one machine clock for every worker)
      const at = Number(a);
      for (const pair of (b ?? '').split(',')) {
        const [key, token] = pair.split(':');
        claimed.set(key!, [...(claimed.get(key!) ?? []), { at, token: Number(token), worker: worker! }]);
      }
    }
  }
  if (staleOk > 0) problems.push(`${staleOk} stale completions succeeded`);
  if (report.staleTokens.size === 0) problems.push('the victim claimed no stale batch');
  if (staleLost !== report.staleTokens.size) problems.push(`stale-lost ${staleLost} of ${report.staleTokens.size}`);

  // Tokens never went backwards: per key, each later claim carries a larger token than every
  // earlier one (claims of one key are a lease apart, so the log times order them), and the final
  // lease holds the largest token ever issued for the key.
  for (const [key, claims] of claimed) {
    const ordered = [...claims].sort((x, y) => x.at - y.at || x.token - y.token);
    for (let i = 1; i < ordered.length; i++) {
      const prev = ordered[i - 1]!;
      const cur = ordered[i]!;
      if (cur.token <= prev.token && cur.at > prev.at) {
        problems.push(`${key}: token went backwards: ${prev.token} (${prev.worker}) then ${cur.token} (${cur.worker})`);
      }
    }
    const max = Math.max(...claims.map((c) => c.token));
    if (max !== finalTokens.get(key)) problems.push(`${key}: final token ${finalTokens.get(key)} is not the largest issued (${max})`);
  }
  for (const [key, stale] of report.staleTokens) {
    if (!(finalTokens.get(key)! > stale)) problems.push(`${key}: final token ${finalTokens.get(key)} not above stale ${stale}`);
  }
  const errors = report.logs.filter((l) => l.startsWith('worker '));
  problems.push(...errors);
  void lostOnComplete;
  return problems.slice(0, 30);
}
