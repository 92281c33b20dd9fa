import { afterAll, beforeAll, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { startChatServer, type ChatServer } from '../src/app.js';
import { demoReply, startFakeOpenAI, type FakeOpenAI } from '../src/fake-openai.js';

/**
 * The chat page in a real browser, two browser contexts (two clients with their own cookies):
 * streamed replies, an upload the other client never sees, clear and delete from the buttons.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const POLL = { timeout: 15_000, interval: 50 };
let fake: FakeOpenAI;
let server: ChatServer;
let browser: Browser;
const pageErrors: string[] = [];

beforeAll(async () => {
  fake = await startFakeOpenAI({ requireKey: false });
  fake.respond = demoReply;
  fake.chunkDelayMs = 5;
  server = await startChatServer({ backend: { baseUrl: fake.url, model: 'fake-gpt', systemPrompt: 'Be brief.' } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await fake?.close();
});

async function client() {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${server.url}/`);
  const say = async (text: string) => {
    const before = await page.getByTestId('reply').count();
    await page.getByTestId('message').fill(text);
    await page.getByTestId('send').click();
    await expect.poll(() => page.getByTestId('reply').count(), POLL).toBe(before + 1);
    return page.getByTestId('reply').last().textContent();
  };
  return { page, say };
}

it('two clients chat, upload, clear and delete from the page, each in a session of its own', { timeout: 120_000 }, async () => {
  const ann = await client();
  const bob = await client();
  expect(await ann.say('hello')).toBe('Echo #1: hello');
  expect(await ann.say('again')).toBe('Echo #2: again');
  expect(await bob.say('hi')).toBe('Echo #1: hi');
  const annId = await ann.page.getByTestId('session-id').textContent();
  expect(annId).toMatch(/^c_/);
  expect(await bob.page.getByTestId('session-id').textContent()).not.toBe(annId);
  expect(await ann.page.getByTestId('session-messages').textContent()).toBe('2');

  await ann.page.getByTestId('upload').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('the plan') });
  await expect.poll(() => ann.page.getByTestId('files').textContent(), POLL).toContain('notes.txt');
  expect(await ann.say('see it?')).toBe('Echo #3: see it? [files I can see: notes.txt]');
  expect(await bob.say('and me?')).toBe('Echo #2: and me?');
  expect(await bob.page.getByTestId('files').textContent()).toBe('');

  await ann.page.getByTestId('clear').click();
  await expect.poll(() => ann.page.getByTestId('session-history').textContent(), POLL).toBe('0 messages');
  expect(await ann.say('fresh')).toBe('Echo #1: fresh [files I can see: notes.txt]'); // files stay

  await ann.page.getByTestId('delete').click();
  await expect.poll(() => ann.page.getByTestId('session').textContent(), POLL).toContain('none yet');
  expect(await ann.say('back')).toBe('Echo #1: back'); // a new session: no history, no files
  expect(await ann.page.getByTestId('session-id').textContent()).not.toBe(annId);
  expect(pageErrors).toEqual([]);
});
