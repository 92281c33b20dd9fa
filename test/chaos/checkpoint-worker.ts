/**
 * A chaos worker: drains the `chaos` stream with `process()`, writing each item's effect into a
 * ledger guarded by the fencing token. Every claim, completion and lost lease goes to an
 * append-only log file (written synchronously, so a SIGKILL loses nothing already logged).
 *
 * With CHAOS_STALE=1 it also claims a batch by hand, prints `STALLED`, waits for `go` on stdin
 * (the test SIGSTOPs it in between, longer than the lease), then tries to complete that batch.
 *
 * Env: CHAOS_BACKEND (sqlite|postgres), CHAOS_DB (file) or CHAOS_PG_URL + CHAOS_SCHEMA,
 * CHAOS_ID, CHAOS_LOG, CHAOS_LEASE_MS, CHAOS_STALE.
 */
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createCheckpoint, type CheckpointHost, type Lease } from '../../src/checkpoint/index.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const id = env('CHAOS_ID');
const logFile = env('CHAOS_LOG');
const leaseMs = Number(process.env.CHAOS_LEASE_MS ?? 1500);
const log = (line: string) => appendFileSync(logFile, `${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Ledger {
  /** Applies the effect unless a newer token already did; returns false when refused. */
  write(key: string, token: number): Promise<boolean>;
  close(): Promise<void>;
}

async function open(): Promise<{ store: CheckpointHost; ledger: Ledger }> {
  if (env('CHAOS_BACKEND') === 'sqlite') {
    const { default: Database } = await import('better-sqlite3');
    // The module itself, not the subpath entry: a worker restarted under chaos starts faster without the storage driver.
    const { sqliteCheckpoint } = await import('../../src/storage/sqlite/sqlite-checkpoint.js');
    const db = new Database(env('CHAOS_DB'), { timeout: 30_000 });
    const write = db.prepare(`INSERT INTO chaos_ledger (key, token, worker, writes) VALUES (?, ?, ?, 1)
      ON CONFLICT (key) DO UPDATE SET token = excluded.token, worker = excluded.worker, writes = writes + 1
      WHERE excluded.token > chaos_ledger.token`);
    return {
      store: sqliteCheckpoint({ database: db }, { busyTimeoutMs: 30_000 }),
      ledger: {
        write: async (key, token) => write.run(key, token, id).changes === 1,
        close: async () => void db.close(),
      },
    };
  }
  const { default: pg } = await import('pg');
  const { postgresCheckpoint } = await import('../../src/storage/postgres/postgres-checkpoint.js');
  const schema = env('CHAOS_SCHEMA');
  const pool = new pg.Pool({ connectionString: env('CHAOS_PG_URL'), max: 6 });
  const sql = `INSERT INTO "${schema}".chaos_ledger (key, token, worker, writes) VALUES ($1, $2, $3, 1)
    ON CONFLICT (key) DO UPDATE SET token = excluded.token, worker = excluded.worker, writes = chaos_ledger.writes + 1
    WHERE excluded.token > chaos_ledger.token`;
  return {
    store: postgresCheckpoint({ pool }, { schema }),
    ledger: {
      write: async (key, token) => ((await pool.query(sql, [key, token, id])).rowCount ?? 0) === 1,
      close: () => pool.end(),
    },
  };
}

const { store, ledger } = await open();
const cp = createCheckpoint({ storage: store, stream: 'chaos', maxAttempts: 1000 });
cp.on('batch.claimed', (e) => log(`claim ${id} ${Date.now()} ${e.leases.map((l) => `${l.key}:${l.token}`).join(',')}`));
cp.on('item.completed', (e) => log(`ok ${id} ${e.key} ${e.token}`));
cp.on('lease.lost', (e) => log(`lost ${id} ${e.key} ${e.token} ${e.phase} ${e.error.code}`));
cp.on('process.error', (e) => log(`error ${id} ${e.operation} ${e.error.message.replace(/\s+/g, ' ')}`));
log(`start ${id} ${process.pid}`);

async function drain(): Promise<void> {
  for (;;) {
    await cp.process(
      async (item, { lease, signal }) => {
        await sleep(5 + Math.floor(Math.random() * 10));
        if (signal.aborted) throw signal.reason;
        if (!(await ledger.write(item.key, lease.token))) log(`refused ${id} ${item.key} ${lease.token}`);
      },
      { owner: id, concurrency: 2, batchSize: 8, leaseMs },
    );
    const s = await cp.stats();
    if (s.done + s.dead === s.total) return;
    await sleep(100); // leases of killed workers are still running out
  }
}

async function staleBatch(): Promise<void> {
  await sleep(300);
  const leases: Lease[] = await cp.claim({ owner: `${id}-stale`, limit: 20, leaseMs });
  for (const l of leases) await ledger.write(l.key, l.token);
  log(`stale-claimed ${id} ${leases.map((l) => `${l.key}:${l.token}`).join(',')}`);
  const lines = createInterface({ input: process.stdin });
  const go = new Promise<void>((resolve) => lines.on('line', (line) => line.trim() === 'go' && resolve()));
  process.stdout.write(`STALLED ${leases.map((l) => `${l.key}:${l.token}`).join(',')}\n`);
  await go;
  lines.close();
  for (const lease of leases) {
    try {
      await cp.complete(lease, { by: 'stale' });
      log(`stale-ok ${id} ${lease.key} ${lease.token}`);
    } catch (err) {
      log(`stale-lost ${id} ${lease.key} ${lease.token} ${(err as { code?: string }).code ?? String(err)}`);
    }
  }
  process.stdout.write('STALE-DONE\n');
}

await Promise.all([drain(), process.env.CHAOS_STALE === '1' ? staleBatch() : Promise.resolve()]);
log(`exit ${id}`);
await ledger.close();
process.exit(0);
