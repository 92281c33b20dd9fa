import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startReceiver } from '../../../test/webhooks/helpers.js';
import { startTestServer, type TestServer } from './helpers.js';

/** The webhooks panel of the web page, in a real browser, against a real receiver on 127.0.0.1. */
const ARTIFACTS = fileURLToPath(new URL('../.artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const POLL = { timeout: 15_000, interval: 50 };

let t: TestServer;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  receiver = await startReceiver();
  t = await startTestServer({ webhooks: { allowPrivateTargets: true, pollMs: 50 } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('dialog', (d) => void d.accept());
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await receiver?.close();
});

it('adds an endpoint (secret shown once), test-sends, shows the delivery log, replays and disables from the panel', { timeout: 120_000 }, async () => {
  await page.goto(`${t.url}/`);
  await page.getByTestId('key-input').fill(t.adminKey);
  await page.getByTestId('key-submit').click();
  await page.getByTestId('webhooks-card').waitFor({ state: 'visible' });

  // A bad URL: the form says which field is wrong.
  await page.getByTestId('new-webhook').click();
  await page.getByTestId('webhook-url').fill('ftp://files.example.com/in');
  await page.getByTestId('webhook-submit').click();
  await expect.poll(() => page.getByTestId('webhook-error').textContent(), POLL).toMatch(/url: must be an http or https URL/);

  await page.getByTestId('webhook-url').fill(receiver.url);
  await page.getByTestId('webhook-events').fill('session.created, webhook.test');
  await page.getByTestId('webhook-submit').click();
  await expect.poll(() => page.getByTestId('webhook-secret-value').textContent(), POLL).toMatch(/^whsec_/);
  const secret = (await page.getByTestId('webhook-secret-value').textContent())!;
  const [endpoint] = (await t.call('GET', '/api/v1/webhooks')).json as { id: string }[];
  const row = page.getByTestId(`webhook-${endpoint!.id}`);
  await expect.poll(() => row.getByTestId('webhook-enabled').textContent(), POLL).toBe('enabled');
  await page.screenshot({ path: `${ARTIFACTS}webhooks-panel.png` });
  await page.getByRole('button', { name: 'Done' }).click();
  expect(await page.getByTestId('webhook-secret-value').textContent()).toBe('');

  // Test-send from the panel: a signed webhook.test reaches the receiver.
  await row.getByTestId('webhook-test').click();
  await expect.poll(() => receiver.received.length, POLL).toBe(1);
  const got = receiver.received[0]!;
  const headers = { 'webhook-id': String(got.headers['webhook-id']), 'webhook-timestamp': String(got.headers['webhook-timestamp']), 'webhook-signature': String(got.headers['webhook-signature']) };
  expect(new Webhook(secret).verify(got.body, headers)).toMatchObject({ type: 'webhook.test' });

  // The log shows it; Replay sends it again with the same webhook-id.
  await row.getByTestId('webhook-log').click();
  const delivery = page.getByTestId(`delivery-${headers['webhook-id']}`);
  await expect.poll(() => delivery.getByTestId('delivery-status').textContent(), POLL).toBe('succeeded');
  expect(await delivery.getByTestId('delivery-code').textContent()).toBe('204');
  await delivery.getByTestId('delivery-replay').click();
  await expect.poll(() => receiver.received.map((r) => r.headers['webhook-id']), POLL).toEqual([headers['webhook-id'], headers['webhook-id']]);

  // A session made elsewhere is announced to the endpoint and appears in the log.
  await t.call('POST', '/api/v1/sessions', { body: { id: 'hooked', platform: 'demo', credentials: { token: 'browser-token-1' } } });
  await expect.poll(() => page.getByTestId('deliveries').textContent(), POLL).toMatch(/session\.created/);

  // Disable from the panel: the pill says so, and the API agrees.
  await row.getByTestId('webhook-toggle').click();
  await expect.poll(() => row.getByTestId('webhook-enabled').textContent(), POLL).toBe('disabled (manual)');
  expect((await t.call('GET', `/api/v1/webhooks/${endpoint!.id}`)).json.enabled).toBe(false);

  // The secret is nowhere on the page any more.
  expect(await page.content()).not.toContain(secret.slice(6));
  expect(pageErrors).toEqual([]);
});

it('hides the panel from a session-scoped key', { timeout: 60_000 }, async () => {
  const key = (await t.call('POST', '/api/v1/keys', { body: { name: 'scoped-page', sessions: ['hooked'] } })).json.key as string;
  const context = await browser.newContext();
  const scoped = await context.newPage();
  try {
    await scoped.goto(`${t.url}/`);
    await scoped.getByTestId('key-input').fill(key);
    await scoped.getByTestId('key-submit').click();
    await scoped.locator('#live.on').waitFor();
    await scoped.getByTestId('session-hooked').waitFor();
    expect(await scoped.getByTestId('webhooks-card').isHidden()).toBe(true);
  } finally {
    await context.close();
  }
});
