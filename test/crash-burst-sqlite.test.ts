import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, expect, it } from 'vitest';
import { fixture } from './fixtures/storage/helpers.js';

/**
 * A burst of creates and starts in a real child process, SIGKILLed in the middle: what an
 * acknowledged call promised must be in the SQLite file. The child never lets its event loop turn
 * (see test/fixtures/storage/burst-child.ts), which is how the write-behind used to starve: 440
 * sessions acknowledged, 0 transition rows and 0 audit rows on disk.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ms-burst-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The write-behind's default lag bound (`persist.flushMs`). */
const FLUSH_MS = 250;
/** Time a due batch may take to be written (and the child to be scheduled) on a loaded machine. */
const WRITE_SLACK_MS = 750;

interface Ack {
  id: string;
  at: number;
}

/** Runs the burst child until it has acknowledged `minAcks` sessions over at least `minMs`, then SIGKILLs it. */
function burstAndKill(file: string, minAcks: number, minMs: number): Promise<{ acks: Ack[]; killedAt: number; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture('burst-child.ts'), file], {
      cwd: root,
      env: { ...process.env, MULTISESSION_SECRET_KEY: randomBytes(32).toString('base64') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acks: Ack[] = [];
    let killedAt = 0;
    let partial = '';
    let stderr = '';
    const kill = () => {
      if (killedAt) return;
      killedAt = Date.now();
      child.kill('SIGKILL');
    };
    // The test's own bound: the child is killed whatever happens.
    const guard = setTimeout(() => {
      kill();
      reject(new Error(`the burst child did not acknowledge ${minAcks} sessions in time (${acks.length}); stderr: ${stderr}`));
    }, 40_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!; // an incomplete last line waits for the next chunk
      for (const line of lines) {
        const [tag, id, at] = line.split(' ');
        if (tag === 'ACK') acks.push({ id: id!, at: Number(at) });
      }
      if (acks.length >= minAcks && Date.now() - acks[0]!.at >= minMs) kill();
    });
    child.on('error', (error) => {
      kill();
      reject(error);
    });
    child.on('close', (_code, signal) => {
      clearTimeout(guard);
      if (!killedAt) reject(new Error(`the burst child exited by itself; stderr: ${stderr}`));
      else resolve({ acks, killedAt, signal });
    });
  });
}

it('a burst of creates and starts killed with SIGKILL: every acknowledged call has its audit row, and the status and transitions of sessions acknowledged more than the lag bound before the kill are in the file', async () => {
  const file = join(dir, 'burst.db');
  const { acks, killedAt, signal } = await burstAndKill(file, 400, 2 * (FLUSH_MS + WRITE_SLACK_MS));
  expect(signal).toBe('SIGKILL');
  expect(acks.length).toBeGreaterThanOrEqual(400);

  const db = new Database(file);
  try {
    const sessions = new Map(
      (db.prepare('SELECT id, desired_state, state FROM sessions').all() as { id: string; desired_state: string; state: string }[]).map((r) => [r.id, r]),
    );
    const audited = new Set(
      (db.prepare("SELECT session_id, action FROM audit_log WHERE actor = 'burst'").all() as { session_id: string; action: string }[]).map(
        (r) => `${r.action}:${r.session_id}`,
      ),
    );
    const transitions = new Map(
      (db.prepare('SELECT session_id, count(*) AS n FROM session_transitions GROUP BY session_id').all() as { session_id: string; n: number }[]).map(
        (r) => [r.session_id, r.n],
      ),
    );

    // Every acknowledged create and start: the session, its desired state and both audit rows.
    const missing = acks.filter(
      ({ id }) => sessions.get(id)?.desired_state !== 'running' || !audited.has(`create:${id}`) || !audited.has(`start:${id}`),
    );
    expect(missing.map((a) => a.id)).toEqual([]);

    // Acknowledged more than the lag bound (plus the time to write a batch) before the kill:
    // its status (ready) and its transitions (stopped → starting → ready) reached the file.
    const settled = acks.filter((a) => a.at <= killedAt - FLUSH_MS - WRITE_SLACK_MS);
    expect(settled.length).toBeGreaterThan(0);
    const behind = settled.filter(({ id }) => sessions.get(id)?.state !== 'ready' || (transitions.get(id) ?? 0) < 2);
    expect(behind.map((a) => a.id)).toEqual([]);
  } finally {
    db.close();
  }
}, 60_000);
