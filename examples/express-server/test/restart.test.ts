import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { api, spawnServer } from './process.js';

const dir = mkdtempSync(join(tmpdir(), 'ms-restart-'));
const children = new Set<ChildProcess>();

/** Starts main.ts as a real process on the test's data folder. */
const startServer = () => spawnServer(['--data-dir', dir], children);

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function waitState(url: string, key: string, id: string, states: string[]) {
  for (let i = 0; i < 400; i++) {
    const r = await api(url, key, 'GET', `/api/v1/sessions/${id}/status`);
    if (r.status === 200 && states.includes(r.json.state)) return r.json;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${id} never reached ${states.join('|')}`);
}

it('sessions come back running after SIGKILL, and after a graceful SIGTERM', { timeout: 120_000 }, async () => {
  // First start: creates the secret key and an admin key, printed once.
  const a = await startServer();
  const key = a.lines.map((l) => l.trim()).find((l) => /^msk_[a-f0-9]{16}_/.test(l));
  expect(key).toBeDefined();
  expect(a.lines.join('\n')).toMatch(/Created a secret key/);

  for (const id of ['keep-ready', 'keep-qr', 'stay-stopped']) {
    expect((await api(a.url, key!, 'POST', '/api/v1/sessions', { id, platform: 'demo', credentials: { token: `t-${id}` } })).status).toBe(201);
  }
  await api(a.url, key!, 'POST', '/api/v1/sessions/keep-ready/start');
  const qr = await waitState(a.url, key!, 'keep-ready', ['authenticating']);
  const code = String(qr.auth.data).split(':').pop();
  expect((await api(a.url, key!, 'POST', '/api/v1/sessions/keep-ready/auth', { kind: 'code', value: code })).status).toBe(200);
  await waitState(a.url, key!, 'keep-ready', ['ready']);
  await api(a.url, key!, 'POST', '/api/v1/sessions/keep-qr/start');
  await waitState(a.url, key!, 'keep-qr', ['authenticating']);

  // Kill it hard: no shutdown code runs.
  a.child.kill('SIGKILL');
  expect((await a.exited).signal).toBe('SIGKILL');

  // Second start on the same data folder: no new keys; the sessions are back.
  const b = await startServer();
  expect(b.lines.join('\n')).not.toMatch(/msk_|Created a secret key/);
  expect(b.lines.join('\n')).toMatch(/admin key was printed on the first start/);
  await waitState(b.url, key!, 'keep-ready', ['ready']); // remembered login: straight to ready
  const again = await waitState(b.url, key!, 'keep-qr', ['authenticating']); // running again, new QR
  expect(again.desiredState).toBe('running');
  const stopped = await api(b.url, key!, 'GET', '/api/v1/sessions/stay-stopped/status');
  expect(stopped.json).toMatchObject({ state: 'stopped', desiredState: 'stopped' });
  const list = await api(b.url, key!, 'GET', '/api/v1/sessions?state=ready');
  expect(list.json.items.map((s: any) => s.id)).toEqual(['keep-ready']);
  expect(list.json.nextCursor).toBeNull();
  // The credentials were sealed with the key from the data folder and still open.
  expect((await api(b.url, key!, 'POST', '/api/v1/sessions/keep-ready/messages', { text: 'after restart' })).status).toBe(200);

  // Graceful stop: exits 0 and keeps the desired states for the next start.
  b.child.kill('SIGTERM');
  expect((await b.exited).code).toBe(0);
  expect(b.lines.join('\n')).toMatch(/Stopped\./);

  const c = await startServer();
  await waitState(c.url, key!, 'keep-ready', ['ready']);
  await waitState(c.url, key!, 'keep-qr', ['authenticating']);
  c.child.kill('SIGINT');
  expect((await c.exited).code).toBe(0);
});
