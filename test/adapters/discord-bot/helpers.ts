import { expect } from 'vitest';
import { SessionManager, type SessionManagerOptions } from 'multisession';
import { discordBot, type DiscordBotAdapter } from 'multisession/adapters/discord-bot';
import { createManualClock, type ManualClock } from 'multisession/testing';
import type { FakeDiscord, FakeDiscordBot } from './fake-discord.js';

export { quiet, until, watch, within } from '../telegram-bot/helpers.js';
import { until, within } from '../telegram-bot/helpers.js';

/** A channel id of the fake's guild. */
export const CHANNEL = '41771983423143937';
export const OTHER_CHANNEL = '41771983423143938';

export interface Setup {
  m: SessionManager;
  clock: ManualClock;
  bot: FakeDiscordBot;
  discord: DiscordBotAdapter;
}

/** A manager on a manual clock with the adapter, and one session `bot` (not started) on a new fake bot. */
export async function setup(api: FakeDiscord, config: Record<string, unknown> = {}, options: Partial<SessionManagerOptions> & { bot?: FakeDiscordBot } = {}): Promise<Setup> {
  const { bot: given, ...managerOptions } = options;
  const clock = createManualClock();
  const discord = discordBot();
  const bot = given ?? api.bot();
  const m = new SessionManager({
    adapters: [discord],
    clock,
    health: { intervalMs: 3_600_000, timeoutMs: 5_000, unhealthyThreshold: 3, jitter: 0 },
    restart: { retries: 3, minDelayMs: 1_000, maxDelayMs: 8_000, factor: 2 },
    ...managerOptions,
  });
  await m.open();
  await m.create({ id: 'bot', platform: 'discord-bot', credentials: { token: bot.token }, config: { apiRoot: api.url, ...config } as never });
  return { m, clock, bot, discord };
}

/** Starts the session: ready once the gateway said READY (or RESUMED). */
export async function started(s: Setup): Promise<void> {
  expect((await within(s.m.start('bot'), 'start')).state).toBe('ready');
  await until(() => s.bot.live !== null, 'a live gateway socket');
}
