/**
 * A manager with the discord-bot adapter in a real child process, for the crash test.
 *
 * argv: <sqlite file> <REST api root> <bot token>
 * env:  MULTISESSION_SECRET_KEY
 *
 * Creates (or restores) session `bot`, starts it, prints READY, and for each inbound message
 * prints `GOT <id>` and never finishes handling it: the test SIGKILLs the process there, between
 * receiving the message and storing the sequence number past it. Exits by itself after 30 s if
 * nobody kills it.
 */
import { SessionManager } from 'multisession';
import { discordBot } from 'multisession/adapters/discord-bot';
import { sqliteStorage } from 'multisession/sqlite';

const [file, apiRoot, token] = process.argv.slice(2) as [string, string, string];
setTimeout(() => process.exit(3), 30_000).unref();
const keepAlive = setInterval(() => {}, 60_000);

const manager = new SessionManager({ storage: sqliteStorage({ filename: file }), adapters: [discordBot()] });
manager.on('session.message', (e) => {
  if (e.direction !== 'in') return;
  process.stdout.write(`GOT ${(e.message as { id: string }).id}\n`);
  return new Promise<void>(() => {}); // handling never ends: the cursor never moves past it
});
await manager.open();
await manager.create({ id: 'bot', platform: 'discord-bot', credentials: { token }, config: { apiRoot } });
await manager.start('bot');
await manager.waitFor('bot', 'ready', { timeoutMs: 10_000 });
process.stdout.write('READY\n');
void keepAlive;
