/**
 * `npm run bench:checkpoint`: items per second claimed and completed (no-op work) on SQLite and
 * PostgreSQL, each figure beside the minimal hand-written SQL doing the same fenced claim and
 * compare-and-swap complete, measured in the same run, printed as ratios.
 *
 *   (a) primitives one at a time: 1 item per claim, 1 loop                     target ≥ 0.9
 *   (a) primitives in batches: 50 per claim, 4 loops                            target ≥ 0.9
 *   (c) past the ceiling: 1 per claim, 8 loops; the library coalesces the concurrent claims and
 *       completions into one statement each (group commit)                     target ≥ 2 (PG), ≥ 1 (SQLite)
 *       with the per-call latency (p50, p99) of claim and complete beside the baseline's
 *   (b) process(), defaults, concurrency 8, against the batched baseline       target ≥ 0.9
 *   (b) process(), batchSize 1, concurrency 8, against the unbatched baseline  target ≥ 2 (PG)
 *   (d) add() of 20,000 items against a raw multi-row insert that, like add(), skips keys it
 *       already holds (ON CONFLICT DO NOTHING); the plain insert printed for reference  target ≥ 0.7
 *
 * Each pair runs BENCH_ROUNDS times (default 5), baseline and library alternating, and the best
 * round of each is reported: on a shared machine the least-disturbed round is the steadiest figure.
 * Env: MULTISESSION_PG_URL (default postgres://postgres@127.0.0.1:5432/test), BENCH_SCALE (default 1),
 * BENCH_ONLY (sqlite or postgres: one backend).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { createCheckpoint, type Checkpoint } from '../src/checkpoint/index.js';
import { postgresCheckpoint } from '../src/storage/postgres/index.js';
import { sqliteCheckpoint } from '../src/storage/sqlite/index.js';

const PG_URL = process.env.MULTISESSION_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const LEASE_MS = 60_000;

interface Run {
  perSec: number;
  /** Claim call latencies (ms). */
  latencies: number[];
  /** Complete call latencies (ms). */
  completeLatencies: number[];
  /** This process's CPU time per item (µs): steadier than wall time on a busy machine. */
  cpuPerItem: number;
}
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
interface Harness {
  name: string;
  /** Items for the 1-per-claim runs and for the batched runs. */
  single: number;
  batched: number;
  seedLib(cp: Checkpoint, n: number): Promise<void>;
  base: {
    seed(n: number): Promise<void>;
    claim(owner: string, limit: number): Promise<{ key: string; token: number }[]>;
    /** SQLite only: the claim with a token per row (token + 1) instead of the stream's fence: for reference. */
    claimPerRow?(owner: string, limit: number): Promise<{ key: string; token: number }[]>;
    completeOne(owner: string, lease: { key: string; token: number }): Promise<boolean>;
    completeMany(owner: string, leases: { key: string; token: number }[]): Promise<number>;
    /**
     * Empties the table, then inserts `n` items with the fastest plain multi-row insert; resolves
     * with its milliseconds. `idempotent`: ON CONFLICT (stream, key) DO NOTHING, as add() is
     * idempotent by key (the comparison with a target); without it, for reference.
     */
    insert(n: number, idempotent: boolean): Promise<number>;
  };
  /** Empties the library's table (between add() rounds). */
  clearLib(): Promise<void>;
  storage: Parameters<typeof createCheckpoint>[0]['storage'];
  close(): Promise<void>;
}

const items = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${String(i).padStart(7, '0')}` }));
const best = (xs: number[]) => Math.max(...xs);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
let streamN = 0;

async function loops(n: number, body: (loop: number) => Promise<boolean>): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, async (_, loop) => {
      while (await body(loop));
    }),
  );
}

/** The library's primitives: claim(limit) then complete / completeMany, in `nLoops` loops. */
async function libPrimitives(h: Harness, perClaim: number, nLoops: number, total: number): Promise<Run> {
  const cp = createCheckpoint({ storage: h.storage, stream: `bench-${++streamN}` });
  await h.seedLib(cp, total);
  const latencies: number[] = [];
  const completeLatencies: number[] = [];
  let done = 0;
  const t0 = performance.now();
  const cpu0 = cpuNow();
  await loops(nLoops, async (loop) => {
    const c0 = performance.now();
    const leases = await cp.claim({ owner: `lib-${loop}`, limit: perClaim, leaseMs: LEASE_MS });
    const c1 = performance.now();
    latencies.push(c1 - c0);
    if (!leases.length) return false;
    if (perClaim === 1) await cp.complete(leases[0]!);
    else await cp.completeMany(leases.map((lease) => ({ lease })));
    completeLatencies.push(performance.now() - c1);
    done += leases.length;
    return true;
  });
  const secs = (performance.now() - t0) / 1000;
  if (done !== total) throw new Error(`lib completed ${done} of ${total}`);
  return { perSec: done / secs, latencies, completeLatencies, cpuPerItem: (cpuNow() - cpu0) / done };
}

async function basePrimitives(h: Harness, perClaim: number, nLoops: number, total: number, perRow = false): Promise<Run> {
  await h.base.seed(total);
  const latencies: number[] = [];
  const completeLatencies: number[] = [];
  let done = 0;
  const t0 = performance.now();
  const cpu0 = cpuNow();
  await loops(nLoops, async (loop) => {
    const owner = `base-${loop}`;
    const c0 = performance.now();
    const leases = perRow ? await h.base.claimPerRow!(owner, perClaim) : await h.base.claim(owner, perClaim);
    const c1 = performance.now();
    latencies.push(c1 - c0);
    if (!leases.length) return false;
    if (perClaim === 1) {
      if (!(await h.base.completeOne(owner, leases[0]!))) throw new Error('baseline CAS lost');
    } else if ((await h.base.completeMany(owner, leases)) !== leases.length) throw new Error('baseline CAS lost');
    completeLatencies.push(performance.now() - c1);
    done += leases.length;
    return true;
  });
  const secs = (performance.now() - t0) / 1000;
  if (done !== total) throw new Error(`baseline completed ${done} of ${total}`);
  return { perSec: done / secs, latencies, completeLatencies, cpuPerItem: (cpuNow() - cpu0) / done };
}

async function libProcess(h: Harness, total: number, batchSize?: number): Promise<Run> {
  const cp = createCheckpoint({ storage: h.storage, stream: `bench-${++streamN}` });
  await h.seedLib(cp, total);
  const t0 = performance.now();
  const cpu0 = cpuNow();
  const summary = await cp.process(() => {}, { owner: 'proc', concurrency: 8, batchSize });
  const secs = (performance.now() - t0) / 1000;
  if (summary.completed !== total) throw new Error(`process completed ${summary.completed} of ${total}`);
  return { perSec: total / secs, latencies: [], completeLatencies: [], cpuPerItem: (cpuNow() - cpu0) / total };
}

const ADD_ITEMS = Math.round(20_000 * SCALE);

/** add() of ADD_ITEMS keys into an empty table: items per second. */
async function libAdd(h: Harness): Promise<Run> {
  const cp = createCheckpoint({ storage: h.storage, stream: `bench-${++streamN}` });
  await h.clearLib();
  const list = items(ADD_ITEMS);
  const t0 = performance.now();
  const cpu0 = cpuNow();
  const added = await cp.add(list);
  const secs = (performance.now() - t0) / 1000;
  if (added !== ADD_ITEMS) throw new Error(`add inserted ${added} of ${ADD_ITEMS}`);
  return { perSec: ADD_ITEMS / secs, latencies: [], completeLatencies: [], cpuPerItem: (cpuNow() - cpu0) / ADD_ITEMS };
}

async function baseAdd(h: Harness, idempotent = true): Promise<Run> {
  const cpu0 = cpuNow();
  const millis = await h.base.insert(ADD_ITEMS, idempotent);
  return { perSec: ADD_ITEMS / (millis / 1000), latencies: [], completeLatencies: [], cpuPerItem: (cpuNow() - cpu0) / ADD_ITEMS };
}

function sqliteHarness(): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'ms-bench-cp-'));
  const db = new Database(join(dir, 'bench.db'));
  db.pragma('journal_mode = WAL');
  const storage = sqliteCheckpoint({ database: db });
  // Items keyed per stream, as the checkpoint's are: (stream, key) unique, claimable rows indexed per stream.
  db.exec(`CREATE TABLE base_items (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL,
      priority INTEGER NOT NULL DEFAULT 0, owner TEXT, token INTEGER NOT NULL DEFAULT 0, expires_at INTEGER NOT NULL DEFAULT 0, UNIQUE (stream, key));
    CREATE INDEX base_claimable ON base_items (stream, priority DESC, expires_at, id) WHERE status IN ('pending', 'processing');`);
  const insert = db.prepare(`INSERT INTO base_items (stream, key, status) VALUES ('base', ?, 'pending')`);
  const seed = db.transaction((n: number) => {
    db.exec('DELETE FROM base_items');
    for (const it of items(n)) insert.run(it.key);
  });
  const claim = db.prepare(`UPDATE base_items SET status = 'processing', owner = ?, token = token + 1, expires_at = ? + ?
    WHERE id IN (SELECT id FROM base_items WHERE stream = 'base' AND status IN ('pending', 'processing') AND expires_at <= ?
                 ORDER BY priority DESC, expires_at, id LIMIT ?)
    RETURNING key, token`);
  const complete = db.prepare(`UPDATE base_items SET status = 'done'
    WHERE stream = 'base' AND key = ? AND token = ? AND owner = ? AND status = 'processing' AND expires_at > ?`);
  db.exec(`CREATE TABLE base_streams (stream TEXT PRIMARY KEY, fence INTEGER NOT NULL); INSERT INTO base_streams VALUES ('base', 0);`);
  const bump = db.prepare(`UPDATE base_streams SET fence = fence + 1 WHERE stream = 'base' RETURNING fence`);
  const claimWithToken = db.prepare(`UPDATE base_items SET status = 'processing', owner = ?, token = ?, expires_at = ? + ?
    WHERE id IN (SELECT id FROM base_items WHERE stream = 'base' AND status IN ('pending', 'processing') AND expires_at <= ?
                 ORDER BY priority DESC, expires_at, id LIMIT ?)
    RETURNING key, token`);
  const claimFenced = db.transaction((owner: string, limit: number, now: number) => {
    const { fence } = bump.get() as { fence: number };
    return claimWithToken.all(owner, fence, now, LEASE_MS, now, limit) as { key: string; token: number }[];
  });
  const completeMany = db.transaction((owner: string, leases: { key: string; token: number }[], now: number) => {
    let n = 0;
    for (const l of leases) n += complete.run(l.key, l.token, owner, now).changes;
    return n;
  });
  // The raw multi-row insert: 500 rows per statement, one transaction (idempotent or not).
  const rows500 = Array.from({ length: 500 }, () => "('base', ?, 'pending')").join(', ');
  const insert500 = [
    db.prepare(`INSERT INTO base_items (stream, key, status) VALUES ${rows500}`),
    db.prepare(`INSERT INTO base_items (stream, key, status) VALUES ${rows500} ON CONFLICT (stream, key) DO NOTHING`),
  ];
  const insertRows = db.transaction((keys: string[], idempotent: boolean) => {
    let i = 0;
    for (; i + 500 <= keys.length; i += 500) insert500[idempotent ? 1 : 0]!.run(...keys.slice(i, i + 500));
    for (; i < keys.length; i++) insert.run(keys[i]);
  });
  return {
    name: 'sqlite',
    single: Math.round(10_000 * SCALE),
    batched: Math.round(50_000 * SCALE),
    storage,
    seedLib: async (cp, n) => {
      // Start from an empty table, as the baseline does.
      await storage.init();
      db.exec('DELETE FROM checkpoint_items');
      await cp.add(items(n));
    },
    base: {
      seed: async (n) => seed(n),
      // Like ours: a token from the stream's fence, bumped in the claim's transaction.
      claim: async (owner, limit) => claimFenced.immediate(owner, limit, Date.now()),
      claimPerRow: async (owner, limit) => {
        const now = Date.now();
        return claim.all(owner, now, LEASE_MS, now, limit) as { key: string; token: number }[];
      },
      completeOne: async (owner, l) => complete.run(l.key, l.token, owner, Date.now()).changes === 1,
      completeMany: async (owner, leases) => completeMany(owner, leases, Date.now()),
      insert: async (n, idempotent) => {
        db.exec('DELETE FROM base_items');
        const keys = items(n).map((i) => i.key);
        const t0 = performance.now();
        insertRows(keys, idempotent);
        return performance.now() - t0;
      },
    },
    clearLib: async () => {
      await storage.init();
      db.exec('DELETE FROM checkpoint_items');
    },
    close: async () => {
      await storage.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function postgresHarness(): Promise<Harness | null> {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 10 });
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end();
    if (process.env.CI) throw err;
    console.log(`postgres: not reachable at ${PG_URL}; skipped`);
    return null;
  }
  const schema = `cp_bench_${process.pid}`;
  const storage = postgresCheckpoint({ pool }, { schema });
  await storage.init();
  const T = `"${schema}".base_items`;
  // Items keyed per stream, as the checkpoint's are.
  await pool.query(`CREATE TABLE ${T} (id bigint GENERATED ALWAYS AS IDENTITY, stream text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL,
      status text NOT NULL, priority integer NOT NULL DEFAULT 0, owner text, token bigint NOT NULL DEFAULT 0,
      expires_at timestamptz NOT NULL DEFAULT '-infinity', PRIMARY KEY (stream, key))`);
  await pool.query(`CREATE INDEX base_claimable ON ${T} (stream, priority DESC, expires_at, id) WHERE status IN ('pending', 'processing')`);
  // Tokens from a sequence: like the checkpoint's, they grow in the whole stream, still in one statement.
  await pool.query(`CREATE SEQUENCE "${schema}".base_fence`);
  return {
    name: 'postgres',
    single: Math.round(5_000 * SCALE),
    batched: Math.round(50_000 * SCALE),
    storage,
    seedLib: async (cp, n) => {
      // Start from an empty, vacuumed table, as the baseline does.
      await pool.query(`TRUNCATE "${schema}".checkpoint_items`);
      await cp.add(items(n));
      await pool.query(`VACUUM ANALYZE "${schema}".checkpoint_items`);
    },
    base: {
      seed: async (n) => {
        await pool.query(`TRUNCATE ${T}`);
        await pool.query(`INSERT INTO ${T} (stream, key, status) SELECT 'base', k, 'pending' FROM unnest($1::text[]) AS k`, [items(n).map((i) => i.key)]);
        await pool.query(`VACUUM ANALYZE ${T}`);
      },
      claim: async (owner, limit) =>
        (
          await pool.query(
            `UPDATE ${T} SET status = 'processing', owner = $1, token = nextval('"${schema}".base_fence'), expires_at = now() + $2 * interval '1 millisecond'
             WHERE (stream, key) IN (SELECT stream, key FROM ${T} WHERE stream = 'base' AND status IN ('pending', 'processing') AND expires_at <= now()
                           ORDER BY priority DESC, expires_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING key, token`,
            [owner, LEASE_MS, limit],
          )
        ).rows.map((r: { key: string; token: string }) => ({ key: r.key, token: Number(r.token) })),
      completeOne: async (owner, l) =>
        (
          await pool.query(
            `UPDATE ${T} SET status = 'done'
             WHERE stream = 'base' AND key = $1 AND token = $2 AND owner = $3 AND status = 'processing' AND expires_at > now()`,
            [l.key, l.token, owner],
          )
        ).rowCount === 1,
      completeMany: async (owner, leases) =>
        (
          await pool.query(
            `UPDATE ${T} AS i SET status = 'done' FROM unnest($1::text[], $2::bigint[]) AS v(key, token)
             WHERE i.stream = 'base' AND i.key = v.key AND i.token = v.token AND i.owner = $3 AND i.status = 'processing' AND i.expires_at > now()`,
            [leases.map((l) => l.key), leases.map((l) => l.token), owner],
          )
        ).rowCount ?? 0,
      insert: async (n, idempotent) => {
        await pool.query(`TRUNCATE ${T}`);
        const keys = items(n).map((i) => i.key);
        const t0 = performance.now();
        await pool.query(
          `INSERT INTO ${T} (stream, key, status) SELECT 'base', k, 'pending' FROM unnest($1::text[]) AS k${idempotent ? ' ON CONFLICT (stream, key) DO NOTHING' : ''}`,
          [keys],
        );
        return performance.now() - t0;
      },
    },
    clearLib: async () => {
      await pool.query(`TRUNCATE "${schema}".checkpoint_items`);
    },
    close: async () => {
      await storage.close();
      await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
      await pool.end();
    },
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => `${n.toFixed(2)} ms`;
let allMet = true;

function line(label: string, lib: number, base: number, target: number | null, unit = '/s') {
  const ratio = lib / base;
  const ok = target === null ? '' : ratio >= target ? `  ok (target ≥ ${target})` : `  BELOW target ${target}`;
  if (target !== null && ratio < target) allMet = false;
  console.log(`  ${label.padEnd(34)} lib ${fmt(lib).padStart(8)}${unit}   baseline ${fmt(base).padStart(8)}${unit}   ratio ${ratio.toFixed(2)}${ok}`);
}

/** SQLite works in this process: CPU time per item shows the cost without the machine's noise. */
function cpuLine(lib: number, base: number) {
  console.log(`  ${'    CPU per item (this process)'.padEnd(34)} lib ${lib.toFixed(1).padStart(8)} µs  baseline ${base.toFixed(1).padStart(8)} µs  ratio ${(base / lib).toFixed(2)}`);
}

async function pair(label: string, lib: () => Promise<Run>, base: () => Promise<Run>) {
  const libRuns: Run[] = [];
  const baseRuns: Run[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    baseRuns.push(await base());
    libRuns.push(await lib());
  }
  return {
    label,
    lib: best(libRuns.map((r) => r.perSec)),
    base: best(baseRuns.map((r) => r.perSec)),
    libLat: libRuns.flatMap((r) => r.latencies),
    baseLat: baseRuns.flatMap((r) => r.latencies),
    libDone: libRuns.flatMap((r) => r.completeLatencies),
    baseDone: baseRuns.flatMap((r) => r.completeLatencies),
    libCpu: Math.min(...libRuns.map((r) => r.cpuPerItem)),
    baseCpu: Math.min(...baseRuns.map((r) => r.cpuPerItem)),
  };
}

function latencyLines(what: string, lib: number[], base: number[]) {
  for (const p of [50, 99]) {
    const [l, b] = [pct(lib, p), pct(base, p)];
    console.log(`  ${`    ${what} latency p${p}`.padEnd(34)} lib ${ms(l).padStart(10)}   baseline ${ms(b).padStart(10)}`);
  }
}

async function bench(h: Harness) {
  const pgOnly = h.name === 'postgres';
  console.log(`\n${h.name}: ${ROUNDS} rounds each, best round shown (single ${fmt(h.single)} items, batched ${fmt(h.batched)} items)`);
  const one = await pair('(a) 1 per claim, 1 loop', () => libPrimitives(h, 1, 1, h.single), () => basePrimitives(h, 1, 1, h.single));
  line(one.label, one.lib, one.base, 0.9);
  if (!pgOnly) cpuLine(one.libCpu, one.baseCpu);
  const batched = await pair('(a) 50 per claim, 4 loops', () => libPrimitives(h, 50, 4, h.batched), () => basePrimitives(h, 50, 4, h.batched));
  line(batched.label, batched.lib, batched.base, 0.9);
  if (!pgOnly) cpuLine(batched.libCpu, batched.baseCpu);
  const eight = await pair('(c) 1 per claim, 8 loops, coalesced', () => libPrimitives(h, 1, 8, h.single), () => basePrimitives(h, 1, 8, h.single));
  line(eight.label, eight.lib, eight.base, pgOnly ? 2 : 1);
  if (!pgOnly) cpuLine(eight.libCpu, eight.baseCpu);
  latencyLines('claim', eight.libLat, eight.baseLat);
  latencyLines('complete', eight.libDone, eight.baseDone);
  if (h.base.claimPerRow) {
    const runs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) runs.push((await basePrimitives(h, 1, 8, h.single, true)).perSec);
    line('    same, baseline token per row', eight.lib, best(runs), null);
  }
  const procRuns: Run[] = [];
  for (let r = 0; r < ROUNDS; r++) procRuns.push(await libProcess(h, h.batched));
  line('(b) process(), defaults, conc. 8', best(procRuns.map((r) => r.perSec)), batched.base, 0.9);
  if (!pgOnly) cpuLine(Math.min(...procRuns.map((r) => r.cpuPerItem)), batched.baseCpu);
  const proc1Runs: Run[] = [];
  for (let r = 0; r < ROUNDS; r++) proc1Runs.push(await libProcess(h, h.single, 1));
  line('(b) process(), batchSize 1, conc. 8', best(proc1Runs.map((r) => r.perSec)), eight.base, pgOnly ? 2 : null);
  const add = await pair(`(d) add() of ${fmt(ADD_ITEMS)} items`, () => libAdd(h), () => baseAdd(h));
  line(add.label, add.lib, add.base, 0.7);
  const plainRuns: number[] = [];
  for (let r = 0; r < ROUNDS; r++) plainRuns.push((await baseAdd(h, false)).perSec);
  line('    same, baseline without ON CONFLICT', add.lib, best(plainRuns), null);
}

const ONLY = process.env.BENCH_ONLY; // sqlite | postgres: one backend
if (ONLY !== 'postgres') {
  const sqlite = sqliteHarness();
  try {
    await bench(sqlite);
  } finally {
    await sqlite.close();
  }
}
const postgres = ONLY === 'sqlite' ? null : await postgresHarness();
if (postgres) {
  try {
    await bench(postgres);
  } finally {
    await postgres.close();
  }
}
console.log(`\ntargets ${allMet ? 'met' : 'NOT met'}`);
