import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers.js';
import { api, spawnServer } from './process.js';

/** Polls `probe` until it returns something (bounded); `last` says what was seen on giving up. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, tries = 200, everyMs = 50, last: () => unknown = () => undefined): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`gave up waiting for ${what}; last seen ${JSON.stringify(last())}`);
}

describe('one node (SQLite)', () => {
  let t: TestServer;
  let scopedKey: string;

  beforeAll(async () => {
    t = await startTestServer({ cluster: { nodeId: 'solo', leaseTtlMs: 1500 } });
    expect((await t.call('POST', '/api/v1/sessions', { body: { id: 'n1', platform: 'demo', credentials: { token: 'n1-token' } } })).status).toBe(201);
    expect((await t.call('POST', '/api/v1/sessions/n1/start')).status).toBe(200);
    scopedKey = (await t.call('POST', '/api/v1/keys', { body: { name: 'n1-only', role: 'session', sessions: ['n1'] } })).json.key;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('GET /api/v1/nodes lists this node; the session shows it as owner', async () => {
    const r = await t.call('GET', '/api/v1/nodes');
    expect(r.status).toBe(200);
    expect(r.json.self).toBe('solo');
    expect(r.json.nodes).toEqual([expect.objectContaining({ nodeId: 'solo', live: true, running: 1, draining: false, pid: expect.any(Number) })]);
    const s = await t.call('GET', '/api/v1/sessions/n1');
    expect(s.json.owner).toMatchObject({ nodeId: 'solo', since: expect.any(Number) });
  });

  it('node endpoints refuse a session-scoped key', async () => {
    for (const [method, path] of [['GET', '/api/v1/nodes'], ['POST', '/api/v1/nodes/solo/drain']] as const) {
      const r = await t.call(method, path, { key: scopedKey });
      expect(r.status).toBe(403);
      expect(r.json.code).toBe('FORBIDDEN');
    }
  });

  it('an unknown node id is 404 NODE_NOT_FOUND, a malformed one 400 VALIDATION', async () => {
    const unknown = await t.call('POST', '/api/v1/nodes/nobody/drain');
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(unknown.json).toMatchObject({ code: 'NODE_NOT_FOUND', type: 'urn:multisession:problem:node-not-found' });
    const bad = await t.call('POST', `/api/v1/nodes/${encodeURIComponent('bad id!')}/drain`);
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ code: 'VALIDATION', errors: [expect.objectContaining({ path: 'path.nodeId' })] });
  });

  it('/metrics has the per-node gauges', async () => {
    const r = await t.call('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/^multisession_node_info\{node_id="solo",host="[^"]*",pid="\d+"\} 1$/m);
    expect(r.text).toMatch(/^multisession_node_live\{node_id="solo"\} 1$/m);
    expect(r.text).toMatch(/^multisession_node_running\{node_id="solo"\} 1$/m);
    expect(r.text).toMatch(/^multisession_node_draining\{node_id="solo"\} 0$/m);
  });

  it('POST /api/v1/nodes/:id/drain stops the node\'s sessions and marks it draining', async () => {
    const r = await t.call('POST', '/api/v1/nodes/solo/drain');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ nodeId: 'solo', node: { nodeId: 'solo', draining: true, running: 0 } });
    const s = await t.call('GET', '/api/v1/sessions/n1');
    expect(s.json).toMatchObject({ owner: null, desiredState: 'running' });
    expect((await t.call('GET', '/metrics')).text).toMatch(/^multisession_node_draining\{node_id="solo"\} 1$/m);
  });
});

describe('two server processes on one SQLite file', () => {
  const children = new Set<ChildProcess>();
  const dirs: string[] = [];
  afterEach(() => {
    for (const c of children) c.kill('SIGKILL');
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('both list both nodes, see each other\'s sessions, and a drain sent to one moves the other\'s sessions', { timeout: 90_000 }, async () => {
    const shared = mkdtempSync(join(tmpdir(), 'ms-nodes-'));
    dirs.push(shared);
    const key = `msk-test-${randomBytes(12).toString('hex')}`;
    const env = { MULTISESSION_SECRET_KEY: randomBytes(32).toString('base64') };
    const args = (node: string) => ['--node-id', node, '--lease-ttl-ms', '1500', '--db', join(shared, 'sessions.db'), '--data-dir', join(shared, node), '--api-key', key];
    const [one, two] = await Promise.all([spawnServer(args('node-1'), children, env), spawnServer(args('node-2'), children, env)]);

    for (const server of [one, two]) {
      await until('both nodes live', async () => {
        const r = await api(server.url, key, 'GET', '/api/v1/nodes');
        const live = (r.json?.nodes ?? []).filter((n: any) => n.live).map((n: any) => n.nodeId).sort();
        return live.join() === 'node-1,node-2' ? true : undefined;
      });
    }

    // Created and started through server 1. It usually runs there (node 1 is below its share),
    // but node 2's placement may take the session first: the test drains whichever node runs it,
    // through the other server.
    expect((await api(one.url, key, 'POST', '/api/v1/sessions', { id: 'shared-1', platform: 'demo', credentials: { token: 'shared-1-token' } })).status).toBe(201);
    expect((await api(one.url, key, 'POST', '/api/v1/sessions/shared-1/start')).status).toBe(200);
    let last: unknown;
    const seen = await until('both servers to show the same owner', async () => {
      const [a, b] = await Promise.all([api(one.url, key, 'GET', '/api/v1/sessions/shared-1'), api(two.url, key, 'GET', '/api/v1/sessions/shared-1')]);
      last = [a.json?.owner, b.json?.owner];
      return b.status === 200 && b.json.owner && b.json.owner.nodeId === a.json?.owner?.nodeId ? b.json : undefined;
    }, 200, 50, () => last);
    expect(seen.desiredState).toBe('running');
    const owner: string = seen.owner.nodeId;
    const [other, otherUrl] = owner === 'node-1' ? ['node-2', two.url] : ['node-1', one.url];

    // Drain the owner through the other server: the call is forwarded; the other node takes the session.
    const drained = await api(otherUrl, key, 'POST', `/api/v1/nodes/${owner}/drain`);
    expect(drained.status).toBe(200);
    expect(drained.json).toMatchObject({ nodeId: owner, node: { draining: true } });
    for (const url of [one.url, two.url]) {
      await until(`the session to move to ${other}`, async () => {
        const r = await api(url, key, 'GET', '/api/v1/sessions/shared-1');
        last = [r.status, r.json?.owner, r.json?.state];
        return r.json?.owner?.nodeId === other ? true : undefined;
      }, 200, 100, () => last);
    }
    const nodes = (await api(otherUrl, key, 'GET', '/api/v1/nodes')).json.nodes;
    expect(nodes.find((n: any) => n.nodeId === owner)).toMatchObject({ draining: true, running: 0 });
  });
});
