/**
 * Work-unit benchmark, on SQLite and PostgreSQL, each beside a hand-written SQL baseline of the
 * same change measured in the same run:
 *
 * - reassign: `manager.units.reassign({ fromSession }, to)` of 10,000 units in one call (checks,
 *   the move, one audit entry per unit, change rows for the cluster feed) against one
 *   transaction of plain SQL that writes the same rows (an `INSERT … SELECT` of the audit entries,
 *   an `UPDATE` of the units, two change rows) with the raw client;
 * - pickSession: the best of 1,000 ready sessions against one plain SQL query that ranks them the
 *   same way (state and health, priority, spare capacity, fewest units).
 *
 * Ratios are baseline time / library time (1× = as fast as hand-written SQL; the target is ≥ 0.5×).
 *
 *   npm run bench:units
 *   UNITS=10000 SESSIONS=1000 ROUNDS=5 npm run bench:units
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
import { SessionManager, type StorageDriver } from 'multisession';
import { postgresStorage } from 'multisession/postgres';
import { sqliteStorage } from 'multisession/sqlite';
import { simulatedAdapter } from 'multisession/testing';

const UNITS = Number(process.env.UNITS ?? 10_000);
const SESSIONS = Number(process.env.SESSIONS ?? 1_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const PICKS = Number(process.env.PICKS ?? 50);
const PG_URL = process.env.MULTISESSION_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(2).padStart(9)} ms`;
const time = async (fn: () => Promise<unknown>): Promise<number> => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

/** The SQL of each dialect: the baseline's reassign (one transaction) and pick (one query). */
interface Baseline {
  /** Moves every unit of `from` to `to` with its audit entries and change rows. */
  reassign(from: string, to: string, at: number): Promise<void>;
  pick(): Promise<string | undefined>;
  close(): Promise<void>;
}

const PICK_SQL = (t: (name: string) => string) => `
  select s.id from ${t('sessions')} s
  left join (select session_id, count(*) as n from ${t('units')} where session_id is not null group by session_id) u on u.session_id = s.id
  where s.state in ('ready', 'degraded') and (s.capacity is null or s.capacity > coalesce(u.n, 0))
  order by case when s.state = 'ready' and s.health in ('healthy', 'unknown') then 0 else 1 end,
    s.priority desc, case when s.capacity is null then 1 else 0 end desc, s.capacity - coalesce(u.n, 0) desc, coalesce(u.n, 0), s.id
  limit 1`;

function sqliteBaseline(filename: string): Baseline {
  const db = new Database(filename);
  db.pragma('busy_timeout = 5000');
  const audit = db.prepare(`insert into audit_log (at, session_id, action, actor, details)
    select @at, @to, 'unit.move', 'bench', json_object('unit', id, 'from', @from, 'to', @to, 'reason', 'bench') from units where session_id = @from`);
  const move = db.prepare('update units set session_id = @to, assigned_at = @at where session_id = @from');
  const change = db.prepare('insert into session_changes (session_id) values (?)');
  const pick = db.prepare(PICK_SQL((n) => n));
  const tx = db.transaction((p: { from: string; to: string; at: number }) => {
    audit.run(p);
    move.run(p);
    change.run(p.from);
    change.run(p.to);
  });
  return {
    reassign: async (from, to, at) => void tx.immediate({ from, to, at }),
    pick: async () => (pick.get() as { id: string } | undefined)?.id,
    close: async () => void db.close(),
  };
}

function postgresBaseline(schema: string): Baseline {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const t = (n: string) => `"${schema}"."${n}"`;
  return {
    async reassign(from, to, at) {
      const c = await pool.connect();
      try {
        await c.query('begin');
        await c.query(
          `insert into ${t('audit_log')} (at, session_id, action, actor, details)
           select $1, $3, 'unit.move', 'bench', json_build_object('unit', id, 'from', $2::text, 'to', $3::text, 'reason', 'bench')::text from ${t('units')} where session_id = $2`,
          [at, from, to],
        );
        await c.query(`update ${t('units')} set session_id = $2, assigned_at = $3 where session_id = $1`, [from, to, at]);
        await c.query(`insert into ${t('session_changes')} (session_id) values ($1), ($2)`, [from, to]);
        await c.query('commit');
      } finally {
        c.release();
      }
    },
    pick: async () => (await pool.query<{ id: string }>(PICK_SQL(t))).rows[0]?.id,
    close: () => pool.end(),
  };
}

async function run(kind: string, storage: StorageDriver, baseline: () => Baseline): Promise<void> {
  const manager = new SessionManager({
    storage,
    secretKey: randomBytes(32).toString('base64'),
    adapters: [simulatedAdapter()],
    health: { intervalMs: 3_600_000 },
    restore: { concurrency: 64 },
  });
  await manager.open();
  const ids = Array.from({ length: SESSIONS }, (_, i) => `s${String(i).padStart(4, '0')}`);
  for (let i = 0; i < ids.length; i++) {
    await manager.create({ id: ids[i]!, platform: 'simulated', credentials: { token: `t-${i}` }, priority: 1 + (i % 10), capacity: i < 2 ? null : 20 + (i % 30) });
  }
  for (let i = 0; i < ids.length; i += 100) await Promise.all(ids.slice(i, i + 100).map((id) => manager.start(id)));
  for (let i = 0; i < UNITS; i += 5_000) {
    await manager.units.add(Array.from({ length: Math.min(5_000, UNITS - i) }, (_, k) => ({ id: String(i + k + 1), kind: 'pair', sessionId: ids[0]! })));
  }
  // A few units on the other sessions, so spare capacities differ.
  await manager.units.add(ids.slice(2).map((id, i) => ({ id: `x${i}`, sessionId: id })));
  const base = baseline();
  const [a, b] = [ids[0]!, ids[1]!];

  // reassign: the library moves a → b, the baseline moves b → a, alternating (same rows, same size).
  const lib: number[] = [];
  const raw: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    lib.push(await time(() => manager.units.reassign({ fromSession: a }, b, { actor: 'bench', reason: 'bench' })));
    raw.push(await time(() => base.reassign(b, a, Date.now())));
  }
  const mine = await manager.units.pickSession();
  const theirs = await base.pick();
  if (mine?.id !== theirs) throw new Error(`pickSession chose ${mine?.id}, the baseline ${theirs}`);
  const libPick: number[] = [];
  const rawPick: number[] = [];
  for (let r = 0; r < PICKS; r++) {
    libPick.push(await time(() => manager.units.pickSession()));
    rawPick.push(await time(() => base.pick()));
  }
  const line = (what: string, l: number[], b: number[]) =>
    console.log(`${kind.padEnd(9)} ${what.padEnd(36)} library ${ms(median(l))}   baseline ${ms(median(b))}   ratio ${(median(b) / median(l)).toFixed(2)}×`);
  line(`reassign ${UNITS} units (median of ${ROUNDS})`, lib, raw);
  line(`pickSession over ${SESSIONS} (median of ${PICKS})`, libPick, rawPick);
  await base.close();
  await manager.close();
}

const dir = mkdtempSync(join(tmpdir(), 'ms-bench-units-'));
try {
  const filename = join(dir, 'units.db');
  await run('sqlite', sqliteStorage({ filename }), () => sqliteBaseline(filename));
  const probe = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3_000 });
  const reachable = await probe.connect().then(
    () => true,
    () => false,
  );
  if (!reachable) console.log(`postgres  skipped: ${PG_URL} cannot be reached`);
  else {
    const schema = `ms_bench_units_${randomBytes(4).toString('hex')}`;
    try {
      await run('postgres', postgresStorage({ connectionString: PG_URL }, { schema, poolSize: 4 }), () => postgresBaseline(schema));
    } finally {
      await probe.query(`drop schema if exists "${schema}" cascade`);
    }
  }
  await probe.end().catch(() => undefined);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
