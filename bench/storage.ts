/**
 * Restore benchmark: how long a SessionManager takes to bring 10,000 stored sessions back to
 * `ready` (simulated adapter, long health interval) from SQLite and from PostgreSQL, each beside
 * a baseline measured in the same run: reading the same rows with the raw client
 * (better-sqlite3 `all()`, pg `query`).
 *
 *   npm run bench:storage                    # 10,000 sessions, 3 rounds
 *   SESSIONS=2000 ROUNDS=5 npm run bench:storage
 *
 * PostgreSQL runs against MULTISESSION_PG_URL (default postgres://postgres@127.0.0.1:5432/test)
 * in a throw-away schema; it is skipped (with a note) when the server cannot be reached.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { SessionManager } from 'multisession';
import { postgresStorage } from 'multisession/postgres';
import { sqliteStorage } from 'multisession/sqlite';
import { simulatedAdapter } from 'multisession/testing';
import { CredentialCodec } from '../src/security/credentials.js';
import type { NewSessionRecord, StorageDriver } from '../src/storage/contract.js';

const SESSIONS = Number(process.env.SESSIONS ?? 10_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const PG_URL = process.env.MULTISESSION_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const secretKey = randomBytes(32).toString('base64');
const codec = new CredentialCodec(secretKey, true);

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(1).padStart(8)} ms`;

function record(i: number): NewSessionRecord {
  const id = `bench-${String(i).padStart(6, '0')}`;
  const credentials = { token: `token-${id}` };
  const now = Date.now();
  return {
    id,
    platform: 'simulated',
    config: { greeting: `hello ${i}`, bidLimit: 10 },
    labels: { shard: String(i % 16), team: i % 2 ? 'blue' : 'green' },
    metadata: { owner: `owner-${i}`, tags: ['bench'] },
    priority: 5,
    capacity: null,
    autoStart: false,
    idleTimeoutMs: null,
    allowSharedCredentials: false,
    desiredState: 'running',
    credentials: codec.seal(credentials),
    credentialsFingerprint: codec.fingerprint(credentials),
    state: 'stopped',
    health: 'unknown',
    lastError: null,
    lastActivityAt: null,
    createdAt: now,
    updatedAt: now,
  };
}

async function seed(store: StorageDriver): Promise<void> {
  await store.init();
  let next = 0;
  const worker = async () => {
    while (next < SESSIONS) await store.sessions.create(record(next++));
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  await store.close();
}

/** One restore: open() → every session ready → the write-behind flushed. */
async function restore(makeStore: () => StorageDriver): Promise<{ open: number; ready: number; persisted: number }> {
  gc();
  const manager = new SessionManager({
    storage: makeStore(),
    adapters: [simulatedAdapter()],
    health: { intervalMs: 3_600_000 },
    historySize: 20,
    secretKey,
  });
  const t0 = performance.now();
  await manager.open();
  const open = performance.now() - t0;
  const statuses = await manager.statuses();
  const ready = statuses.filter((s) => s.state === 'ready').length;
  if (ready !== SESSIONS) throw new Error(`only ${ready} of ${SESSIONS} sessions are ready after open()`);
  const readyAt = performance.now() - t0;
  await manager.audit({ limit: 1 }); // waits for the write-behind (status, history, counters)
  const persisted = performance.now() - t0;
  await manager.close();
  return { open, ready: readyAt, persisted };
}

interface Row {
  store: string;
  baseline: number;
  list: number;
  open: number;
  ready: number;
  persisted: number;
}

async function measure(name: string, makeStore: () => StorageDriver, rawRead: () => Promise<number>): Promise<Row> {
  const baselines: number[] = [];
  const lists: number[] = [];
  const results: { open: number; ready: number; persisted: number }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    gc();
    let t = performance.now();
    const n = await rawRead();
    baselines.push(performance.now() - t);
    if (n !== SESSIONS) throw new Error(`raw read saw ${n} rows`);

    const store = makeStore();
    await store.init();
    gc();
    t = performance.now();
    const list = await store.sessions.list();
    lists.push(performance.now() - t);
    if (list.length !== SESSIONS) throw new Error(`sessions.list saw ${list.length} rows`);
    await store.close();

    results.push(await restore(makeStore));
    process.stderr.write(`  ${name} round ${round + 1}: restore ${results.at(-1)!.persisted.toFixed(0)} ms\n`);
  }
  return {
    store: name,
    baseline: median(baselines),
    list: median(lists),
    open: median(results.map((r) => r.open)),
    ready: median(results.map((r) => r.ready)),
    persisted: median(results.map((r) => r.persisted)),
  };
}

const rows: Row[] = [];
const dir = mkdtempSync(join(tmpdir(), 'ms-bench-'));
try {
  // ---------------------------------------------------------------- SQLite
  const filename = join(dir, 'bench.db');
  process.stderr.write(`seeding ${SESSIONS} sessions into SQLite…\n`);
  await seed(sqliteStorage({ filename }));
  const raw = new Database(filename, { readonly: true });
  rows.push(
    await measure(
      'sqlite',
      () => sqliteStorage({ filename }),
      async () => raw.prepare('SELECT * FROM sessions ORDER BY id').all().length,
    ),
  );
  raw.close();

  // ---------------------------------------------------------------- PostgreSQL
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const reachable = await pool.query('select 1').then(
    () => true,
    (err: Error) => (process.stderr.write(`PostgreSQL skipped: ${err.message}\n`), false),
  );
  if (reachable) {
    const schema = `ms_bench_${randomBytes(4).toString('hex')}`;
    try {
      process.stderr.write(`seeding ${SESSIONS} sessions into PostgreSQL schema ${schema}…\n`);
      await seed(postgresStorage({ connectionString: PG_URL }, { schema }));
      rows.push(
        await measure(
          'postgres',
          () => postgresStorage({ connectionString: PG_URL }, { schema }),
          async () => (await pool.query(`select * from "${schema}".sessions order by id`)).rows.length,
        ),
      );
    } finally {
      await pool.query(`drop schema if exists "${schema}" cascade`);
    }
  }
  await pool.end();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(`\nrestore ${SESSIONS.toLocaleString('en')} sessions to ready (median of ${ROUNDS}; node ${process.version})`);
console.log('store     | raw read (baseline) | sessions.list (×baseline) | open() (×)           | all ready (×)        | persisted (×)');
for (const r of rows) {
  const x = (v: number) => `${ms(v)} ${(v / r.baseline).toFixed(1).padStart(6)}×`;
  console.log(`${r.store.padEnd(9)} | ${ms(r.baseline)}         | ${x(r.list)}       | ${x(r.open)} | ${x(r.ready)} | ${x(r.persisted)}`);
}
const sqlite = rows.find((r) => r.store === 'sqlite');
if (sqlite) {
  console.log(`\nSQLite target: 10,000 restored in under 2,000 ms → ${sqlite.ready.toFixed(0)} ms to all ready, ${sqlite.persisted.toFixed(0)} ms with status, history and counters written: ${sqlite.persisted < 2000 ? 'met' : 'NOT met'}${SESSIONS !== 10_000 ? ` (ran with ${SESSIONS})` : ''}`);
}
