/**
 * The fake Bot API of `bench/adapters.ts` in a process of its own (the test fake,
 * test/adapters/telegram-bot/fake-bot-api.ts), so that its CPU never counts as the clients'.
 * Driven over IPC: `{ op: 'bots', n }` registers n bots and answers their tokens; `{ op: 'push',
 * tokens, perBot }` queues perBot text messages on each of those bots; `{ op: 'cpu' }` answers
 * this process's CPU time (µs); `{ op: 'held', tokens }` how many of those bots have a long poll held; `{ op: 'close' }` ends it.
 */
import { startFakeBotApi } from '../test/adapters/telegram-bot/fake-bot-api.js';

type Command = { op: 'bots'; n: number } | { op: 'push'; tokens: string[]; perBot: number } | { op: 'held'; tokens: string[] } | { op: 'cpu' } | { op: 'close' };

const api = await startFakeBotApi({ keepAliveTimeoutMs: 120_000 });
const send = (message: unknown) => process.send!(message);

process.on('message', (raw) => {
  const command = raw as Command;
  switch (command.op) {
    case 'bots':
      return send({ op: 'bots', url: api.url, tokens: Array.from({ length: command.n }, () => api.bot().token) });
    case 'push': {
      let n = 0;
      for (const token of command.tokens) {
        // The held long poll answers once, with the whole batch (as Telegram's does when a burst is waiting).
        const bot = api.bot(token);
        const held = bot.poll;
        bot.poll = null;
        for (let i = 0; i < command.perBot; i++, n++) bot.pushMessage(1_000 + i, `message ${i}`);
        bot.poll = held;
        held?.('updates');
      }
      return send({ op: 'pushed', n });
    }
    case 'held':
      return send({ op: 'held', n: command.tokens.filter((t) => api.bot(t).poll !== null).length });
    case 'cpu': {
      const cpu = process.cpuUsage();
      return send({ op: 'cpu', us: cpu.user + cpu.system });
    }
    case 'close':
      void api.close().then(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
send({ op: 'ready' });
