import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager, type SessionManagerOptions, type SessionState } from 'multisession';
import { sqliteStorage } from 'multisession/sqlite';
import { adapterConformanceSuite, connectForTest, createAdapterTestStore } from 'multisession/testing';
import { CURSOR_KEY, SESSION_KEY, httpPoller } from '../src/http-poller.js';
import { startPlatformServer, type PlatformServer } from '../src/platform-server.js';

// One real HTTP platform for the whole file (the suite below is registered at load time and
// needs its URL in the config).
const TOKENS = {
  conformance: 'conformance-token-1',
  revokedAtStart: 'revoked-token-xyz',
  alice: 'alice-token-0001',
  bob: 'bob-token-00002',
  carol: 'carol-token-003',
  dave: 'dave-token-0004',
  erin: 'erin-token-0005',
  proxied: 'proxied-token-01',
  revocable: 'revocable-token-1',
} as const;
const CODE = '424242';
const platform: PlatformServer = await startPlatformServer({
  accounts: Object.fromEntries(Object.values(TOKENS).map((t) => [t, { code: CODE }])),
});
platform.revoke(TOKENS.revokedAtStart);
afterAll(() => platform.close());

// ---------------------------------------------------------------- the conformance kit

adapterConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  {
    adapter: httpPoller,
    credentials: { apiToken: TOKENS.conformance },
    config: { baseUrl: platform.url, pollIntervalMs: 20 },
    action: { text: 'conformance check' },
    auth: { code: CODE },
    badCredentials: [42, 'not credentials', [], null, {}, { apiToken: 'short' }],
    badConfig: [42, 'not a config', [], {}, { baseUrl: 'ftp://example.com' }, { baseUrl: platform.url, pollIntervalMs: -1 }],
    failingStart: { credentials: { apiToken: TOKENS.revokedAtStart } },
    revocable: { credentials: { apiToken: TOKENS.revocable }, revoke: () => platform.revoke(TOKENS.revocable) },
    inbound: (text) => void platform.push(TOKENS.conformance, 'customer', text),
    // The example platform has no "slow down" answer (HTTP 429) to feed back to the rate limiter.
    skip: ['rate-limit'],
  },
);

// ---------------------------------------------------------------- unit tests with connectForTest

describe('http-poller with connectForTest', () => {
  const config = { baseUrl: platform.url, pollIntervalMs: 10 };

  it('logs in with a code, keeps the session key in authState and delivers inbound messages once', async () => {
    const store = createAdapterTestStore();
    const t = connectForTest(httpPoller, { id: 'alice', credentials: { apiToken: TOKENS.alice }, config, auth: { code: CODE }, store });
    await t.connection.start();
    expect(t.requests.map((r) => r.kind)).toEqual(['code']);
    expect(t.requests[0]!.data).toMatchObject({ hint: expect.stringContaining('login code') });
    expect(typeof t.authState.get(SESSION_KEY)).toBe('string');

    platform.push(TOKENS.alice, 'customer', 'hello there');
    await until(() => t.messages.length === 1);
    expect(t.messages[0]).toMatchObject({ from: 'customer', text: 'hello there' });
    await until(() => t.kv.get(CURSOR_KEY) !== undefined);
    expect(await t.connection.send({ text: 'hi!' })).toMatchObject({ id: expect.any(Number) });
    expect(platform.sent.at(-1)).toMatchObject({ text: 'hi!' });
    expect(t.stats.sent).toBe(1);
    await t.stop();

    // The same session id on the same store: no code asked, and the old message is not delivered again.
    const again = connectForTest(httpPoller, { id: 'alice', credentials: { apiToken: TOKENS.alice }, config, store });
    await again.connection.start();
    expect(again.requests).toEqual([]);
    platform.push(TOKENS.alice, 'customer', 'second');
    await until(() => again.messages.length >= 1);
    expect(again.messages.map((m) => (m as { text: string }).text)).toEqual(['second']);
    await again.stop();
    expect(JSON.stringify(t.logs) + JSON.stringify(again.logs)).not.toContain(TOKENS.alice);
  });

  it('reports a refused token with ctx.expired and rejects start()', async () => {
    const t = connectForTest(httpPoller, { credentials: { apiToken: TOKENS.revokedAtStart }, config });
    await expect(t.connection.start()).rejects.toThrow(/HTTP 401/);
    expect(t.expired).toEqual(['the platform refused the API token']);
    await t.stop();
  });

  it('gives up after three wrong codes', async () => {
    const t = connectForTest(httpPoller, { credentials: { apiToken: TOKENS.alice }, config });
    const start = t.connection.start();
    for (let i = 0; i < 3; i++) {
      await until(() => t.requests.length === i + 1);
      await t.answer('code', '000000');
    }
    await expect(start).rejects.toThrow(/wrong login code 3 times/);
    expect(t.logs.filter((l) => l.level === 'warn')).toHaveLength(3);
    await t.stop();
  });

  it('reports a lost connection with ctx.fail after maxPollFailures failed polls', async () => {
    const t = connectForTest(httpPoller, {
      credentials: { apiToken: TOKENS.bob },
      config: { ...config, maxPollFailures: 2 },
      auth: { code: CODE },
    });
    await t.connection.start();
    platform.setDown(true);
    try {
      await until(() => t.failures.length === 1);
      expect(String(t.failures[0])).toMatch(/polling failed 2 times in a row: GET \/updates answered HTTP 503/);
      expect(await t.connection.health()).toMatchObject({ status: 'unhealthy' });
    } finally {
      platform.setDown(false);
    }
    await t.stop();
  });
});

// ---------------------------------------------------------------- through a SessionManager

describe('http-poller driven by a SessionManager', () => {
  let manager: SessionManager;
  const states: { id: string; from: SessionState; to: SessionState; reason: string }[] = [];
  const open = async (options: SessionManagerOptions = {}) => {
    manager = new SessionManager({
      adapters: [httpPoller],
      health: { intervalMs: 60_000, jitter: 0 },
      restart: { retries: 5, minDelayMs: 10, maxDelayMs: 50 },
      ...options,
    });
    manager.on('session.state', (e) => states.push(e));
    await manager.open();
    return manager;
  };
  const login = async (id: string) => {
    const snap = await manager.start(id);
    expect(snap.state).toBe('authenticating');
    expect(snap.auth).toMatchObject({ kind: 'code', data: { hint: expect.any(String) } });
    await manager.submitAuth(id, { kind: 'code', value: CODE });
    return manager.waitFor(id, 'ready', { timeoutMs: 10_000 });
  };
  afterEach(async () => {
    await manager?.close();
    states.length = 0;
  });

  it('describes its settings as JSON Schema for forms (adapterInfo)', async () => {
    await open();
    const [info] = manager.adapterInfo();
    expect(info).toMatchObject({ name: 'http-poller', description: expect.stringContaining('one-time login code') });
    expect(info!.credentialsSchema).toMatchObject({ type: 'object', required: ['apiToken'] });
    expect(Object.keys(info!.configSchema.properties as object).sort()).toEqual(
      ['baseUrl', 'maxPollFailures', 'pollIntervalMs', 'proxy', 'rateLimit', 'requestTimeoutMs'],
    );
    await expect(manager.create({ id: 'x', platform: 'http-poller', credentials: { apiToken: TOKENS.alice }, config: { baseUrl: platform.url, proxy: 'ftp://nope' } }))
      .rejects.toMatchObject({ code: 'VALIDATION', issues: [{ path: ['config', 'proxy'] }] });
  });

  it('runs the code login, delivers messages both ways and counts them', async () => {
    await open();
    await manager.create({ id: 'carol', platform: 'http-poller', credentials: { apiToken: TOKENS.carol }, config: { baseUrl: platform.url, pollIntervalMs: 10 } });
    // a wrong code: the adapter asks again, the session stays authenticating
    await manager.start('carol');
    await manager.submitAuth('carol', { kind: 'code', value: '999999' });
    await until(async () => ((await manager.status('carol')).auth?.data as { attempt?: number } | null)?.attempt === 2);
    expect((await manager.status('carol')).state).toBe('authenticating');
    await manager.submitAuth('carol', { kind: 'code', value: CODE });
    await manager.waitFor('carol', 'ready', { timeoutMs: 10_000 });

    const inbound = new Promise((resolve) => manager.on('session.message', (e) => e.direction === 'in' && resolve(e.message)));
    platform.push(TOKENS.carol, 'customer', 'where is my order?');
    expect(await inbound).toMatchObject({ from: 'customer', text: 'where is my order?' });
    expect(await manager.send('carol', { text: 'on its way', to: 'customer' })).toMatchObject({ id: expect.any(Number) });
    expect(platform.sent.at(-1)).toMatchObject({ to: 'customer', text: 'on its way' });
    await expect(manager.send('carol', { text: '' })).rejects.toMatchObject({ code: 'VALIDATION' });

    const stats = await manager.stats('carol');
    expect(stats).toMatchObject({ messagesIn: 1, messagesOut: 1, custom: { sent: 1 } });
    expect(stats.custom.polls).toBeGreaterThan(0);
    const logs = await manager.logs('carol');
    expect(logs.map((l) => l.msg)).toContain('logged in with a one-time code');
    expect(JSON.stringify(logs)).not.toContain(TOKENS.carol);
    expect(JSON.stringify(await manager.get('carol'))).not.toContain(TOKENS.carol);
  });

  it('resumes without a code after stop/start; logout asks again; clear drops the cursor', async () => {
    await open();
    await manager.create({ id: 'dave', platform: 'http-poller', credentials: { apiToken: TOKENS.dave }, config: { baseUrl: platform.url, pollIntervalMs: 10 } });
    await login('dave');
    platform.push(TOKENS.dave, 'x', 'one');
    await until(async () => (await manager.stats('dave')).messagesIn === 1);
    await manager.stop('dave');
    expect((await manager.start('dave')).state).toBe('ready'); // the stored session key still works

    expect(await manager.clear('dave')).toBe(1); // the cursor
    await manager.restart('dave');
    await until(async () => (await manager.stats('dave')).messagesIn === 2); // "one" again: the cursor was dropped

    const snap = await manager.logout('dave');
    expect(snap.state).toBe('authenticating'); // restarted without auth state: asks for a code
    await manager.submitAuth('dave', { kind: 'code', value: CODE });
    await manager.waitFor('dave', 'ready', { timeoutMs: 10_000 });
  });

  it('goes expired when the platform revokes the token, and stays there on start', async () => {
    const token = `frank-${randomBytes(4).toString('hex')}`;
    const own = await startPlatformServer({ accounts: { [token]: { code: CODE } } });
    try {
      await open();
      await manager.create({ id: 'frank', platform: 'http-poller', credentials: { apiToken: token }, config: { baseUrl: own.url, pollIntervalMs: 10 } });
      await login('frank');
      own.revoke(token);
      const expired = await manager.waitFor('frank', 'expired', { timeoutMs: 10_000 });
      expect(expired.lastError).toMatchObject({ code: 'EXPIRED', message: 'the platform refused the session key' });
      expect(expired.health).toBe('expired');
      expect((await manager.start('frank')).state).toBe('expired'); // the login itself is refused now
      expect(states.filter((s) => s.id === 'frank').map((s) => s.to)).not.toContain('backoff');
    } finally {
      await manager.close();
      await own.close();
    }
  });

  it('degrades while health checks fail and recovers when they pass again', async () => {
    const token = `grace-${randomBytes(4).toString('hex')}`;
    const own = await startPlatformServer({ accounts: { [token]: { code: CODE } } });
    try {
      await open({ health: { intervalMs: 20, unhealthyThreshold: 2, jitter: 0 } });
      await manager.create({ id: 'grace', platform: 'http-poller', credentials: { apiToken: token }, config: { baseUrl: own.url, pollIntervalMs: 600_000 } });
      await login('grace');
      own.setDown(true);
      const degraded = await manager.waitFor('grace', 'degraded', { timeoutMs: 10_000 });
      own.setDown(false); // before the next check, 20 ms later
      expect(degraded.lastError).toMatchObject({ code: 'UNHEALTHY', message: 'GET /ping answered HTTP 503' });
      await manager.waitFor('grace', 'ready', { timeoutMs: 10_000 });
      expect((await manager.status('grace')).health).toBe('healthy');
    } finally {
      await manager.close();
      await own.close();
    }
  });

  it('restarts with back-off when polling is lost, and comes back when the platform does', async () => {
    const token = `heidi-${randomBytes(4).toString('hex')}`;
    const own = await startPlatformServer({ accounts: { [token]: { code: CODE } } });
    try {
      await open({ restart: { retries: 50, minDelayMs: 10, maxDelayMs: 20 } });
      await manager.create({
        id: 'heidi',
        platform: 'http-poller',
        credentials: { apiToken: token },
        config: { baseUrl: own.url, pollIntervalMs: 10, maxPollFailures: 2 },
      });
      await login('heidi');
      states.length = 0;
      own.setDown(true);
      await manager.waitFor('heidi', 'backoff', { timeoutMs: 10_000 });
      await until(() => states.some((s) => s.id === 'heidi' && s.from === 'starting' && s.to === 'backoff')); // a retry failed too
      own.setDown(false);
      await manager.waitFor('heidi', 'ready', { timeoutMs: 10_000 });
      const edges = states.filter((s) => s.id === 'heidi').map((s) => `${s.from}->${s.to}`);
      expect(edges[0]).toBe('ready->backoff');
      expect(edges).toContain('backoff->starting');
      expect(edges).not.toContain('starting->authenticating'); // the session key was kept
      expect(states.find((s) => s.id === 'heidi' && s.from === 'ready')?.reason).toMatch(/polling failed 2 times in a row/);
      expect((await manager.stats('heidi')).restarts).toBeGreaterThan(0);
    } finally {
      await manager.close();
      await own.close();
    }
  });

  it("sends one session's requests through its own proxy, and another's directly", async () => {
    // A plain forward HTTP proxy: http:// targets arrive in absolute form and are relayed.
    const seen: string[] = [];
    const proxy = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const upstream = httpRequest(new URL(req.url!), { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode!, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      await open();
      const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const config = { baseUrl: platform.url, pollIntervalMs: 10 };
      await manager.create({ id: 'via-proxy', platform: 'http-poller', credentials: { apiToken: TOKENS.proxied }, config: { ...config, proxy: proxyUrl } });
      await manager.create({ id: 'direct', platform: 'http-poller', credentials: { apiToken: TOKENS.alice }, config });
      await login('via-proxy');
      expect(seen).toContain(`POST ${platform.url}/login`);
      expect(seen).toContain(`POST ${platform.url}/login/code`);
      const before = seen.length;
      await login('direct');
      await manager.send('direct', { text: 'not through the proxy' });
      expect(seen.slice(before).filter((r) => r.startsWith('POST'))).toEqual([]);
      await manager.send('via-proxy', { text: 'through the proxy' });
      expect(seen).toContain(`POST ${platform.url}/messages`);
    } finally {
      await manager.close();
      proxy.closeAllConnections();
      proxy.close();
    }
  });

  it('comes back after a process restart on SQLite, with no new login code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'http-poller-'));
    const secretKey = randomBytes(32).toString('base64');
    const filename = join(dir, 'sessions.db');
    try {
      await open({ storage: sqliteStorage({ filename }), secretKey });
      await manager.create({ id: 'erin', platform: 'http-poller', credentials: { apiToken: TOKENS.erin }, config: { baseUrl: platform.url, pollIntervalMs: 10 } });
      await login('erin');
      await manager.close();
      states.length = 0;

      await open({ storage: sqliteStorage({ filename }), secretKey }); // open() restores desired-running sessions
      const back = await manager.waitFor('erin', 'ready', { timeoutMs: 10_000 });
      expect(states.map((s) => `${s.from}->${s.to}:${s.reason}`)).toEqual(['stopped->starting:restore', 'starting->ready:connected']);
      expect(back.transitions.map((t) => t.to)).toContain('authenticating'); // the first login, from the stored history
    } finally {
      await manager.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the demo', () => {
  it('main.ts runs as written: login with a code, one message each way, clean exit', async () => {
    const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', main], { timeout: 60_000 });
    expect(stdout).toContain('authenticating → ready (connected)');
    expect(stdout).toContain("text: 'Hello, is anyone there?'");
    expect(stdout).toContain('stopping → stopped (manager closing)');
  });
});

/** Waits until `check` holds, polling on unref'd timers (a guard against hangs, not a speed check). */
async function until(check: () => boolean | Promise<boolean>, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 5).unref());
  }
}
