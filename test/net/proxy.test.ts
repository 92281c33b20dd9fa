import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError, SessionManager, type JsonValue } from 'multisession';
import { connectForTest } from 'multisession/testing';
import { startHttpProxy, startSocksProxy, startTarget, type HttpProxy, type SocksProxy, type Target } from './servers.js';
import { webAdapter } from './web-adapter.js';

let target: Target;
let httpProxy: HttpProxy;
let authProxy: HttpProxy;
let socks: SocksProxy;
let socksAuth: SocksProxy;

beforeAll(async () => {
  [target, httpProxy, authProxy, socks, socksAuth] = await Promise.all([
    startTarget(),
    startHttpProxy(),
    startHttpProxy({ auth: { user: 'alice', pass: 'pr0xy-Secret' } }),
    startSocksProxy(),
    startSocksProxy({ auth: { user: 'bob', pass: 's0cks-Secret' } }),
  ]);
});
afterAll(async () => {
  await Promise.all([target, httpProxy, authProxy, socks, socksAuth].map((s) => s?.close()));
});

let managers: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(managers.map((m) => m.close()));
  managers = [];
});

async function manager() {
  const web = webAdapter();
  const m = new SessionManager({ adapters: [web.adapter] });
  managers.push(m);
  await m.open();
  let n = 0;
  const session = async (id: string, config: Record<string, JsonValue>) => {
    await m.create({ id, platform: 'web', credentials: { token: `t-${id}-${n++}` }, config });
    expect((await m.start(id)).state).toBe('ready');
  };
  return { m, web, session };
}

type Answer = { status: number; body: { path: string; session: string; proxyAuthorization: string | null } };
const get = async (m: SessionManager, id: string, path: string) => (await m.send(id, { url: `${target.url}${path}` })) as Answer;

describe('ctx.fetch through the session proxy', () => {
  it('sends one session through its HTTP proxy (absolute form, Basic auth) and another one direct', async () => {
    const { m, session } = await manager();
    await session('proxied', { proxy: `http://alice:pr0xy-Secret@127.0.0.1:${authProxy.port}` });
    await session('direct', {});
    const before = authProxy.events.length;
    const others = () => httpProxy.events.length + socks.events.length + socksAuth.events.length;
    const othersBefore = others();

    const a = await get(m, 'proxied', '/a');
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ path: '/a', session: 'proxied', proxyAuthorization: null }); // auth stops at the proxy
    const b = await get(m, 'direct', '/b');
    expect(b.body).toMatchObject({ path: '/b', session: 'direct' });

    const seen = authProxy.events.slice(before);
    expect(seen).toEqual([{ kind: 'absolute', target: `127.0.0.1:${target.port}`, allowed: true }]);
    // The direct session's request reached the target without any proxy.
    expect(others()).toBe(othersBefore);
    expect(target.hits.filter((h) => h.path === '/b')).toHaveLength(1);
  });

  it('tunnels with CONNECT when the proxy config says tunnel, and auto-detects user:pass@host:port as HTTP', async () => {
    const { m, session } = await manager();
    await session('tunnel', { proxy: { protocol: 'http', host: '127.0.0.1', port: authProxy.port, username: 'alice', password: 'pr0xy-Secret', tunnel: true } });
    await session('bare', { proxy: `alice:pr0xy-Secret@127.0.0.1:${authProxy.port}` });
    const before = authProxy.events.length;
    expect((await get(m, 'tunnel', '/t')).body.path).toBe('/t');
    expect((await get(m, 'bare', '/u')).body.path).toBe('/u');
    expect(authProxy.events.slice(before)).toEqual([
      { kind: 'connect', target: `127.0.0.1:${target.port}`, allowed: true },
      { kind: 'absolute', target: `127.0.0.1:${target.port}`, allowed: true },
    ]);
  });

  it('a wrong proxy password is refused by the proxy (407); the password is in no error and no log', async () => {
    const { m, session } = await manager();
    await session('wrong', { proxy: `http://alice:Wr0ng-Passw0rd@127.0.0.1:${authProxy.port}` });
    await session('wrong-tunnel', { proxy: { protocol: 'http', host: '127.0.0.1', port: authProxy.port, username: 'alice', password: 'Wr0ng-Passw0rd', tunnel: true } });
    const before = authProxy.events.length;
    for (const id of ['wrong', 'wrong-tunnel']) {
      const error = await m.send(id, { url: `${target.url}/x-${id}` }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      let text = '';
      for (let e: unknown = error; e instanceof Error; e = (e as { cause?: unknown }).cause) text += `${e.message}\n${e.stack}\n`;
      expect(text).toContain('407');
      expect(text).not.toContain('Wr0ng-Passw0rd');
      expect(JSON.stringify(await m.logs(id, {}))).not.toContain('Wr0ng-Passw0rd');
    }
    expect(authProxy.events.slice(before)).toEqual([
      { kind: 'absolute', target: `127.0.0.1:${target.port}`, allowed: false },
      { kind: 'connect', target: `127.0.0.1:${target.port}`, allowed: false },
    ]);
    expect(target.hits.some((h) => h.path.startsWith('/x-'))).toBe(false);
  });

  it('SOCKS5 without auth, SOCKS5 with user/password, socks5h resolving on the proxy, socks4 resolving locally', async () => {
    const { m, session } = await manager();
    await session('s5', { proxy: `socks5://127.0.0.1:${socks.port}` });
    await session('s5auth', { proxy: `socks5://bob:s0cks-Secret@127.0.0.1:${socksAuth.port}` });
    await session('s5h', { proxy: `socks5h://bob:s0cks-Secret@127.0.0.1:${socksAuth.port}` });
    await session('s4', { proxy: { protocol: 'socks4', host: '127.0.0.1', port: socks.port } });
    await session('none', {});
    const plainBefore = socks.events.length;
    const authBefore = socksAuth.events.length;

    expect((await get(m, 's5', '/1')).body).toMatchObject({ path: '/1', session: 's5' });
    expect((await get(m, 's5auth', '/2')).body).toMatchObject({ path: '/2', session: 's5auth' });
    const viaName = (await m.send('s5h', { url: `http://localhost:${target.port}/3` })) as Answer;
    expect(viaName.body).toMatchObject({ path: '/3', session: 's5h' });
    const s4 = (await m.send('s4', { url: `http://localhost:${target.port}/4` })) as Answer;
    expect(s4.body).toMatchObject({ path: '/4', session: 's4' });
    expect((await get(m, 'none', '/5')).body.session).toBe('none');

    expect(socks.events.slice(plainBefore)).toEqual([
      { version: 5, host: '127.0.0.1', addressType: 'ipv4', port: target.port, user: null, allowed: true },
      // socks4 resolved "localhost" here and sent an IPv4 address
      { version: 4, host: '127.0.0.1', addressType: 'ipv4', port: target.port, user: null, allowed: true },
    ]);
    expect(socksAuth.events.slice(authBefore)).toEqual([
      { version: 5, host: '127.0.0.1', addressType: 'ipv4', port: target.port, user: 'bob', allowed: true },
      // socks5h left the name to the proxy
      { version: 5, host: 'localhost', addressType: 'domain', port: target.port, user: 'bob', allowed: true },
    ]);
    const hits = target.hits.filter((h) => ['/1', '/2', '/3', '/4', '/5'].includes(h.path));
    expect(hits.map((h) => h.session).sort()).toEqual(['none', 's4', 's5', 's5auth', 's5h']);
  });

  it('SOCKS5 with a wrong password fails the request without leaking the password', async () => {
    const { m, session } = await manager();
    await session('bad', { proxy: `socks5://bob:Not-The-Pass@127.0.0.1:${socksAuth.port}` });
    const error = await m.send('bad', { url: `${target.url}/z` }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    let text = '';
    for (let e: unknown = error; e instanceof Error; e = (e as { cause?: unknown }).cause) text += `${e.message}\n${e.stack}\n`;
    expect(text).not.toContain('Not-The-Pass');
    expect(target.hits.some((h) => h.path === '/z')).toBe(false);
    expect(socksAuth.events.at(-1)).toMatchObject({ user: 'bob', allowed: false });
  });

  it('closes the proxy connections when the session stops; the stopped connection cannot fetch any more', async () => {
    const { m, web, session } = await manager();
    await session('k', { proxy: `socks5://127.0.0.1:${socks.port}` });
    await session('h', { proxy: `http://127.0.0.1:${httpProxy.port}` });
    await get(m, 'k', '/keep');
    await get(m, 'h', '/keep');
    expect(socks.openSockets()).toBeGreaterThan(0); // kept alive for the next request
    expect(httpProxy.openSockets()).toBeGreaterThan(0);
    const oldCtx = web.ctx('k');
    await m.stop('k');
    await m.stop('h');
    await expect.poll(() => socks.openSockets()).toBe(0);
    await expect.poll(() => httpProxy.openSockets()).toBe(0);
    await expect(oldCtx.fetch(`${target.url}/late`)).rejects.toBeInstanceOf(AbortedError);
    expect(target.hits.some((h) => h.path === '/late')).toBe(false);
    // A restart gets a fresh dispatcher through the same proxy.
    expect((await m.start('k')).state).toBe('ready');
    expect((await get(m, 'k', '/again')).body.session).toBe('k');
  });

  it('an aborted init.signal aborts the request; init.dispatcher cannot bypass the proxy', async () => {
    const { m, web, session } = await manager();
    await session('p', { proxy: `http://127.0.0.1:${httpProxy.port}` });
    const ctx = web.ctx('p');
    const controller = new AbortController();
    controller.abort(new Error('caller gave up'));
    await expect(ctx.fetch(`${target.url}/aborted`, { signal: controller.signal })).rejects.toThrow('caller gave up');
    const before = httpProxy.events.length;
    const res = await ctx.fetch(`${target.url}/forced`, { dispatcher: undefined, headers: { 'x-session': 'p' } } as RequestInit);
    expect(res.status).toBe(200);
    expect(httpProxy.events.length).toBe(before + 1);
    void m;
  });

  it("takes a Request of Node's built-in fetch (method, headers, body) and sends it through the proxy", async () => {
    const { web, session } = await manager();
    await session('req', { proxy: `socks5://127.0.0.1:${socks.port}` });
    const before = socks.events.length;
    const request = new Request(`${target.url}/posted`, { method: 'POST', headers: { 'x-session': 'req' }, body: 'hello body' });
    const res = await web.ctx('req').fetch(request);
    expect(await res.json()).toMatchObject({ method: 'POST', path: '/posted', session: 'req', body: 'hello body' });
    expect(socks.events.length).toBe(before + 1);
  });

  it('many requests leave no pile of abort listeners on the session signal (no MaxListenersExceededWarning)', async () => {
    const { web, session } = await manager();
    await session('busy', {});
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const ctx = web.ctx('busy');
      for (let i = 0; i < 1_600; i++) await (await ctx.fetch(`${target.url}/many`)).arrayBuffer();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
      target.hits.length = 0;
    }
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('connectForTest gives adapters the same proxied fetch', async () => {
    const web = webAdapter();
    const t = connectForTest(web.adapter, { id: 'unit', credentials: { token: 'x' }, config: { proxy: `socks5h://127.0.0.1:${socks.port}` } });
    await t.connection.start();
    const before = socks.events.length;
    const out = (await t.connection.send({ url: `http://localhost:${target.port}/unit` })) as Answer;
    expect(out.body).toMatchObject({ path: '/unit', session: 'unit' });
    expect(socks.events.slice(before)).toMatchObject([{ host: 'localhost', addressType: 'domain' }]);
    await t.stop();
    await expect.poll(() => socks.openSockets()).toBe(0);
  });
});
