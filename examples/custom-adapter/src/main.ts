/**
 * A walk through the http-poller adapter with no account anywhere: starts the example platform
 * on a free port, then a SessionManager with the adapter, logs a session in with its one-time
 * code, receives a message, answers it, and shuts down.
 *
 *   node --import tsx examples/custom-adapter/src/main.ts
 */
import { SessionManager } from 'multisession';
import { httpPoller } from './http-poller.js';
import { startPlatformServer } from './platform-server.js';

const TOKEN = 'demo-token-0001';
const platform = await startPlatformServer({ accounts: { [TOKEN]: { code: '424242' } } });
const manager = new SessionManager({ adapters: [httpPoller] });
manager.on('session.state', (e) => console.log(`[${e.id}] ${e.from} → ${e.to} (${e.reason})`));
manager.on('session.auth', (e) => console.log(`[${e.id}] asks for a ${e.kind}:`, e.data));
manager.on('session.message', (e) => console.log(`[${e.id}] ${e.direction === 'in' ? '←' : '→'}`, e.message));

try {
  await manager.open();
  await manager.create({
    id: 'support-1',
    platform: 'http-poller',
    credentials: { apiToken: TOKEN },
    config: { baseUrl: platform.url, pollIntervalMs: 100 },
  });
  const snap = await manager.start('support-1'); // resolves once it waits for the code
  console.log('state after start():', snap.state, snap.auth?.kind);
  await manager.submitAuth('support-1', { kind: 'code', value: '424242' });
  await manager.waitFor('support-1', 'ready', { timeoutMs: 10_000 });

  const inbound = new Promise<void>((resolve) => manager.once('session.message', () => resolve()));
  platform.push(TOKEN, 'customer', 'Hello, is anyone there?');
  await inbound;
  await manager.send('support-1', { to: 'customer', text: 'Yes! How can I help?' });

  console.log('statistics:', await manager.stats('support-1'));
  console.log('the platform received:', platform.sent);
} finally {
  await manager.close();
  await platform.close();
}
