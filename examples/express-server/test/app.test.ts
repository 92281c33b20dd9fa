import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, it } from 'vitest';
import { SessionManager, memoryStorage } from 'multisession';
import { simulatedAdapter } from 'multisession/testing';
import { ApiKeyStore, createApp } from '../src/index.js';

it('createApp serves the API over a manager the caller owns (memory storage, key from the caller)', async () => {
  const manager = new SessionManager({ storage: memoryStorage(), adapters: [simulatedAdapter({ name: 'sim' })] });
  await manager.open();
  const adminKey = 'a-very-long-admin-key-for-tests';
  const { app, closeStreams } = createApp(manager, { keys: new ApiKeyStore({ file: null, adminKey }), webPage: false });
  const server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const h = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
    const created = await fetch(`${url}/api/v1/sessions`, { method: 'POST', headers: h, body: JSON.stringify({ id: 'm1', platform: 'sim', credentials: { token: 't' } }) });
    expect(created.status).toBe(201);
    const started = await fetch(`${url}/api/v1/sessions/m1/start`, { method: 'POST', headers: h });
    expect(((await started.json()) as { state: string }).state).toBe('ready');
    expect((await fetch(`${url}/api/v1/sessions`, { headers: { authorization: 'Bearer wrong-key-wrong-key' } })).status).toBe(401);
    // No web page when it is switched off.
    expect((await fetch(`${url}/`)).status).toBe(404);
  } finally {
    closeStreams();
    await new Promise<void>((r) => server.close(() => r()));
    await manager.close();
  }
});
