import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { SessionManager } from 'multisession';
import { sqliteStorage } from 'multisession/sqlite';
import { simulatedAdapter } from 'multisession/testing';
import { createWebhooks } from 'multisession/webhooks';
import { SECRET_KEY, startReceiver } from './helpers.js';

/**
 * Two cluster nodes on one SQLite file, each with its own webhooks: every node emits the events
 * of every session (a node that does not run a session with its own times), yet each event
 * reaches the endpoint once.
 */
const dir = mkdtempSync(join(tmpdir(), 'ms-webhooks-cluster-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('two nodes send each session event once', { timeout: 60_000 }, async () => {
  const filename = join(dir, 'cluster.db');
  const receiver = await startReceiver();
  const node = (nodeId: string) => {
    const storage = sqliteStorage({ filename });
    const manager = new SessionManager({ storage, secretKey: SECRET_KEY, adapters: [simulatedAdapter()], cluster: { nodeId, leaseTtlMs: 5000 } });
    const webhooks = createWebhooks({ storage, manager, secretKey: SECRET_KEY, allowPrivateTargets: true, pollMs: 20, owner: nodeId });
    return { manager, webhooks };
  };
  const a = node('node-a');
  const b = node('node-b');
  try {
    await a.manager.open();
    await b.manager.open();
    a.webhooks.start();
    b.webhooks.start();
    await a.webhooks.createEndpoint({ url: receiver.url, events: ['session.created', 'session.updated', 'session.state'] });
    await a.manager.create({ id: 'c1', platform: 'simulated', credentials: { token: 'cluster-token' } });
    // node-b learns of it from the store before the start
    for (let i = 0; i < 200 && !(await b.manager.list()).items.length; i++) await new Promise((r) => setTimeout(r, 25));
    await a.manager.start('c1');
    await a.manager.update('c1', { labels: { team: 'blue' } });
    await a.manager.waitFor('c1', 'ready', { timeoutMs: 10_000 });
    // Both nodes have seen every change (node-b's session.updated and session.state echo them).
    for (let i = 0; i < 200 && (await b.manager.get('c1')).labels.team !== 'blue'; i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 500));
    await Promise.all([a.webhooks.deliverDue(), b.webhooks.deliverDue()]);
    const got = receiver.received.map((r) => ({ id: String(r.headers['webhook-id']), ...(JSON.parse(r.body) as { type: string; data: { to?: string } }) }));
    const ids = got.map((g) => g.id);
    expect(new Set(ids).size).toBe(ids.length); // nothing twice
    expect(got.filter((g) => g.type === 'session.created')).toHaveLength(1);
    expect(got.filter((g) => g.type === 'session.updated').length).toBeGreaterThanOrEqual(1);
    const ready = got.filter((g) => g.type === 'session.state' && g.data.to === 'ready');
    expect(ready).toHaveLength(1);
  } finally {
    await a.webhooks.close();
    await b.webhooks.close();
    await b.manager.close();
    await a.manager.close();
    await receiver.close();
  }
});
