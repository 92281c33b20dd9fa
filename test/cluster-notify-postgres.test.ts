import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager } from 'multisession';
import { idleAdapter as idle } from './helpers/idle-adapter.js';
import { postgresStorage } from 'multisession/postgres';
import { PG_URL, postgresForTests } from './helpers/postgres.js';

const pg = await postgresForTests('ms_notify');

const open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((m) => m.close()));
});

/** A node that reads the feed on its timer only once a minute: anything faster is the notification. */
async function node(schema: string): Promise<SessionManager> {
  const url = new URL(PG_URL);
  url.searchParams.set('application_name', `notify-${schema}`); // so the test finds its own connections
  const m = new SessionManager({
    storage: postgresStorage({ connectionString: url.toString() }, { schema }),
    secretKey: Buffer.alloc(32, 5).toString('base64'),
    adapters: [idle],
    cluster: { changePollMs: 60_000 },
  });
  await m.open();
  open.push(m);
  return m;
}

/** Resolves once `m` knows session `id`, or rejects after `ms` (real time: the feed runs on real timers). */
async function sees(m: SessionManager, id: string, ms: number): Promise<number> {
  const from = Date.now();
  for (;;) {
    if ((await m.list()).items.some((s) => s.id === id)) return Date.now() - from;
    if (Date.now() - from > ms) throw new Error(`the node did not see ${id} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!pg.reachable)('cluster change feed on PostgreSQL: LISTEN/NOTIFY', () => {
  it('a node learns of a session created on another at once, not at its next poll', { timeout: 30_000 }, async () => {
    const schema = pg.freshSchema();
    const [a, b] = [await node(schema), await node(schema)];
    await a.create({ id: 'n1', platform: 'idle' });
    expect(await sees(b, 'n1', 5_000)).toBeLessThan(5_000);
    await b.delete('n1');
    for (let end = Date.now() + 5_000; (await a.list()).items.length > 0; ) {
      if (Date.now() > end) throw new Error('A did not see the delete');
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it('listens again after its connection is killed, and reads what changed meanwhile', { timeout: 30_000 }, async () => {
    const schema = pg.freshSchema();
    const [a, b] = [await node(schema), await node(schema)];
    const errors: string[] = [];
    b.on('manager.error', (e) => errors.push(e.error.message));
    const listening = async () =>
      (
        await pg.admin.query<{ pid: number }>("select pid from pg_stat_activity where query like 'LISTEN multisession_changes%' and application_name = $1", [
          `notify-${schema}`,
        ])
      ).rows.map((r) => r.pid);
    const before = await listening();
    expect(before).toHaveLength(2); // one per node
    for (const pid of before) await pg.admin.query('select pg_terminate_backend($1)', [pid]);
    await a.create({ id: 'while-down', platform: 'idle' }); // may be announced to nobody
    // Each node connects again within about a second and reads the feed once it listens.
    expect(await sees(b, 'while-down', 10_000)).toBeLessThan(10_000);
    await a.create({ id: 'after', platform: 'idle' });
    expect(await sees(b, 'after', 5_000)).toBeLessThan(5_000);
    expect(errors.length).toBeGreaterThan(0); // the loss was reported
  });
});
