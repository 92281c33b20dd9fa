import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SessionManager, defineAdapter, networkConfigSchema, type AdapterContext } from 'multisession';

const PASSWORD = 'hunter2-proxy-pass';

function setup() {
  const seen: AdapterContext<{ proxy?: unknown }>[] = [];
  const adapter = defineAdapter({
    name: 'proxied',
    credentials: z.object({ token: z.string() }).optional(),
    config: z.object({ ...networkConfigSchema.shape, label: z.string().default('x') }),
    connect(ctx) {
      seen.push(ctx as never);
      return { async start() {}, async stop() {}, async health() { return { status: 'healthy' as const }; }, async send() {} };
    },
  });
  const manager = new SessionManager({ adapters: [adapter] });
  const events: unknown[] = [];
  for (const name of ['session.created', 'session.updated', 'session.state'] as const) manager.on(name, (e) => events.push(e));
  return { manager, seen, events };
}

describe('proxy passwords are secrets', () => {
  it.each([
    ['a URL', `socks5://alice:${PASSWORD}@127.0.0.1:1080`, 'socks5://alice:[redacted]@127.0.0.1:1080'],
    ['a scheme-less URL', `alice:${PASSWORD}@127.0.0.1:3128`, 'alice:[redacted]@127.0.0.1:3128'],
  ])('%s: hidden in snapshots and events, real for the adapter, kept when a snapshot is written back', async (_what, proxy, shown) => {
    const { manager: m, seen, events } = setup();
    await m.open();
    const created = await m.create({ id: 'p', platform: 'proxied', config: { proxy } });
    expect(created.config.proxy).toBe(shown);
    await m.start('p');
    expect(seen.at(-1)!.config.proxy).toBe(proxy);
    // A client writes back the config it was shown, changing only the label.
    await m.update('p', { config: { ...created.config, label: 'y' } });
    await m.restart('p');
    expect(seen.at(-1)!.config.proxy).toBe(proxy);
    expect((await m.get('p')).config).toEqual({ proxy: shown, label: 'y' });
    // A new proxy is a new proxy.
    await m.update('p', { config: { proxy: 'http://127.0.0.1:3129' } });
    expect((await m.get('p')).config.proxy).toBe('http://127.0.0.1:3129');
    expect(JSON.stringify(events)).not.toContain(PASSWORD);
    expect(JSON.stringify((await m.list()).items)).not.toContain(PASSWORD);
    await m.close();
  });

  it('an object form keeps every field but the password', async () => {
    const { manager: m } = setup();
    await m.open();
    const snap = await m.create({ id: 'o', platform: 'proxied', config: { proxy: { protocol: 'http', host: '127.0.0.1', port: 3128, username: 'bob', password: PASSWORD } } });
    expect(snap.config.proxy).toEqual({ protocol: 'http', host: '127.0.0.1', port: 3128, username: 'bob', password: '[redacted]' });
    await m.close();
  });
});
