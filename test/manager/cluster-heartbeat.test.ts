import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager, type StorageDriver } from 'multisession';
import { sqliteStorage } from 'multisession/sqlite';
import { idleAdapter } from '../helpers/idle-adapter.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe('the cluster heartbeat', () => {
  it('stays one timer after a renewal run early by a start (an event loop blocked past the period)', { timeout: 20_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-beat-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const base = sqliteStorage({ filename: join(dir, 'store.db') });
    let beats = 0;
    const cluster = base.cluster!;
    // The same store, its heartbeats counted.
    const counted: StorageDriver = { ...base, cluster: { ...cluster, heartbeat: (...args: Parameters<typeof cluster.heartbeat>) => (beats++, cluster.heartbeat(...args)) } };
    const m = new SessionManager({ storage: counted, secretKey: Buffer.alloc(32, 9).toString('base64'), adapters: [idleAdapter], cluster: { leaseTtlMs: 1_500 } });
    await m.open();
    cleanup.push(() => m.close());
    // Heartbeats are due every 500 ms. Three times: block the loop past the period, then start a
    // session, whose claim renews at once (the timer has not fired yet).
    for (let i = 0; i < 3; i++) {
      await m.create({ id: `s${i}`, platform: 'idle' });
      const until = Date.now() + 700;
      while (Date.now() < until); // a busy event loop
      await m.start(`s${i}`);
    }
    beats = 0;
    await new Promise((r) => setTimeout(r, 3_000));
    // 3 s at one heartbeat per 500 ms is 6; each early renewal that left a second timer behind would add 6 more.
    expect(beats).toBeGreaterThanOrEqual(4);
    expect(beats).toBeLessThanOrEqual(8);
  });
});
