import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager, SessionNotFoundError, ValidationError, parseProxy, type JsonValue } from 'multisession';
import { webAdapter } from './web-adapter.js';

describe('parseProxy: URL auto-detect', () => {
  it.each([
    ['http://127.0.0.1:3128', { protocol: 'http', host: '127.0.0.1', port: 3128, username: null, password: null }],
    ['https://proxy.example.org', { protocol: 'https', host: 'proxy.example.org', port: 443 }],
    ['http://proxy.example.org', { protocol: 'http', port: 80 }],
    ['socks4://10.0.0.1:1080', { protocol: 'socks4', host: '10.0.0.1', port: 1080 }],
    ['socks5://u:p%40ss@10.0.0.1:1081', { protocol: 'socks5', username: 'u', password: 'p@ss', port: 1081 }],
    ['SOCKS5H://user:pw@localhost', { protocol: 'socks5h', host: 'localhost', port: 1080, username: 'user', password: 'pw' }],
    ['socks://h.example:9050', { protocol: 'socks5', host: 'h.example', port: 9050 }],
    ['user:pass@127.0.0.1:8080', { protocol: 'http', host: '127.0.0.1', port: 8080, username: 'user', password: 'pass' }],
    ['127.0.0.1:8888', { protocol: 'http', host: '127.0.0.1', port: 8888, username: null }],
    ['socks5://[::1]:1080', { protocol: 'socks5', host: '::1', port: 1080 }],
    ['socks4://bot@10.0.0.2:1080/', { protocol: 'socks4', username: 'bot', password: null }],
  ])('%s', (url, expected) => {
    expect(parseProxy(url)).toMatchObject(expected);
  });

  it('takes the object form and fills the rest', () => {
    expect(parseProxy({ protocol: 'socks5', host: '127.0.0.1', port: 1080, username: 'a', password: 'b' })).toEqual({
      protocol: 'socks5',
      host: '127.0.0.1',
      port: 1080,
      username: 'a',
      password: 'b',
      tunnel: false,
    });
  });

  it.each([
    ['ftp://h.example:21', 'unsupported scheme "ftp"'],
    ['socks5://h.example:99999', 'not a valid proxy URL'],
    ['socks5://h.example:0', 'port must be an integer from 1 to 65535'],
    ['http://h.example:3128/path', 'must not have a path'],
    ['http://h.example:3128?x=1', 'must not have a path'],
    ['', 'must be a proxy URL'],
    ['http://:3128', 'not a valid proxy URL'],
    ['http://bad host:1', 'not a valid proxy URL'],
  ])('%s is refused', (url, message) => {
    const error = (() => {
      try {
        parseProxy(url);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).issues[0]).toMatchObject({ path: ['proxy'] });
    expect((error as ValidationError).message).toContain(message);
  });

  it('names each bad field of the object form', () => {
    try {
      parseProxy({ protocol: 'gopher', host: '', port: 'x', extra: 1 } as never);
      expect.unreachable();
    } catch (e) {
      expect((e as ValidationError).issues.map((i) => i.path.join('.'))).toEqual(['proxy.protocol', 'proxy.host', 'proxy.port', 'proxy.extra']);
    }
  });
});

describe('network settings in the session config', () => {
  let managers: SessionManager[] = [];
  afterEach(async () => {
    await Promise.all(managers.map((m) => m.close()));
    managers = [];
  });
  async function make() {
    const web = webAdapter();
    const m = new SessionManager({ adapters: [web.adapter] });
    managers.push(m);
    await m.open();
    return m;
  }
  const create = (m: SessionManager, id: string, config: Record<string, JsonValue>) =>
    m.create({ id, platform: 'web', credentials: { token: `tok-${id}` }, config });
  const refusal = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as ValidationError);

  it('a bad proxy URL is a ValidationError at create naming config.proxy, never quoting the password; nothing is stored', async () => {
    const m = await make();
    const error = await refusal(create(m, 'a', { proxy: 'socks6://bob:Hunter2-Secret@127.0.0.1:1080' }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error!.issues).toEqual([{ path: ['config', 'proxy'], message: expect.stringContaining('unsupported scheme "socks6"') }]);
    expect(JSON.stringify(error!.toJSON()) + error!.message).not.toContain('Hunter2-Secret');
    await expect(m.get('a')).rejects.toBeInstanceOf(SessionNotFoundError);

    const port = await refusal(create(m, 'b', { proxy: { protocol: 'socks5', host: '127.0.0.1', port: 70000 } }));
    expect(port!.issues).toEqual([{ path: ['config', 'proxy', 'port'], message: 'port must be an integer from 1 to 65535' }]);
    const kind = await refusal(create(m, 'c', { proxy: 42 }));
    expect(kind!.issues[0]!.path).toEqual(['config', 'proxy']);
    expect((await m.list()).items).toEqual([]);
  });

  it('bad rate limits name their field', async () => {
    const m = await make();
    const zero = await refusal(create(m, 'a', { rateLimit: { perSecond: 0 } }));
    expect(zero!.issues[0]!.path).toEqual(['config', 'rateLimit', 'perSecond']);
    const burst = await refusal(create(m, 'a', { rateLimit: { perSecond: 1, burst: 1.5 } }));
    expect(burst!.issues[0]!.path).toEqual(['config', 'rateLimit', 'burst']);
    const extra = await refusal(create(m, 'a', { rateLimit: { perSecond: 1, perMinute: 3 } }));
    expect(extra).toBeInstanceOf(ValidationError);
    expect((await m.list()).items).toEqual([]);
  });

  it('a bad proxy at update is refused and the stored config stays; null removes the proxy', async () => {
    const m = await make();
    await create(m, 'a', { proxy: 'socks5h://127.0.0.1:1080', note: 'keep' });
    const before = await m.get('a');
    const error = await refusal(m.update('a', { config: { proxy: 'http://user:Pa55word-X@127.0.0.1:3128/x' } }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error!.issues[0]!.path).toEqual(['config', 'proxy']);
    expect(error!.message).not.toContain('Pa55word-X');
    const after = await m.get('a');
    expect(after.config).toEqual(before.config);
    expect(after.version).toBe(before.version);
    const cleared = await m.update('a', { config: { proxy: null } });
    expect(cleared.config).toEqual({ proxy: null, note: 'keep' });
  });

  it("adapterInfo shows the proxy and rateLimit settings in the config's JSON Schema", async () => {
    const m = await make();
    const info = m.adapterInfo().find((a) => a.name === 'web')!;
    const props = (info.configSchema as { properties: Record<string, { anyOf?: unknown[] }> }).properties;
    expect(props.proxy!.anyOf).toContainEqual({ type: 'string' });
    expect(JSON.stringify(props.rateLimit)).toContain('perSecond');
  });
});
