import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { SessionManager } from 'multisession';
import { sqliteStorage } from 'multisession/sqlite';
import { openaiChat, type OpenAIChatReply } from 'multisession/adapters/openai-chat';
import { startFakeOpenAI } from './fake-openai.js';

/**
 * The history lives in the session's context data: on SQLite it survives a restart of the
 * process (a new manager on the same file carries the conversation on) and is encrypted at rest.
 */
const api = await startFakeOpenAI();
const dir = mkdtempSync(join(tmpdir(), 'ms-openai-'));
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});
const SECRET_KEY = Buffer.alloc(32, 9).toString('base64');

it('a conversation goes on after a restart, and its text is not stored in the clear', async () => {
  const file = join(dir, 'chat.db');
  const key = api.key();
  const open = async () => {
    const m = new SessionManager({ storage: sqliteStorage({ filename: file }), adapters: [openaiChat()], secretKey: SECRET_KEY });
    await m.open();
    return m;
  };
  const first = await open();
  await first.create({ id: 'ann', platform: 'openai-chat', credentials: { apiKey: key }, config: { baseUrl: api.url, model: 'fake-gpt' } });
  await first.start('ann');
  expect(((await first.send('ann', { text: 'remember the word zanzibar' })) as OpenAIChatReply).text).toBe('Echo #1: remember the word zanzibar');
  await first.close();

  const second = await open(); // the session was running: open() brings it back
  await second.waitFor('ann', 'ready', { timeoutMs: 5_000 });
  expect(((await second.send('ann', { text: 'which word?' })) as OpenAIChatReply).text).toBe('Echo #2: which word?');
  expect(api.completions().at(-1)!.messages.map((m) => m.content)).toEqual(['remember the word zanzibar', 'Echo #1: remember the word zanzibar', 'which word?']);
  await second.close();
  const stored = readdirSync(dir).map((f) => readFileSync(join(dir, f))); // the database and any WAL left
  expect(stored.some((b) => b.includes('remember the word'))).toBe(false);
  expect(stored.some((b) => b.includes(key))).toBe(false);
});
