import { afterAll, beforeAll, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { startFakeBotApi, type FakeBotApi } from '../../../test/adapters/telegram-bot/fake-bot-api.js';
import { startTestServer, waitForState, type TestServer } from './helpers.js';

/**
 * A user with a bot token runs a bot from the web page: the create form, built from the
 * `telegram-bot` adapter's schemas, takes the token (a password field), a list (allowedUpdates,
 * comma-separated) and an object (rateLimit, JSON); the bot polls the local fake Bot API its
 * apiRoot names. Chromium from Debian, headless, nothing from the network.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const POLL = { timeout: 15_000, interval: 50 };

let t: TestServer;
let api: FakeBotApi;
let browser: Browser;

beforeAll(async () => {
  api = await startFakeBotApi();
  t = await startTestServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await api?.close();
});

it('creates and starts a telegram-bot session from the form with a bot token', { timeout: 120_000 }, async () => {
  const bot = api.bot();
  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${t.url}/`);
  await page.getByTestId('key-input').fill(t.adminKey);
  await page.getByTestId('key-submit').click();
  await page.locator('#live.on').waitFor();

  await page.getByTestId('new-session').click();
  await page.getByTestId('create-id').fill('my-bot');
  await page.getByTestId('create-platform').selectOption('telegram-bot');
  const token = page.locator('input[name="credentials.token"]');
  expect(await token.getAttribute('type')).toBe('password');
  await token.fill(bot.token);
  await page.locator('input[name="config.apiRoot"]').fill(api.url);
  await page.locator('input[name="config.pollTimeoutSec"]').fill('1');
  expect(await page.locator('input[name="config.allowedUpdates"]').getAttribute('placeholder')).toMatch(/^comma-separated/);
  await page.locator('input[name="config.allowedUpdates"]').fill('message, callback_query');
  await page.locator('input[name="config.rateLimit"]').fill('{"perSecond": 5}');
  await page.getByTestId('create-submit').click();

  await expect.poll(() => page.getByTestId('session-my-bot').getByTestId('row-state').textContent(), POLL).toBe('ready');
  const snap = (await t.call('GET', '/api/v1/sessions/my-bot')).json;
  expect(snap.config).toMatchObject({ apiRoot: api.url, pollTimeoutSec: 1, allowedUpdates: ['message', 'callback_query'], rateLimit: { perSecond: 5 } });
  expect(bot.callsOf('getUpdates')[0]!.params).toMatchObject({ allowed_updates: ['message', 'callback_query'] });
  expect(await page.content()).not.toContain(bot.token);

  // A malformed token is refused and the form points at the field.
  await page.getByTestId('new-session').click();
  await page.getByTestId('create-id').fill('bad-bot');
  await page.getByTestId('create-platform').selectOption('telegram-bot');
  await page.locator('input[name="credentials.token"]').fill('12345');
  await page.getByTestId('create-submit').click();
  await page.getByTestId('field-error-credentials.token').waitFor();
  expect((await t.call('GET', '/api/v1/sessions/bad-bot')).status).toBe(404);

  await waitForState(t, 'my-bot', ['ready']);
  expect(pageErrors).toEqual([]);
});
