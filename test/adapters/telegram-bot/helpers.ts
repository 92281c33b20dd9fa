import { expect } from 'vitest';
import { SessionManager, type SessionManagerOptions } from 'multisession';
import { telegramBot, type TelegramBotAdapter } from 'multisession/adapters/telegram-bot';
import { createManualClock, type ManualClock } from 'multisession/testing';
import type { FakeBot, FakeBotApi } from './fake-bot-api.js';

/** Waits (on real I/O, bounded) until `check` holds; fails with `what` otherwise. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`never happened within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves with `p`, or fails when real I/O has not settled it within 5 s. */
export function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle`)), 5_000)));
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** Lets in-flight real I/O land (a bounded pause for checks that something did NOT happen). */
export const quiet = (ms = 60) => new Promise((r) => setTimeout(r, ms));

/** A promise whose outcome can be read synchronously. */
export function watch<T>(p: Promise<T>) {
  const w = { done: false, value: undefined as T | undefined, error: undefined as unknown, promise: p };
  p.then(
    (v) => {
      w.done = true;
      w.value = v;
    },
    (e: unknown) => {
      w.done = true;
      w.error = e;
    },
  );
  return w;
}

export interface Setup {
  m: SessionManager;
  clock: ManualClock;
  bot: FakeBot;
  telegram: TelegramBotAdapter;
}

/** A manager on a manual clock with the adapter, and one session `bot` (not started) on a new fake bot. */
export async function setup(api: FakeBotApi, config: Record<string, unknown> = {}, options: Partial<SessionManagerOptions> = {}): Promise<Setup> {
  const clock = createManualClock();
  const telegram = telegramBot();
  const bot = api.bot();
  const m = new SessionManager({
    adapters: [telegram],
    clock,
    health: { intervalMs: 3_600_000, timeoutMs: 5_000, unhealthyThreshold: 3, jitter: 0 },
    restart: { retries: 3, minDelayMs: 1_000, maxDelayMs: 8_000, factor: 2 },
    ...options,
  });
  await m.open();
  await m.create({ id: 'bot', platform: 'telegram-bot', credentials: { token: bot.token }, config: { apiRoot: api.url, pollTimeoutSec: 10, ...config } as never });
  return { m, clock, bot, telegram };
}

/** Starts the session and waits until its first long poll is held by the fake. */
export async function started(s: Setup): Promise<void> {
  expect((await within(s.m.start('bot'), 'start')).state).toBe('ready');
  if ((await s.m.get('bot')).config.mode !== 'webhook') await until(() => s.bot.poll !== null, 'the first long poll');
}
