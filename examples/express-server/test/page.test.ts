import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { codeFromQr, startTestServer, waitForState, type TestServer } from './helpers.js';

/**
 * The web page's hardening (issue 11): user text cannot reorder what the page shows, the
 * session's settings are shown, pictures of its traffic and states, a 400 px wide screen, and the
 * create form pointing at the wrong field. Chromium from Debian, headless, nothing from the network.
 */
const ARTIFACTS = fileURLToPath(new URL('../.artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const POLL = { timeout: 15_000, interval: 50 };
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/;

let t: TestServer;
let browser: Browser;
const pageErrors: string[] = [];
const external: string[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  t = await startTestServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  await t.call('POST', '/api/v1/sessions', {
    body: {
      id: 'bidi-1',
      platform: 'demo',
      credentials: { token: 'bidi-token-1' },
      labels: { team: '😀\u202eevil' },
      metadata: { owner: 'ops\u2067x', tier: 2 },
      priority: 7,
      capacity: 3,
    },
  });
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

async function open(width: number, height = 900): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height } });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
  page.on('request', (req) => {
    if (!req.url().startsWith(t.url) && !req.url().startsWith('data:')) external.push(req.url());
  });
  await page.goto(`${t.url}/`);
  await page.getByTestId('key-input').fill(t.adminKey);
  await page.getByTestId('key-submit').click();
  await page.locator('#live.on').waitFor();
  return page;
}

it('user text cannot reorder the page; priority, capacity and metadata are shown', { timeout: 60_000 }, async () => {
  const page = await open(1280);
  const row = page.getByTestId('session-bidi-1');
  await row.waitFor();
  await row.click();
  // The override is shown as a visible replacement character, and "evil" reads left to right.
  const label = page.locator('#d-labels .label-tag').first();
  expect(await label.textContent()).toBe('team=😀\uFFFDevil');
  const order = await label.evaluate((node) => {
    // (No DOM types in this project: the page's globals are reached through globalThis.)
    const doc = (globalThis as any).document;
    const text = node.firstChild as any;
    const x = (i: number): number => {
      const range = doc.createRange();
      range.setStart(text, i);
      range.setEnd(text, i + 1);
      return range.getBoundingClientRect().left;
    };
    const at = text.data.indexOf('evil');
    return [x(at), x(at + 1), x(at + 2), x(at + 3)];
  });
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  expect(await page.evaluate(() => (globalThis as any).document.body.innerText as string)).not.toMatch(BIDI);

  const props = page.getByTestId('detail-props');
  await expect.poll(() => props.locator('[data-prop="priority"] dd').textContent(), POLL).toBe('7');
  expect(await props.locator('[data-prop="capacity"] dd').textContent()).toBe('3');
  const metadata = await props.locator('[data-prop="metadata"] dd').textContent();
  expect(JSON.parse(metadata!.replace('\uFFFD', ''))).toEqual({ owner: 'opsx', tier: 2 });
  expect(await row.textContent()).toMatch(/priority 7.*capacity 3/);
  await page.screenshot({ path: `${ARTIFACTS}bidi-and-settings.png` });
  await page.close();
});

it('draws the selected session\'s messages per minute and its states over time, live', { timeout: 90_000 }, async () => {
  const page = await open(1280);
  await page.getByTestId('session-bidi-1').click();
  await t.call('POST', '/api/v1/sessions/bidi-1/start');
  const snap = await waitForState(t, 'bidi-1', ['authenticating']);
  await t.call('POST', '/api/v1/sessions/bidi-1/auth', { body: { kind: 'code', value: codeFromQr(snap.auth.data) } });
  await waitForState(t, 'bidi-1', ['ready']);

  // States: the timeline has a band per state the session went through, ending in ready.
  const timeline = page.getByTestId('state-timeline');
  await expect.poll(() => timeline.locator('g[data-state]').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-state'))), POLL).toEqual(['starting', 'authenticating', 'ready']);
  expect(await timeline.locator('rect.seg.st-ready').count()).toBe(1);

  // Messages: the demo echoes each one, so every send is one out and one in, in this minute.
  for (const text of ['one', 'two', 'three']) await t.call('POST', '/api/v1/sessions/bidi-1/messages', { body: { text } });
  await expect.poll(() => page.getByTestId('traffic-summary').textContent(), POLL).toBe('3 in · 3 out');
  const busiest = page.getByTestId('traffic-chart').locator('g[data-in="3"][data-out="3"]');
  expect(await busiest.count()).toBe(1);
  expect(await busiest.locator('rect.bar-in').count()).toBe(1);
  expect(await busiest.locator('rect.bar-out').count()).toBe(1);
  // A reload draws the same from the server's counts.
  await page.reload();
  await page.getByTestId('session-bidi-1').click();
  await expect.poll(() => page.getByTestId('traffic-summary').textContent(), POLL).toBe('3 in · 3 out');
  await page.screenshot({ path: `${ARTIFACTS}charts.png` });
  await page.close();
});

it('is usable 400 px wide: nothing wider than the screen, nothing squeezed or overlapping', { timeout: 60_000 }, async () => {
  await t.call('POST', '/api/v1/sessions', { body: { id: 'a-session-with-a-rather-long-name', platform: 'demo', credentials: { token: 'narrow-token-1' } } });
  await t.call('POST', '/api/v1/sessions/a-session-with-a-rather-long-name/start');
  const page = await open(400, 800);
  await page.getByTestId('session-a-session-with-a-rather-long-name').click();
  await page.getByTestId('qr').waitFor({ state: 'visible' });
  await page.getByTestId('new-session').click();
  const box = async (id: string) => {
    const b = await page.getByTestId(id).boundingBox();
    expect(b, id).not.toBeNull();
    return b!;
  };
  const root = () => page.evaluate(() => {
    const el = (globalThis as any).document.documentElement;
    return (el.scrollWidth as number) - (el.clientWidth as number);
  });
  expect(await root()).toBe(0);
  for (const id of ['new-session', 'create-submit', 'action-delete', 'simulate-scan', 'traffic-chart', 'state-timeline', 'stats', 'logs']) {
    const b = await box(id);
    expect(b.x, id).toBeGreaterThanOrEqual(0);
    expect(b.x + b.width, id).toBeLessThanOrEqual(400);
  }
  // The session id and the form's inputs get the width of the screen, not a sliver beside something else.
  expect((await box('detail-id')).width).toBeGreaterThan(300);
  expect((await box('create-id')).width).toBeGreaterThan(300);
  // The "Simulate scan" button stays inside its box; statistics and transitions do not overlap.
  const auth = await box('auth');
  const scan = await box('simulate-scan');
  expect(scan.x + scan.width).toBeLessThanOrEqual(auth.x + auth.width);
  const stats = await box('stats');
  const transitions = (await page.locator('#transitions').boundingBox())!;
  const overlap = stats.x < transitions.x + transitions.width && transitions.x < stats.x + stats.width && stats.y < transitions.y + transitions.height && transitions.y < stats.y + stats.height;
  expect(overlap).toBe(false);
  await page.screenshot({ path: `${ARTIFACTS}narrow-400.png`, fullPage: true });
  await page.getByTestId('action-stop').click();
  await expect.poll(() => page.getByTestId('detail-state').textContent(), POLL).toBe('stopped');
  await page.close();
});

it('the create form marks the fields the server refused, with its message beside each', { timeout: 60_000 }, async () => {
  const page = await open(1280);
  await page.getByTestId('new-session').click();
  await page.getByTestId('create-id').fill('bad id!');
  await page.locator('input[name="credentials.token"]').fill('form-token-1');
  await page.locator('input[name="labels"]').fill('no spaces allowed=x');
  await page.getByTestId('create-submit').click();
  await expect.poll(() => page.getByTestId('field-error-id').textContent(), POLL).toMatch(/1-64 characters/);
  expect(await page.getByTestId('create-id').getAttribute('aria-invalid')).toBe('true');
  expect(await page.getByTestId('field-error-labels').textContent()).toMatch(/label keys/);
  await page.screenshot({ path: `${ARTIFACTS}create-field-errors.png` });
  // Fixing a field clears its mark; a good form creates the session.
  await page.getByTestId('create-id').fill('form-ok');
  expect(await page.getByTestId('field-error-id').count()).toBe(0);
  await page.locator('input[name="labels"]').fill('team=forms');
  await page.getByTestId('create-start').uncheck();
  await page.getByTestId('create-submit').click();
  await page.getByTestId('session-form-ok').waitFor();
  expect(await page.locator('[aria-invalid="true"]').count()).toBe(0);
  await page.close();
  expect(external).toEqual([]);
  expect(pageErrors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
});
