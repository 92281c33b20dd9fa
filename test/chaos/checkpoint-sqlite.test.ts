import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createCheckpoint } from '../../src/checkpoint/index.js';
import { sqliteCheckpoint } from '../../src/storage/sqlite/index.js';
import { runChaos, verifyChaos, type ChaosOptions } from './harness.js';

const ITEMS = 5000;
const dir = mkdtempSync(join(tmpdir(), 'ms-chaos-sqlite-'));
const file = join(dir, 'checkpoint.db');
const db = new Database(file, { timeout: 30_000 });
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('chaos: SQLite checkpoint shared by 4 processes', () => {
  it('drains 5,000 items through SIGKILLs and a SIGSTOP longer than the lease, each effect exactly once', async () => {
    const checkpoint = createCheckpoint({ storage: sqliteCheckpoint({ database: db }, { busyTimeoutMs: 30_000 }), stream: 'chaos', maxAttempts: 1000 });
    db.exec('CREATE TABLE IF NOT EXISTS chaos_ledger (key TEXT PRIMARY KEY, token INTEGER NOT NULL, worker TEXT NOT NULL, writes INTEGER NOT NULL)');
    expect(await checkpoint.add(Array.from({ length: ITEMS }, (_, i) => ({ key: `item-${String(i).padStart(5, '0')}`, payload: { i } })))).toBe(ITEMS);
    const options: ChaosOptions = {
      env: { CHAOS_BACKEND: 'sqlite', CHAOS_DB: file },
      checkpoint,
      ledger: async () => db.prepare('SELECT key, token, writes FROM chaos_ledger').all() as { key: string; token: number; writes: number }[],
      items: ITEMS,
      workers: 4,
      leaseMs: 1500,
      deadlineMs: 100_000,
    };
    const report = await runChaos(options);
    const problems = await verifyChaos(options, report);
    const count = (prefix: string) => report.logs.filter((l) => l.startsWith(prefix)).length;
    console.info(
      `chaos: kills=${report.kills} stop=${report.stopMs}ms stale=${report.staleTokens.size} lost=${count('lost ')} ` +
        `refused-ledger-writes=${count('refused ')} stale-lost=${count('stale-lost ')} errors=${count('error ')}`,
    );
    expect(problems).toEqual([]);
    expect(report.kills).toBeGreaterThan(2);
    expect(report.stopMs).toBeGreaterThan(options.leaseMs);
    expect(report.staleTokens.size).toBeGreaterThan(0);
  }, 150_000);
});
