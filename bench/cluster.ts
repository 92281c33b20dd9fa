/**
 * `npm run bench:cluster`: the cluster (several `SessionManager` processes on one store) on a
 * SQLite file and on PostgreSQL, with real node processes (bench/cluster-node.ts), each figure
 * beside a baseline measured or set in the same run:
 *
 *   1. Failover: 3 nodes, 30 sessions, lease TTL 2,000 ms. Each round stops the node running the
 *      most sessions and measures the time until every one of its sessions runs on another node
 *      (the survivors polled every 20 ms), then starts a replacement so 3 stay.
 *        SIGKILL: on one machine a node whose process is gone is evicted by the next node that
 *                 looks (no wait for the lease), so this is the same-machine case;
 *        SIGSTOP: a frozen process is not known dead, so its leases must expire: the case of a
 *                 node lost on another machine.
 *      p50 and p99 beside the TTL (what a lease expiry alone costs) and the target TTL + 1 s (p99).
 *      The probe adapter's log of every connection start and stop is checked too: no session ran
 *      in two processes at once.
 *   2. 10,000 sessions created (and started) on one of 3 nodes, in batches of 500 (Promise.all),
 *      lease TTL 15,000 ms (the default): the time from the creates being done until all are ready
 *      somewhere, and the spread (min / max per node) when all are ready and once settled against
 *      the fair share ⌈10,000 / 3⌉; target: max ≤ share + 1. The probe log is checked as in 1, and
 *      the creating node's longest event-loop stall is shown (its heartbeat waits as long).
 *      Baseline: the same 10,000 on ONE node alone, in the same run.
 *   3. Lease renewal: one node (in this process, on a driver whose statements are counted) holding
 *      3,000 sessions for 10 s once idle (its change feed caught up), TTL 3,000 ms (renewal period
 *      1 s): heartbeats and renewal statements per second
 *      beside one per period (the baseline) and beside one per session per period (3,000);
 *      target ≤ 2 per period whatever the number of sessions.
 *
 * Each scenario runs on a fresh SQLite file / PostgreSQL schema, removed at the end. Every wait is
 * bounded; every child is killed on exit, on an error and on SIGINT.
 * Env: MULTISESSION_PG_URL (default postgres://postgres@127.0.0.1:5432/test), BENCH_ONLY (sqlite or
 * postgres), BENCH_ROUNDS (failover rounds, default 8), BENCH_SESSIONS (default 10,000).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { z } from 'zod';
import { defineAdapter, SessionManager } from '../src/index.js';
import type { StorageDriver } from '../src/storage/contract.js';
import type { ClusterStore } from '../src/storage/cluster-contract.js';
import type { PostgresClientLike, PostgresPoolLike } from '../src/storage/postgres/index.js';
import { postgresStorage } from '../src/storage/postgres/index.js';
import { sqliteStorage } from '../src/storage/sqlite/index.js';
import { intervals, overlaps, readProbe } from '../test/fixtures/cluster/harness.js';

type Kind = 'sqlite' | 'postgres';
const PG_URL = process.env.MULTISESSION_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHILD = fileURLToPath(new URL('./cluster-node.ts', import.meta.url));

const TTL = 2_000;
const FAILOVER_SESSIONS = 30;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const BULK = Number(process.env.BENCH_SESSIONS ?? 10_000);
const NODES = 3;
/** The default lease TTL, for the 10,000 sessions. */
const BULK_TTL = 15_000;
const RENEW_SESSIONS = 3_000;
const RENEW_TTL = 3_000;
const RENEW_WINDOW_MS = 10_000;
/** The whole run, both stores: past it everything is killed and the bench fails. */
const DEADLINE_MS = Number(process.env.BENCH_DEADLINE_MS ?? 15 * 60_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
/** Nearest rank: with 8 rounds, p99 is the slowest round. */
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};

// ------------------------------------------------------------------ cleanup: children, files, schemas

const children = new Set<NodeProcess>();
const dir = mkdtempSync(join(os.tmpdir(), 'ms-bench-cluster-'));
const schemas: string[] = [];
const closers: (() => Promise<void>)[] = [];
let schemaN = 0;

function killChildren(): void {
  for (const n of children) if (n.alive) n.child.kill('SIGKILL'); // a stopped (SIGSTOP) process dies too
}

async function cleanup(): Promise<void> {
  killChildren();
  await Promise.all([...children].map((n) => n.exited()));
  for (const close of closers.splice(0)) await close().catch(() => undefined);
  if (schemas.length) {
    const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
    for (const s of schemas.splice(0)) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch((e: Error) => console.error(`drop ${s}: ${e.message}`));
    await admin.end();
  }
  rmSync(dir, { recursive: true, force: true });
}

process.on('exit', () => {
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping the nodes, removing the stores`);
    void cleanup().finally(() => process.exit(130));
  });
}
const watchdog = setTimeout(() => {
  console.error(`\nbench:cluster: past its deadline (${DEADLINE_MS / 1000} s); stopping`);
  void cleanup().finally(() => process.exit(1));
}, DEADLINE_MS);

/** A fresh store for one scenario: a SQLite file in the run's temp folder, or a PostgreSQL schema. */
function freshWhere(kind: Kind): string {
  const n = ++schemaN;
  if (kind === 'sqlite') return join(dir, `cluster-${n}.db`);
  const schema = `ms_bench_cluster_${process.pid}_${n}`;
  schemas.push(schema);
  return schema;
}

async function dropSchema(schema: string): Promise<void> {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  try {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    schemas.splice(schemas.indexOf(schema), 1);
  } finally {
    await admin.end();
  }
}

// ------------------------------------------------------------------ a node process

class NodeProcess {
  readonly nodeId: string;
  readonly child: ChildProcessWithoutNullStreams;
  readonly ready: Promise<void>;
  /** With `deferOpen`: the process has loaded and waits for `open()`. */
  readonly loaded: Promise<void>;
  /** When it was sent SIGKILL or SIGSTOP (Date.now()): where its connections' lives end. */
  stoppedAt: number | null = null;
  stderr = '';
  #seq = 0;
  readonly #waiting = new Map<number, { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  #exit: Promise<void>;

  constructor(kind: Kind, where: string, nodeId: string, ttlMs: number, probeLog?: string, deferOpen = false) {
    this.nodeId = nodeId;
    const opts = { kind, where, nodeId, ttlMs, ...(probeLog ? { probeLog } : {}), ...(deferOpen ? { deferOpen } : {}) };
    this.child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(opts)], { cwd: ROOT, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(this);
    this.child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4_000)));
    this.child.stdin.on('error', () => undefined); // a killed child's pipe
    this.#exit = new Promise((resolve) => this.child.once('exit', () => resolve()));
    let first!: { resolve: () => void; reject: (e: Error) => void };
    let load!: { resolve: () => void; reject: (e: Error) => void };
    this.ready = new Promise((resolve, reject) => (first = { resolve, reject }));
    this.loaded = new Promise((resolve, reject) => (load = { resolve, reject }));
    void this.ready.catch(() => undefined);
    void this.loaded.catch(() => undefined);
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as Record<string, unknown>;
      if ('loaded' in msg) return load.resolve();
      if (!('seq' in msg)) return msg.ready ? first.resolve() : first.reject(new Error(`${nodeId} did not open: ${String(msg.error)}`));
      this.#waiting.get(msg.seq as number)?.resolve(msg);
      this.#waiting.delete(msg.seq as number);
    });
    void this.#exit.then(() => {
      const err = new Error(`${nodeId} exited (${this.child.signalCode ?? this.child.exitCode}): ${this.stderr}`);
      first.reject(err);
      load.reject(err);
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async opened(ms = 60_000): Promise<void> {
    await bounded(this.ready, ms, `${this.nodeId} to open`);
  }

  /** With `deferOpen`: opens the manager now. */
  open(): void {
    this.child.stdin.write(`${JSON.stringify({ op: 'open' })}\n`);
  }

  call<T = Record<string, unknown>>(op: string, args: Record<string, unknown> = {}, ms = 30_000): Promise<T> {
    const seq = ++this.#seq;
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      this.#waiting.set(seq, { resolve, reject });
      this.child.stdin.write(`${JSON.stringify({ op, seq, ...args })}\n`);
    });
    return bounded(answer, ms, `${this.nodeId} to answer ${op}`).then((m) => {
      if (!m.ok) throw new Error(`${this.nodeId} ${op}: ${String(m.error)}`);
      return m as T;
    });
  }

  signal(sig: 'SIGKILL' | 'SIGSTOP'): void {
    this.stoppedAt = Date.now();
    this.child.kill(sig);
  }

  exited(): Promise<void> {
    return this.#exit;
  }
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function until<T>(what: string, ms: number, every: number, check: () => Promise<T | undefined>): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const t = performance.now();
    const v = await check();
    if (v !== undefined) return v;
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(Math.max(0, every - (performance.now() - t)));
  }
}

async function stopAll(nodes: NodeProcess[]): Promise<void> {
  for (const n of nodes) if (n.alive) n.child.kill('SIGKILL');
  await Promise.all(nodes.map((n) => n.exited()));
  for (const n of nodes) children.delete(n);
}

// ------------------------------------------------------------------ 1. failover

interface Failover {
  times: number[];
  /** Sessions the stopped node ran, per round. */
  moved: number[];
  /** Connection lives of one session in two processes at once (the probe log). */
  overlapping: number;
}

const runningOn = async (list: NodeProcess[]) => {
  const all = await Promise.all(list.map((n) => n.call<{ running: string[] }>('running')));
  return new Map(list.map((n, i) => [n, all[i]!.running]));
};

/** Every id runs exactly once on `live`, and no node runs more than its share + 1. */
async function settled(live: NodeProcess[], ids: string[], ms: number): Promise<Map<NodeProcess, string[]>> {
  const cap = Math.ceil(ids.length / live.length) + 1;
  return until(`${ids.length} sessions to run once each on ${live.map((n) => n.nodeId).join(', ')}`, ms, 50, async () => {
    const by = await runningOn(live);
    const seen = [...by.values()].flat();
    const once = seen.length === ids.length && new Set(seen).size === ids.length;
    return once && [...by.values()].every((r) => r.length <= cap) ? by : undefined;
  });
}

async function failover(kind: Kind, sig: 'SIGKILL' | 'SIGSTOP'): Promise<Failover> {
  const where = freshWhere(kind);
  const probeLog = join(dir, `probe-${schemaN}.log`);
  let k = 0;
  const spawnNode = (deferOpen = false) => new NodeProcess(kind, where, `n${++k}`, TTL, probeLog, deferOpen);
  const all: NodeProcess[] = [];
  let live = Array.from({ length: NODES }, () => spawnNode());
  all.push(...live);
  try {
    await Promise.all(live.map((n) => n.opened()));
    const ids = Array.from({ length: FAILOVER_SESSIONS }, (_, i) => `f${String(i).padStart(2, '0')}`);
    await live[0]!.call('create', { ids }, 60_000);
    let by = await settled(live, ids, 30_000);
    const out: Failover = { times: [], moved: [], overlapping: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      // The replacement is loaded (not yet a node) before the round: its start-up is not measured.
      const replacement = spawnNode(true);
      all.push(replacement);
      await bounded(replacement.loaded, 60_000, `${replacement.nodeId} to load`);
      const [victim, lost] = [...by].sort((a, b) => b[1].length - a[1].length)[0]!;
      const survivors = live.filter((n) => n !== victim);
      const t0 = performance.now();
      victim.signal(sig);
      await until(`${survivors.map((n) => n.nodeId).join(' and ')} to run ${victim.nodeId}'s ${lost.length} sessions (${sig})`, TTL * 3 + 5_000, 20, async () => {
        const running = new Set([...(await runningOn(survivors)).values()].flat());
        return lost.every((id) => running.has(id)) ? true : undefined;
      });
      out.times.push(performance.now() - t0);
      out.moved.push(lost.length);
      if (sig === 'SIGSTOP') victim.child.kill('SIGKILL'); // frozen, its sessions gone: done with it
      await victim.exited();
      replacement.open();
      await replacement.opened();
      live = [...survivors, replacement];
      by = await settled(live, ids, 30_000);
    }
    // Connection lives end where their process was stopped (a frozen process runs nothing).
    const endOf = (pid: number) => all.find((n) => n.child.pid === pid)?.stoppedAt ?? Date.now();
    out.overlapping = new Set(overlaps(intervals(readProbe(probeLog), endOf)).map(([a]) => a.session)).size;
    return out;
  } finally {
    await stopAll(all);
    if (kind === 'postgres') await dropSchema(where);
  }
}

// ------------------------------------------------------------------ 2. 10,000 sessions

interface Bulk {
  createMs: number;
  /** From the creates being done until all are ready. */
  readyAfterMs: number;
  perNodeAtReady: number[];
  /** Cluster only: from all ready until the spread is within share + 1 (null: never, within the wait). */
  settleMs: number | null;
  perNodeSettled: number[];
  /** Sessions whose connections ran in two processes at once (the probe log). */
  overlapping: number;
  /** The longest event-loop stall of the node that made the creates (its heartbeat waits as long). */
  creatorStallMs: number;
}

async function bulk(kind: Kind, nodes: number): Promise<Bulk> {
  const where = freshWhere(kind);
  const probeLog = join(dir, `probe-${schemaN}.log`);
  const list = Array.from({ length: nodes }, (_, i) => new NodeProcess(kind, where, `b${i + 1}`, BULK_TTL, probeLog));
  const counts = async () => (await Promise.all(list.map((n) => n.call<{ ready: number }>('counts', {}, 60_000)))).map((c) => c.ready);
  try {
    await Promise.all(list.map((n) => n.opened()));
    const t0 = performance.now();
    await list[0]!.call('bulk', { prefix: 'b', from: 0, count: BULK }, 300_000);
    const created = performance.now();
    const perNodeAtReady = await until(`${BULK} sessions to be ready`, 180_000, 100, async () => {
      const c = await counts();
      return c.reduce((a, b) => a + b, 0) >= BULK ? c : undefined;
    });
    const ready = performance.now();
    let settleMs: number | null = null;
    let perNodeSettled = perNodeAtReady;
    if (nodes > 1) {
      const cap = Math.ceil(BULK / nodes) + 1;
      try {
        perNodeSettled = await until('the spread to settle', 30_000, 100, async () => {
          const c = await counts();
          perNodeSettled = c;
          return c.reduce((a, b) => a + b, 0) === BULK && Math.max(...c) <= cap ? c : undefined;
        });
        settleMs = performance.now() - ready;
      } catch {
        settleMs = null;
      }
    }
    const creatorStallMs = (await list[0]!.call<{ stallMs: number }>('counts')).stallMs;
    const overlapping = new Set(overlaps(intervals(readProbe(probeLog), () => Date.now())).map(([a]) => a.session)).size;
    return { createMs: created - t0, readyAfterMs: ready - created, perNodeAtReady, settleMs, perNodeSettled, overlapping, creatorStallMs };
  } finally {
    await stopAll(list);
    if (kind === 'postgres') await dropSchema(where);
  }
}

// ------------------------------------------------------------------ 3. lease renewal, counted at the driver

interface Renewal {
  seconds: number;
  heartbeats: number;
  /** Statements the heartbeats ran (PostgreSQL: one each; SQLite: inside one transaction each). */
  renewStatements: number;
  /** Every statement the node sent the store in the window. */
  allStatements: number;
  /** Leases each heartbeat renewed (the smallest answer in the window). */
  leasesPerBeat: number;
  /** Cluster capability calls in the window, by method. */
  calls: Record<string, number>;
  /** Before the window: changed ids the node read back from the change feed (its own writes), and for how long. */
  echoIds: number;
  echoMs: number;
  /** The most frequent statements in the window. */
  top: [string, number][];
}

/** Counts statements by their text; `inBeat` marks those a heartbeat runs (SQLite: synchronous). */
class Tally {
  readonly bySql = new Map<string, number>();
  beatStatements = 0;
  inBeat = false;
  constructor(readonly isBeat: (sql: string) => boolean) {}
  add(sql: string): void {
    const key = sql.replace(/\s+/g, ' ').trim();
    this.bySql.set(key, (this.bySql.get(key) ?? 0) + 1);
    if (this.inBeat || this.isBeat(key)) this.beatStatements++;
  }
  total(): number {
    let n = 0;
    for (const v of this.bySql.values()) n += v;
    return n;
  }
}

/** A better-sqlite3 database whose statements (prepared, then run) are counted. */
function countedSqlite(file: string, tally: Tally): Database.Database {
  const db = new Database(file, { timeout: 5_000 });
  const COUNTED = new Set<PropertyKey>(['run', 'get', 'all', 'iterate']);
  const wrap = (st: Database.Statement, sql: string): Database.Statement => {
    const proxy: Database.Statement = new Proxy(st, {
      get(t, k) {
        const v = Reflect.get(t, k) as unknown;
        if (typeof v !== 'function') return v;
        if (COUNTED.has(k))
          return (...a: unknown[]) => {
            tally.add(sql);
            return (v as (...x: unknown[]) => unknown).apply(t, a);
          };
        return (...a: unknown[]) => {
          const r = (v as (...x: unknown[]) => unknown).apply(t, a);
          return r === t ? proxy : r;
        };
      },
    });
    return proxy;
  };
  return new Proxy(db, {
    get(t, k) {
      if (k === 'prepare') return (sql: string) => wrap(t.prepare(sql), sql);
      if (k === 'exec')
        return (sql: string) => {
          tally.add(sql);
          return t.exec(sql);
        };
      const v = Reflect.get(t, k) as unknown;
      return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/** A pg pool whose clients' statements are counted (the driver uses `connect()` and `end()` only). */
function countedPool(tally: Tally): { pool: PostgresPoolLike; end: () => Promise<void> } {
  const real = new pg.Pool({ connectionString: PG_URL, max: 10 });
  real.on('error', () => undefined);
  const wrapped = new WeakSet<object>();
  const pool: PostgresPoolLike = {
    async connect() {
      const client = (await real.connect()) as unknown as PostgresClientLike & { query: (...a: unknown[]) => Promise<unknown> };
      if (!wrapped.has(client)) {
        wrapped.add(client);
        const query = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;
        client.query = ((a: string | { text: string }, b?: unknown[]) => {
          tally.add(typeof a === 'string' ? a : a.text);
          return query(a, b);
        }) as never;
      }
      return client;
    },
    end: async () => undefined, // ended by the bench, after the store
  };
  return { pool, end: () => real.end() };
}

async function renewal(kind: Kind): Promise<Renewal> {
  const where = freshWhere(kind);
  // PostgreSQL: the heartbeat is the one statement that renews (`renewed AS`); SQLite: whatever
  // runs inside the heartbeat's call (one synchronous transaction).
  const tally = new Tally((sql) => kind === 'postgres' && sql.includes('renewed AS ('));
  let endPool: (() => Promise<void>) | null = null;
  let db: Database.Database | null = null;
  let base: StorageDriver;
  if (kind === 'postgres') {
    const counted = countedPool(tally);
    endPool = counted.end;
    base = postgresStorage({ pool: counted.pool }, { schema: where });
  } else {
    db = countedSqlite(where, tally);
    base = sqliteStorage({ database: db });
  }
  const calls: Record<string, number> = {};
  let leasesPerBeat = Infinity;
  let counting = false;
  let feedIds = 0;
  let emptyFeeds = 0;
  const cluster = base.cluster!;
  const countedCluster = Object.fromEntries(
    (Object.keys(cluster) as (keyof ClusterStore)[]).map((name) => [
      name,
      (...args: unknown[]) => {
        if (counting) calls[name] = (calls[name] ?? 0) + 1;
        const isBeat = name === 'heartbeat';
        tally.inBeat = isBeat && kind === 'sqlite';
        try {
          const result = (cluster[name] as (...a: unknown[]) => Promise<unknown>)(...args);
          if (isBeat && counting) void result.then((r) => (leasesPerBeat = Math.min(leasesPerBeat, (r as { leases: unknown[] }).leases.length)), () => undefined);
          if (name === 'changes')
            void result.then((r) => {
              const n = (r as { ids: unknown[] }).ids.length;
              feedIds += n;
              emptyFeeds = n === 0 ? emptyFeeds + 1 : 0;
            }, () => undefined);
          return result;
        } finally {
          tally.inBeat = false;
        }
      },
    ]),
  ) as unknown as ClusterStore;
  const storage: StorageDriver = { ...base, cluster: countedCluster };

  const ready = new Set<string>();
  const probe = defineAdapter({
    name: 'probe',
    credentials: z.object({}).optional(),
    config: z.object({}).default({}),
    connect: () => ({
      async start() {},
      async stop() {},
      async health() {
        return { status: 'healthy' as const };
      },
      async send(action) {
        return action;
      },
    }),
  });
  const manager = new SessionManager({
    storage,
    secretKey: Buffer.alloc(32, 7).toString('base64'),
    adapters: [probe],
    cluster: { nodeId: 'renew-1', leaseTtlMs: RENEW_TTL },
    health: { intervalMs: 60_000 },
    logBufferSize: 10,
    maxSessions: 50_000,
  });
  manager.on('session.ready', (e) => ready.add(e.id));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await manager.close().catch(() => undefined);
    db?.close();
    await endPool?.();
    if (kind === 'postgres') await dropSchema(where);
  };
  closers.push(close);
  try {
    await manager.open();
    for (let i = 0; i < RENEW_SESSIONS; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, RENEW_SESSIONS - i) }, async (_, j) => {
          const id = `r${String(i + j).padStart(5, '0')}`;
          await manager.create({ id, platform: 'probe' });
          await manager.start(id);
        }),
      );
    }
    await until(`${RENEW_SESSIONS} sessions ready`, 120_000, 100, async () => (ready.size >= RENEW_SESSIONS ? true : undefined));
    // The steady state: the starts' write-behind has landed and the node has read its own changes
    // back from the feed (two empty polls in a row).
    const readyAt = performance.now();
    const idsAtReady = feedIds;
    await sleep(RENEW_TTL / 3);
    await until('the change feed to catch up', 60_000, 100, async () => (emptyFeeds >= 2 ? true : undefined));
    const echoIds = feedIds - idsAtReady;
    const echoMs = performance.now() - readyAt;
    tally.bySql.clear();
    tally.beatStatements = 0;
    counting = true;
    const t0 = performance.now();
    await sleep(RENEW_WINDOW_MS);
    counting = false;
    const seconds = (performance.now() - t0) / 1000;
    const top = [...tally.bySql].sort((a, b) => b[1] - a[1]).slice(0, 6);
    return { seconds, heartbeats: calls.heartbeat ?? 0, renewStatements: tally.beatStatements, allStatements: tally.total(), leasesPerBeat, calls, echoIds, echoMs, top };
  } finally {
    closers.splice(closers.indexOf(close), 1);
    await close();
  }
}

// ------------------------------------------------------------------ the report

type Row = [string, string, string, string, string];
let allMet = true;
const verdict = (ok: boolean, text: string) => {
  if (!ok) allMet = false;
  return `${ok ? 'PASS' : 'FAIL'} ${text}`;
};

function printTable(rows: Row[]): void {
  const head: Row = ['measure', 'multisession', 'baseline', 'ratio', 'target'];
  const widths = head.map((_, c) => Math.max(...[head, ...rows].map((r) => r[c]!.length)));
  const line = (r: Row) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  rows.forEach((r) => console.log(line(r)));
}

async function bench(kind: Kind): Promise<void> {
  const started = performance.now();
  console.log(`\n${kind}: ${NODES} node processes, lease TTL ${fmt(TTL)} ms for failover (${ROUNDS} rounds, ${FAILOVER_SESSIONS} sessions), ${fmt(BULK)} sessions, renewal at ${fmt(RENEW_SESSIONS)}`);
  const rows: Row[] = [];
  const notes: string[] = [];

  for (const sig of ['SIGKILL', 'SIGSTOP'] as const) {
    const f = await failover(kind, sig);
    const what = sig === 'SIGKILL' ? 'failover, SIGKILL (same machine)' : 'failover, SIGSTOP (as across machines)';
    const [p50, p99] = [pct(f.times, 50), pct(f.times, 99)];
    rows.push([`${what} p50`, `${fmt(p50)} ms`, `${fmt(TTL)} ms (TTL)`, `${fmt(p50 / TTL, 2)}x`, '']);
    rows.push([`${what} p99`, `${fmt(p99)} ms`, `${fmt(TTL)} ms (TTL)`, `${fmt(p99 / TTL, 2)}x`, verdict(p99 <= TTL + 1_000, `≤ TTL + 1 s = ${fmt(TTL + 1_000)} ms`)]);
    rows.push([`${what}: ran twice at once`, `${f.overlapping} sessions`, '', '', verdict(f.overlapping === 0, '0')]);
    notes.push(`${sig} rounds (ms): ${f.times.map((t) => fmt(t)).join(', ')}; sessions moved per round: ${f.moved.join(', ')}`);
  }

  const solo = await bulk(kind, 1);
  const cl = await bulk(kind, NODES);
  const share = Math.ceil(BULK / NODES);
  const n = fmt(BULK);
  // A ratio to a near-zero wait (one node alone runs each session within its start) says nothing.
  const afterRatio = solo.readyAfterMs >= 100 ? `${fmt(cl.readyAfterMs / solo.readyAfterMs, 2)}x` : '';
  rows.push([`${n} sessions: all ready after the creates`, `${fmt(cl.readyAfterMs)} ms`, `${fmt(solo.readyAfterMs)} ms (1 node)`, afterRatio, '']);
  const clTotal = cl.createMs + cl.readyAfterMs;
  const soloTotal = solo.createMs + solo.readyAfterMs;
  rows.push([`${n} sessions: create+start until all ready`, `${fmt(clTotal)} ms`, `${fmt(soloTotal)} ms (1 node)`, `${fmt(clTotal / soloTotal, 2)}x`, '']);
  const maxAtReady = Math.max(...cl.perNodeAtReady);
  rows.push([
    `${n} over ${NODES} nodes: spread when all ready`,
    `${fmt(Math.min(...cl.perNodeAtReady))}–${fmt(maxAtReady)}`,
    `${fmt(share)} (fair share)`,
    `${fmt(maxAtReady / share, 2)}x`,
    verdict(maxAtReady <= share + 1, `max ≤ ${fmt(share + 1)}`),
  ]);
  rows.push([
    `${n} over ${NODES} nodes: spread settled`,
    cl.settleMs !== null ? `${fmt(Math.min(...cl.perNodeSettled))}–${fmt(Math.max(...cl.perNodeSettled))} (+${fmt(cl.settleMs)} ms)` : `not within 30 s: ${cl.perNodeSettled.map((c) => fmt(c)).join(' / ')}`,
    `${fmt(share)} (fair share)`,
    `${fmt(Math.max(...cl.perNodeSettled) / share, 2)}x`,
    verdict(cl.settleMs !== null, `max ≤ ${fmt(share + 1)}`),
  ]);
  rows.push([`${n} over ${NODES} nodes: ran twice at once`, `${fmt(cl.overlapping)} sessions`, `${fmt(solo.overlapping)} (1 node)`, '', verdict(cl.overlapping === 0, '0')]);
  notes.push(`${n} sessions: creates took ${fmt(cl.createMs)} ms on a node of the cluster, ${fmt(solo.createMs)} ms alone; per node when all ready: ${cl.perNodeAtReady.map((c) => fmt(c)).join(' / ')}`);
  notes.push(
    `${n} sessions: the creating node's longest event-loop stall ${fmt(cl.creatorStallMs)} ms in the cluster, ${fmt(solo.creatorStallMs)} ms alone (lease TTL ${fmt(BULK_TTL)} ms, heartbeat every ${fmt(BULK_TTL / 3)} ms)`,
  );

  const r = await renewal(kind);
  const period = RENEW_TTL / 3;
  const periods = (r.seconds * 1000) / period;
  const beatsPerPeriod = r.heartbeats / periods;
  const stPerPeriod = r.renewStatements / periods;
  const perSec = (x: number) => x / r.seconds;
  const unit = kind === 'postgres' ? 'statement' : 'transaction';
  rows.push([
    `renewal, ${fmt(RENEW_SESSIONS)} sessions: heartbeats (1 ${unit} each)`,
    `${fmt(perSec(r.heartbeats), 2)}/s`,
    `${fmt(1000 / period, 2)}/s (1 per ${fmt(period)} ms)`,
    `${fmt(beatsPerPeriod, 2)}x`,
    verdict(beatsPerPeriod <= 2, '≤ 2 per period'),
  ]);
  rows.push([
    `renewal, ${fmt(RENEW_SESSIONS)} sessions: renewal statements`,
    `${fmt(perSec(r.renewStatements), 2)}/s`,
    `${fmt(1000 / period, 2)}/s; per session: ${fmt((RENEW_SESSIONS * 1000) / period)}/s`,
    `${fmt(stPerPeriod, 2)}x; ${fmt(stPerPeriod / RENEW_SESSIONS, 4)}x`,
    kind === 'postgres' ? verdict(stPerPeriod <= 2, '≤ 2 per period') : '(in the transactions above)',
  ]);
  rows.push([`renewal: every statement the node sent the store`, `${fmt(perSec(r.allStatements), 1)}/s`, '', '', '']);
  notes.push(`renewal: before the window the node read ${fmt(r.echoIds)} changed ids back from its own change feed, ${fmt(r.echoMs)} ms after all were ready`);
  notes.push(
    `renewal window ${fmt(r.seconds, 1)} s at TTL ${fmt(RENEW_TTL)} ms: ${r.heartbeats} heartbeats, each renewing ${r.leasesPerBeat === Infinity ? '?' : fmt(r.leasesPerBeat)} leases; cluster calls ${Object.entries(r.calls)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  notes.push(`most frequent statements in the window: ${r.top.map(([sql, c]) => `${c}× "${sql.slice(0, 70)}${sql.length > 70 ? '…' : ''}"`).join('; ')}`);

  printTable(rows);
  for (const note of notes) console.log(`(${note})`);
  console.log(`(${kind} took ${fmt((performance.now() - started) / 1000, 0)} s; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`);
}

async function postgresReachable(): Promise<boolean> {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
  try {
    await pool.query('SELECT 1');
    return true;
  } catch (err) {
    if (process.env.CI) throw err;
    console.log(`\npostgres: not reachable at ${PG_URL}; skipped`);
    return false;
  } finally {
    await pool.end();
  }
}

const ONLY = process.env.BENCH_ONLY;
let code = 0;
try {
  if (ONLY !== 'postgres') await bench('sqlite');
  if (ONLY !== 'sqlite' && (await postgresReachable())) await bench('postgres');
  console.log(`\ntargets ${allMet ? 'met' : 'NOT met'}`);
} catch (err) {
  console.error(`\nbench:cluster failed: ${(err as Error).stack ?? String(err)}`);
  code = 1;
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
process.exit(code);
