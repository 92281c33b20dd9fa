/**
 * A simulated Telegram account, written with `defineAdapter` like any third-party adapter.
 *
 * "Logging in" opens the chats file (the stand-in for Telegram's servers); `send` performs the two
 * platform actions the seed's clone script needs: read the source chat's history, and forward one
 * message to the target chat carrying the checkpoint lease's fencing token.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineAdapter } from 'multisession';
import { chatStatements, openChats, type ChatsDatabase } from './chats.js';

export const telegramCredentials = z.object({
  apiId: z.number().int().positive('the api_id from my.telegram.org'),
  apiHash: z.string().regex(/^[0-9a-f]{32}$/, 'the api_hash from my.telegram.org: 32 hex characters'),
  phone: z.string().regex(/^\+[1-9]\d{6,14}$/, 'the account phone number in international form, e.g. +5511999990000'),
});

export const telegramConfig = z.object({
  /** The SQLite file standing in for Telegram (source and target chats). */
  chatsFile: z.string().min(1, 'the path of the chats file'),
  /** Simulated network time of each forward, in ms. */
  sendDelayMs: z.number().int().min(0).max(10_000).default(0),
});

export const telegramAction = z.discriminatedUnion('type', [
  /** Source messages with id > afterId, oldest first. */
  z.strictObject({ type: z.literal('history'), afterId: z.number().int().min(0), limit: z.number().int().min(1).max(1000) }),
  /** Post (or take over the post of) one source message in the target chat, fenced by `fence`. */
  z.strictObject({
    type: z.literal('forward'),
    sourceId: z.number().int().positive(),
    text: z.string(),
    fence: z.number().int().min(0),
  }),
]);

export const telegramAdapter = defineAdapter({
  name: 'telegram',
  description: 'Simulated Telegram account: reads a source chat and forwards to a target chat kept in a SQLite file',
  credentials: telegramCredentials,
  config: telegramConfig,
  action: telegramAction,
  connect(ctx) {
    let db: ChatsDatabase | null = null;
    let chats: ReturnType<typeof chatStatements> | null = null;
    return {
      async start() {
        db = openChats(ctx.config.chatsFile);
        chats = chatStatements(db);
        ctx.log.info('connected', { apiId: ctx.credentials.apiId });
      },
      async stop() {
        db?.close();
        db = null;
        chats = null;
      },
      async health() {
        db?.prepare('SELECT 1').get();
        return { status: db ? 'healthy' : 'unhealthy' };
      },
      async send(action) {
        if (!chats) throw new Error('not connected');
        if (action.type === 'history') return chats.history(action.afterId, action.limit).map((m) => ({ id: m.id, text: m.text }));
        if (ctx.config.sendDelayMs > 0) await sleep(ctx.config.sendDelayMs, undefined, { signal: ctx.signal });
        const outcome = chats.forward(action.sourceId, action.text, ctx.id, action.fence);
        if (outcome.outcome !== 'refused') ctx.stats.increment(outcome.outcome);
        return { ...outcome };
      },
    };
  },
});
