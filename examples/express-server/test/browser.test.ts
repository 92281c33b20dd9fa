import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestServer, type TestServer } from './helpers.js';

const ARTIFACTS = fileURLToPath(new URL('../.artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Waits for the page (bounded, not a timing assertion): generous for a loaded CI machine. */
const POLL = { timeout: 15_000, interval: 50 };

let t: TestServer;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
const external: string[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  t = await startTestServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(t.url) && !url.startsWith('data:')) external.push(url);
  });
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

it('runs the whole demo lifecycle in a real browser, live over SSE', { timeout: 120_000 }, async () => {
  await page.goto(`${t.url}/`);

  // The page asks for the key once and keeps it.
  await page.getByTestId('key-input').fill('not-a-key');
  await page.getByTestId('key-submit').click();
  await expect.poll(() => page.locator('#key-error').textContent(), POLL).toMatch(/not valid/);
  await page.getByTestId('key-input').fill(t.adminKey);
  await page.getByTestId('key-submit').click();
  await page.locator('#key-dialog.hidden').waitFor({ state: 'attached' });
  await page.locator('#live.on').waitFor();

  // A session made by someone else (through the API) shows up live.
  await t.call('POST', '/api/v1/sessions', { body: { id: 'api-made', platform: 'demo', credentials: { token: 'api-token-1' }, labels: { team: 'ops' } } });
  await page.getByTestId('session-api-made').waitFor();

  // Create a demo session from the form, whose fields come from the adapter's schemas.
  await page.getByTestId('new-session').click();
  await page.getByTestId('create-id').fill('support-bot');
  await expect.poll(() => page.getByTestId('create-platform').inputValue(), POLL).toBe('demo');
  await page.locator('input[name="credentials.token"]').fill('demo-token-123');
  await page.locator('input[name="config.greeting"]').fill('hi there');
  await page.locator('input[name="labels"]').fill('team=support, env=demo');
  await page.screenshot({ path: `${ARTIFACTS}create-form.png` });
  await page.getByTestId('create-submit').click();

  // Start right away: the QR code appears without reloading.
  await page.getByTestId('qr').waitFor({ state: 'visible' });
  await expect.poll(() => page.getByTestId('detail-state').textContent(), POLL).toBe('authenticating');
  await expect.poll(() => page.getByTestId('qr').getAttribute('src'), POLL).toMatch(/^data:image\/png;base64,/);
  const snap = (await t.call('GET', '/api/v1/sessions/support-bot')).json;
  expect(snap.config.greeting).toBe('hi there');
  expect(snap.labels).toEqual({ team: 'support', env: 'demo' });
  await page.screenshot({ path: `${ARTIFACTS}qr.png` });

  // Complete the login (the demo's stand-in for scanning) and watch it turn ready live.
  await page.getByTestId('simulate-scan').click();
  await expect.poll(() => page.getByTestId('detail-state').textContent(), POLL).toBe('ready');
  await expect.poll(() => page.getByTestId('session-support-bot').getByTestId('row-state').textContent(), POLL).toBe('ready');
  await page.getByTestId('auth').waitFor({ state: 'hidden' });

  // Send a message from the page: the answer, statistics and logs follow.
  await page.getByTestId('send-input').fill('hello');
  await page.getByTestId('send-submit').click();
  await expect.poll(() => page.getByTestId('send-result').textContent(), POLL).toMatch(/"ok":true/);
  await expect.poll(() => page.getByTestId('stats').textContent(), POLL).toMatch(/msgs out1/);
  // The demo echoes it: both directions appear in the live message list.
  await expect.poll(() => page.getByTestId('messages').textContent(), POLL).toMatch(/in.*"text":"hello".*out.*"text":"hello"/s);
  await expect.poll(() => page.getByTestId('logs').textContent(), POLL).toMatch(/logged in with qr/);
  await page.screenshot({ path: `${ARTIFACTS}ready.png` });

  // Stop it, then delete it.
  await page.getByTestId('action-stop').click();
  await expect.poll(() => page.getByTestId('detail-state').textContent(), POLL).toBe('stopped');
  page.once('dialog', (d) => void d.accept());
  await page.getByTestId('action-delete').click();
  await page.getByTestId('session-support-bot').waitFor({ state: 'detached' });
  expect((await t.call('GET', '/api/v1/sessions/support-bot')).status).toBe(404);

  // The key survives a reload (localStorage): no prompt, the list comes back.
  await page.reload();
  await page.getByTestId('session-api-made').waitFor();
  expect(await page.locator('#key-dialog').isHidden()).toBe(true);
  await page.getByTestId('session-api-made').click();
  await page.screenshot({ path: `${ARTIFACTS}overview.png` });

  expect(external).toEqual([]);
  expect(pageErrors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
});

it('takes a login code typed on the page (adapter asking for a code)', { timeout: 120_000 }, async () => {
  const codeServer = await startTestServer({ demo: { auth: 'code', expectedCode: '24680', remember: false } });
  const p = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    p.on('pageerror', (err) => pageErrors.push(err.message));
    await p.goto(`${codeServer.url}/`);
    await p.getByTestId('key-input').fill(codeServer.adminKey);
    await p.getByTestId('key-submit').click();
    await p.locator('#live.on').waitFor();
    await p.getByTestId('new-session').click();
    await p.getByTestId('create-id').fill('code-bot');
    await p.locator('input[name="credentials.token"]').fill('code-token');
    await p.getByTestId('create-submit').click();
    await p.getByTestId('code-input').waitFor({ state: 'visible' });
    expect(await p.getByTestId('qr').isVisible()).toBe(false);
    // A wrong code keeps it waiting (the adapter asks again); the right one logs in.
    await p.getByTestId('code-input').fill('11111');
    await p.getByTestId('code-submit').click();
    await expect.poll(() => p.getByTestId('logs').textContent(), POLL).toMatch(/wrong code/);
    await p.getByTestId('code-input').fill('24680');
    await p.getByTestId('code-submit').click();
    await expect.poll(() => p.getByTestId('detail-state').textContent(), POLL).toBe('ready');
    await expect.poll(() => p.getByTestId('logs').textContent(), POLL).toMatch(/connected/);
    await p.screenshot({ path: `${ARTIFACTS}code-login.png` });
  } finally {
    await p.close();
    await codeServer.close();
  }
  expect(pageErrors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
});

it('lists every one of 2,050 sessions (three pages), and a live change re-renders only its row', { timeout: 180_000 }, async () => {
  const big = await startTestServer({ manager: { health: { intervalMs: 60_000 } } });
  const ids = Array.from({ length: 2_050 }, (_, i) => `bulk-${String(i).padStart(4, '0')}`);
  for (const id of ids) await big.server.manager.create({ id, platform: 'demo', credentials: { token: `token-${id}` }, labels: { batch: id.endsWith('7') ? 'sevens' : 'rest' } });
  const p = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const listCalls: string[] = [];
  p.on('request', (req) => {
    if (new URL(req.url()).pathname === '/api/v1/sessions' && req.method() === 'GET') listCalls.push(req.url());
  });
  try {
    p.on('pageerror', (err) => pageErrors.push(err.message));
    await p.goto(`${big.url}/`);
    await p.getByTestId('key-input').fill(big.adminKey);
    await p.getByTestId('key-submit').click();
    await p.locator('#live.on').waitFor();
    await expect.poll(() => p.locator('#count').textContent(), POLL).toBe('(2050)');
    expect(await p.locator('#sessions > li').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')))).toEqual(ids);
    // Read a page of 1,000 at a time, following nextCursor.
    expect(listCalls.length).toBe(3);
    expect(listCalls.every((u) => new URL(u).searchParams.get('limit') === '1000')).toBe(true);

    // A session started elsewhere turns authenticating on its row; the other rows stay the same nodes.
    const first = await p.getByTestId('session-bulk-0000').elementHandle();
    await big.call('POST', '/api/v1/sessions/bulk-1500/start');
    await expect.poll(() => p.getByTestId('session-bulk-1500').getByTestId('row-state').textContent(), POLL).toBe('authenticating');
    expect(await first!.evaluate((node) => node.isConnected)).toBe(true);
    // A new session lands in id order.
    await big.call('POST', '/api/v1/sessions', { body: { id: 'bulk-1000a', platform: 'demo', credentials: { token: 'token-bulk-1000a' } } });
    await p.getByTestId('session-bulk-1000a').waitFor();
    expect(await p.getByTestId('session-bulk-1000a').evaluate((node) => node.previousElementSibling?.getAttribute('data-id'))).toBe('bulk-1000');
    await expect.poll(() => p.locator('#count').textContent(), POLL).toBe('(2051)');
    // The filter box hides the rest without rebuilding the list.
    await p.locator('#filter').fill('batch=sevens');
    await expect.poll(() => p.locator('#sessions > li:not(.hidden)').count(), POLL).toBe(205);
    expect(await first!.evaluate((node) => node.isConnected)).toBe(true);
    await p.screenshot({ path: `${ARTIFACTS}many-sessions.png` });
  } finally {
    await p.close();
    await big.close();
  }
  expect(pageErrors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
});
