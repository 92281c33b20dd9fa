import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeProcess, until } from './fixtures/cluster/harness.js';
import { postgresForTests } from './helpers/postgres.js';

/**
 * Work units in a cluster of real processes: a unit assigned on one node reaches the adapter of
 * the node that runs its session (through the store's change feed) within a second.
 */
const pg = await postgresForTests('ms_cluster_units');
const kinds: ['sqlite' | 'postgres', (dir: string) => string][] = [['sqlite', (dir) => join(dir, 'cluster.db')]];
if (pg.reachable) kinds.push(['postgres', () => pg.freshSchema()]);

const nodes: NodeProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    n.child.kill('SIGKILL');
    await n.exited();
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.each(kinds)('units in a cluster on %s (real processes)', (kind, whereOf) => {
  it('a unit assigned on one node reaches the owning node\'s ctx.units within 1 s', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-cluster-units-'));
    dirs.push(dir);
    const where = whereOf(dir);
    const start = (nodeId: string) => {
      const n = new NodeProcess({ kind, where, nodeId, ttlMs: 1_500, probeLog: join(dir, 'probe.log') });
      nodes.push(n);
      return n;
    };
    const [a, b] = [start('node-a'), start('node-b')];
    expect((await Promise.all([a.ready, b.ready])).map((r) => r.ready)).toEqual([true, true]);
    const ids = ['s1', 's2', 's3', 's4'];
    expect(await a.call('create', { ids })).toMatchObject({ ok: true });
    // Wait until B runs a session (placement spreads them), then assign to it from A.
    const onB = await until('node-b to run a session', 20_000, async () => {
      const { running } = await b.call<{ running: string[] }>('running');
      return running[0];
    });
    expect(await a.call('unitsAdd', { units: [{ id: '1', kind: 'pair' }, { id: '2', kind: 'pair' }] })).toMatchObject({ ok: true });
    for (const unit of ['1', '2']) {
      const assigned = await a.call<{ ok: boolean; at: number; error?: string }>('unitsAssign', { ids: [unit], to: onB });
      expect(assigned).toMatchObject({ ok: true });
      const seen = await until(`node-b's adapter to see unit ${unit}`, 5_000, async () => {
        const r = await b.call<{ seen: { units: string[]; at: number }[] }>('unitsSeen', { id: onB });
        return r.seen.find((s) => s.units.includes(unit));
      });
      expect(seen.at - assigned.at).toBeLessThanOrEqual(1_000);
    }
    const last = (await b.call<{ seen: { units: string[] }[] }>('unitsSeen', { id: onB })).seen.at(-1)!;
    expect(last.units).toEqual(['1', '2']);
  });
});
