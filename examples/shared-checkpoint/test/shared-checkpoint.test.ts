import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createCheckpoint } from 'multisession';
import { sqliteCheckpoint } from 'multisession/sqlite';
import { runScenario, verifyRun, type ScenarioReport } from '../run.js';
import { chatStatements, openChats, seedSource } from '../src/chats.js';

const RUN = fileURLToPath(new URL('../run.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dirs: string[] = [];
const scratch = () => {
  const d = mkdtempSync(join(tmpdir(), 'ms-shared-checkpoint-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', RUN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('shared checkpoint example: two worker processes, one source, one target', () => {
  const N = 500;

  it('copies every message exactly once although one worker is SIGKILLed and the other stalls past its lease', { timeout: 120_000 }, async () => {
    const dir = scratch();
    // Its own time limit is below the test's, so on a hang it cleans its processes up and reports.
    const report: ScenarioReport = await runScenario({ dir, messages: N, leaseMs: 1_000, timeoutMs: 90_000 });
    expect(report.violations).toEqual([]);

    // Exactly once, read straight from the target chat.
    const chats = new Database(join(dir, 'shared', 'chats.db'), { readonly: true });
    const perMessage = chats.prepare('SELECT source_id AS id, count(*) AS n, max(token) AS token FROM target_messages GROUP BY source_id').all() as {
      id: number;
      n: number;
      token: number;
    }[];
    const sourceIds = (chats.prepare('SELECT id FROM source_messages ORDER BY id').all() as { id: number }[]).map((r) => r.id);
    const authors = chats.prepare('SELECT DISTINCT session_id AS s FROM target_messages ORDER BY s').all() as { s: string }[];
    chats.close();
    expect(sourceIds).toHaveLength(N);
    expect(perMessage.map((r) => r.id).sort((a, b) => a - b)).toEqual(sourceIds);
    expect(perMessage.filter((r) => r.n !== 1)).toEqual([]);
    expect(authors.map((a) => a.s)).toEqual(['session1', 'session2']); // both sessions did part of the work

    // The checkpoint: all done, and each target message carries the token of the lease that completed it.
    const storage = sqliteCheckpoint({ filename: join(dir, 'shared', 'checkpoint.db') });
    const cp = createCheckpoint({ storage, stream: 'messages' });
    try {
      expect(await cp.stats()).toMatchObject({ done: N, total: N, pending: 0, processing: 0, failed: 0, dead: 0 });
      for (const r of perMessage) expect((await cp.get(`msg:${r.id}`))?.token).toBe(r.token);
    } finally {
      await storage.close();
    }

    // The killed worker held a lock; it was taken over once its lease ran out.
    expect(report.kill?.heldKeys.length).toBeGreaterThan(0);
    expect(report.workers.find((w) => w.session === 'session1')?.processes).toBe(2);
    expect(report.workers.reduce((n, w) => n + w.takeovers, 0)).toBeGreaterThanOrEqual(report.kill!.heldKeys.length);
    // The stalled worker came back to a lock someone else had taken: its complete() got LeaseLostError.
    expect(report.stall?.heldKeys.length).toBeGreaterThan(0);
    expect(report.workers.find((w) => w.session === 'session2')?.leaseLost).toBeGreaterThanOrEqual(1);
    expect(report.workers.reduce((n, w) => n + w.completed, 0)).toBe(N);
  });

  it('the check passes on a clean copy and fails when the target holds a message twice, misses one or kept a stale token', async () => {
    // A copy made by hand with the same pieces the workers use: claimKey, a fenced forward, complete.
    const d = scratch();
    mkdirSync(join(d, 'shared'));
    const chats = openChats(join(d, 'shared', 'chats.db'));
    seedSource(chats, 30);
    const forward = chatStatements(chats).forward;
    const storage = sqliteCheckpoint({ filename: join(d, 'shared', 'checkpoint.db') });
    const cp = createCheckpoint({ storage, stream: 'messages' });
    try {
      for (const m of chats.prepare('SELECT id, text FROM source_messages').all() as { id: number; text: string }[]) {
        const lease = (await cp.claimKey(`msg:${m.id}`, { owner: 'by-hand', payload: m }))!;
        expect(forward(m.id, m.text, 'session1', lease.token).outcome).toBe('posted');
        // A stale token is refused by the target, whatever its order of arrival.
        expect(forward(m.id, m.text, 'session2', lease.token - 1).outcome).toBe('refused');
        await cp.complete(lease);
      }
    } finally {
      await storage.close();
    }
    expect((await verifyRun(d, 30)).violations).toEqual([]);

    chats.exec(`INSERT INTO target_messages (source_id, text, session_id, token, posted_at)
      SELECT source_id, text, session_id, token, posted_at FROM target_messages WHERE source_id = 7`);
    chats.exec('DELETE FROM target_messages WHERE source_id = 9');
    chats.exec('UPDATE target_messages SET token = token - 1 WHERE source_id = 11');
    chats.close();
    const { violations, target } = await verifyRun(d, 30);
    expect(target).toMatchObject({ rows: 30, distinctMessages: 29, duplicates: 1, missing: 1 });
    expect(violations).toEqual(
      expect.arrayContaining([
        expect.stringContaining('message 7 is in the target 2 times'),
        'message 9 is missing from the target',
        expect.stringMatching(/source 11\) carries token \d+, but the lease that completed it had \d+/),
      ]),
    );
  });

  it('run.ts exits 0 with a clean JSON report, and refuses bad input with a message', { timeout: 120_000 }, async () => {
    const ok = await runCli(['--messages', '200', '--lease-ms', '1000', '--no-stall', '--timeout-ms', '90000', '--dir', join(scratch(), 'run'), '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const r = JSON.parse(ok.stdout) as ScenarioReport;
    expect(r).toMatchObject({ messages: 200, violations: [], target: { rows: 200, distinctMessages: 200, duplicates: 0, missing: 0 } });
    expect(r.stall).toBeNull();

    const bad = await runCli(['--messages', '5', '--dir', join(scratch(), 'bad')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('seed at least 20 messages');
  });
});
