import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionManager } from 'multisession';
import { TELEGRAM_OFFSET_KEY, telegramBot } from 'multisession/adapters/telegram-bot';
import { sqliteStorage } from 'multisession/sqlite';
import { startFakeBotApi } from './fake-bot-api.js';
import { until } from './helpers.js';

/**
 * At least once across a crash: a real child process receives an update, and is SIGKILLed while
 * its listener still handles it (before the offset is committed). A manager opened on the same
 * SQLite file gets the update again; once it is handled, the next restart replays nothing.
 */
const api = await startFakeBotApi();
const dir = mkdtempSync(join(tmpdir(), 'ms-telegram-crash-'));
const children = new Set<ChildProcess>();
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const SECRET_KEY = Buffer.alloc(32, 7).toString('base64');

/** Spawns the child; resolves once its stdout has a line starting with `prefix`. Killed after 20 s regardless. */
function spawnChild(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./crash-child.ts', import.meta.url)), ...args], {
    cwd: ROOT,
    env: { ...process.env, MULTISESSION_SECRET_KEY: SECRET_KEY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      children.delete(child);
      resolve(signal ?? code);
    }),
  );
  const line = (prefix: string) => until(() => out.split('\n').some((l) => l.startsWith(prefix)), `"${prefix}" from the child (stderr: ${err.slice(-500)})`, 20_000);
  return { child, exited, line, output: () => out };
}

describe('telegram-bot: at least once across a crash (SIGKILL, SQLite)', () => {
  it('an update received but not yet handled when the process died is delivered after the restart, once', async () => {
    const file = join(dir, 'bot.db');
    const bot = api.bot();
    const crashed = spawnChild([file, api.url, bot.token]);
    await crashed.line('READY');
    const update = bot.pushMessage(42, 'handle me');
    await crashed.line(`GOT ${update.update_id}`);
    crashed.child.kill('SIGKILL'); // between receiving and committing
    expect(await crashed.exited).toBe('SIGKILL');

    // The same store, a new process (this one): the session is restored and gets the update again.
    const open = async () => {
      const m = new SessionManager({ storage: sqliteStorage({ filename: file }), adapters: [telegramBot()], secretKey: SECRET_KEY });
      const seen: string[] = [];
      m.on('session.message', async (e) => {
        if (e.direction === 'in') seen.push((e.message as { text: string }).text);
      });
      await m.open();
      return { m, seen };
    };
    const restored = await open();
    try {
      expect(await restored.m.kv('bot').get(TELEGRAM_OFFSET_KEY)).toBeUndefined(); // nothing was committed
      await until(() => restored.seen.length === 1, 'the update delivered again');
      expect(restored.seen).toEqual(['handle me']);
      await until(async () => (await restored.m.kv('bot').get(TELEGRAM_OFFSET_KEY)) === update.update_id + 1, 'the offset committed');
    } finally {
      await restored.m.close();
    }

    // Handled and committed: the next start replays nothing.
    const again = await open();
    try {
      bot.pushMessage(42, 'a new one');
      await until(() => again.seen.length === 1, 'the new update');
      expect(again.seen).toEqual(['a new one']);
    } finally {
      await again.m.close();
    }
  });
});
