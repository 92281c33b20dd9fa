import { afterAll, beforeAll, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestServer, type TestServer } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const POLL = { timeout: 15_000, interval: 50 };

let t: TestServer;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  t = await startTestServer({ demo: { auth: 'none' } });
  for (const [id, capacity] of [['main', 4], ['backup', 10]] as const) {
    await t.call('POST', '/api/v1/sessions', { body: { id, platform: 'demo', credentials: { token: `${id}-token` }, capacity } });
    await t.call('POST', `/api/v1/sessions/${id}/start`);
  }
  await t.call('POST', '/api/v1/units', { body: { units: ['1', '2', '3'].map((id) => ({ id, kind: 'pair', sessionId: 'main' })) } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  page = await (await browser.newContext({ viewport: { width: 1440, height: 900 } })).newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

it('shows capacity bars and the units, and reassigns through a dry-run preview before applying', { timeout: 60_000 }, async () => {
  await page.goto(`${t.url}/`);
  await page.getByTestId('key-input').fill(t.adminKey);
  await page.getByTestId('key-submit').click();
  await page.getByTestId('units-card').waitFor();
  const mainBar = page.getByTestId('capacity-main');
  await expect.poll(() => mainBar.getByTestId('capacity-text').textContent(), POLL).toBe('3 / 4');
  expect(await mainBar.getByTestId('capacity-fill').evaluate((e) => (e as unknown as { style: { width: string } }).style.width)).toBe('75%');
  await expect.poll(() => page.getByTestId('unit-2').getByTestId('unit-session').textContent(), POLL).toBe('main');

  await page.getByTestId('open-reassign').click();
  await page.getByTestId('reassign-selector').fill('1-2');
  await page.getByTestId('reassign-to').selectOption('backup');
  await page.getByTestId('reassign-preview').click();
  await expect.poll(() => page.getByTestId('reassign-plan').textContent(), POLL).toMatch(/2 unit\(s\) move to backup .*0 → 2 of 10/);
  // The preview changed nothing.
  expect((await t.call('GET', '/api/v1/units/1')).json.sessionId).toBe('main');
  expect(await page.getByTestId('reassign-apply').isEnabled()).toBe(true);
  await page.getByTestId('reassign-apply').click();
  await expect.poll(() => page.getByTestId('reassign-plan').textContent(), POLL).toMatch(/Moved 2 unit\(s\) to backup/);
  expect((await t.call('GET', '/api/v1/units/1')).json.sessionId).toBe('backup');
  await expect.poll(() => page.getByTestId('capacity-backup').getByTestId('capacity-text').textContent(), POLL).toBe('2 / 10');
  await expect.poll(() => page.getByTestId('unit-1').getByTestId('unit-session').textContent(), POLL).toBe('backup');

  // A preview that does not fit shows why, and Apply stays off (main: 1 unit + 5 > its capacity 4).
  await t.call('POST', '/api/v1/units', { body: { units: ['4', '5', '6'].map((id) => ({ id, sessionId: 'backup' })) } });
  await page.getByTestId('reassign-selector').fill('all_from:backup');
  await page.getByTestId('reassign-to').selectOption('main');
  await page.getByTestId('reassign-preview').click();
  await expect.poll(() => page.getByTestId('reassign-plan').textContent(), POLL).toMatch(/capacity/);
  expect(await page.getByTestId('reassign-apply').isEnabled()).toBe(false);
  // The refused preview's 409 is logged by the browser as a failed resource; nothing else may be.
  expect(pageErrors.filter((e) => !/status of 409.*Failed to load resource|Failed to load resource.*409/.test(e))).toEqual([]);
});
