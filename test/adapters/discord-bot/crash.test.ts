import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionManager } from 'multisession';
import { DISCORD_GATEWAY_STATE_KEY, discordBot } from 'multisession/adapters/discord-bot';
import { sqliteStorage } from 'multisession/sqlite';
import { startFakeDiscord } from './fake-discord.js';
import { CHANNEL, until } from './helpers.js';

/**
 * At least once across a crash: a real child process receives a message over the gateway and is
 * SIGKILLed while its listener still handles it (the socket drops without a close frame). A
 * manager opened on the same SQLite file resumes the stored gateway session, and Discord replays
 * the message; once it is handled, the next restart replays nothing.
 */
const api = await startFakeDiscord();
const dir = mkdtempSync(join(tmpdir(), 'ms-discord-crash-'));
const children = new Set<ChildProcess>();
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const SECRET_KEY = Buffer.alloc(32, 9).toString('base64');

/** Spawns the child; `line(prefix)` resolves once its stdout has such a line. Killed after 20 s regardless. */
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
  return { child, exited, line };
}

describe('discord-bot: at least once across a crash (SIGKILL, SQLite)', () => {
  it('a message received but not yet handled when the process died is replayed by the resumed session, once', async () => {
    const file = join(dir, 'bot.db');
    const bot = api.bot();
    const crashed = spawnChild([file, api.url, bot.token]);
    await crashed.line('READY');
    const message = bot.pushMessage(CHANNEL, 'handle me');
    await crashed.line(`GOT ${message.id as string}`);
    crashed.child.kill('SIGKILL'); // between receiving and committing
    expect(await crashed.exited).toBe('SIGKILL');
    await until(() => bot.live === null, 'the fake to see the socket drop');

    const open = async () => {
      const m = new SessionManager({ storage: sqliteStorage({ filename: file }), adapters: [discordBot()], secretKey: SECRET_KEY });
      const seen: string[] = [];
      m.on('session.message', async (e) => {
        if (e.direction === 'in') seen.push((e.message as { text: string }).text);
      });
      await m.open();
      return { m, seen };
    };
    const restored = await open();
    try {
      await until(() => restored.seen.length === 1, 'the message replayed');
      expect(restored.seen).toEqual(['handle me']);
      expect(bot.framesOf(2)).toHaveLength(1); // the session was resumed, not identified again
      expect(bot.framesOf(6)).toHaveLength(1);
      await until(async () => ((await restored.m.kv('bot').get(DISCORD_GATEWAY_STATE_KEY)) as { seq: number }).seq === 2, 'the cursor past it');
    } finally {
      await restored.m.close();
    }

    // Handled and committed: the next start replays nothing.
    const again = await open();
    try {
      bot.pushMessage(CHANNEL, 'a new one');
      await until(() => again.seen.length === 1, 'the new message');
      expect(again.seen).toEqual(['a new one']);
    } finally {
      await again.m.close();
    }
  });
});
