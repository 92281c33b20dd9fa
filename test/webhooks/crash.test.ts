import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { postgresForTests } from '../helpers/postgres.js';
import { SECRET_KEY, startReceiver } from './helpers.js';

/**
 * The sender is SIGKILLed while a delivery is in flight (the receiver holds the request); after a
 * restart on the same store every event arrives, each webhook-id at least once, and no event
 * twice under different ids: the receiver deduplicating by webhook-id sees each exactly once.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const child = fileURLToPath(new URL('./sender-child.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ms-webhooks-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { reachable, freshSchema } = await postgresForTests('ms_wh_crash');
const EVENTS = 8;

const running = new Set<ChildProcess>();
afterEach(() => {
  for (const c of running) c.kill('SIGKILL');
  running.clear();
});

/** Starts the child; resolves with the first line starting with `prefix` (rejects after `ms`). */
function startChild(args: string[], prefix: string, ms = 30_000): { proc: ChildProcess; line: Promise<string> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, ...args], { cwd: root, env: { ...process.env, MULTISESSION_SECRET_KEY: SECRET_KEY }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  let out = '';
  let err = '';
  const line = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${prefix}" from the child within ${ms} ms: ${err.slice(-2000)}`)), ms);
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const found = out.split('\n').find((l) => l.startsWith(prefix));
      if (found) {
        clearTimeout(timer);
        resolve(found.slice(prefix.length + 1));
      }
    });
    proc.on('exit', (code) => {
      if (!out.includes(prefix)) {
        clearTimeout(timer);
        reject(new Error(`the child exited with ${code} before "${prefix}": ${err.slice(-2000)}`));
      }
    });
  });
  return { proc, line };
}

const stores = [{ kind: 'sqlite', where: () => join(dir, 'crash.db') }, ...(reachable ? [{ kind: 'postgres', where: freshSchema }] : [])];

describe.each(stores)('a webhook sender killed mid-delivery ($kind)', ({ kind, where }) => {
  it('delivers every event after a restart, each exactly once by webhook-id', { timeout: 60_000 }, async () => {
    const target = where();
    let kill: (() => void) | null = null;
    const receiver = await startReceiver((_r, n) => {
      if (n < 4) return { status: 200 };
      if (n === 4) {
        kill?.();
        return 'hold';
      }
      return { status: 200 };
    });
    try {
      const setup = startChild([kind, target, receiver.url, 'setup', String(EVENTS)], 'SETUP');
      kill = () => setup.proc.kill('SIGKILL');
      const { secret, ids } = JSON.parse(await setup.line) as { secret: string; ids: string[] };
      await new Promise<void>((resolve) => (setup.proc.exitCode !== null || setup.proc.signalCode !== null ? resolve() : setup.proc.once('exit', () => resolve())));
      expect(setup.proc.signalCode).toBe('SIGKILL');
      expect(receiver.received).toHaveLength(4);
      const held = receiver.received[3]!.headers['webhook-id'];

      const resume = startChild([kind, target, receiver.url, 'resume', String(EVENTS)], 'DONE');
      const log = JSON.parse(await resume.line) as { id: string }[];
      expect(log.map((d) => d.id).sort()).toEqual([...ids].sort());

      const received = receiver.received.map((r) => String(r.headers['webhook-id']));
      expect(new Set(received)).toEqual(new Set(ids));
      // Only the delivery in flight at the kill may arrive twice, and with the same id.
      const twice = received.filter((id, i) => received.indexOf(id) !== i);
      expect(twice.every((id) => id === held)).toBe(true);
      const events = new Map<string, unknown>();
      for (const r of receiver.received) {
        const payload = new Webhook(secret).verify(r.body, {
          'webhook-id': String(r.headers['webhook-id']),
          'webhook-timestamp': String(r.headers['webhook-timestamp']),
          'webhook-signature': String(r.headers['webhook-signature']),
        }) as { data: { n: number } };
        events.set(String(r.headers['webhook-id']), payload.data.n);
      }
      expect([...events.values()].sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: EVENTS }, (_, i) => i + 1));
    } finally {
      await receiver.close();
    }
  });
});
