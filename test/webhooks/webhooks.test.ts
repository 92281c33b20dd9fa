import { hostname } from 'node:os';
import { lookup } from 'node:dns/promises';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionManager, type StorageDriver } from 'multisession';
import { createManualClock, simulatedAdapter, type ManualClock } from 'multisession/testing';
import { createWebhooks, isPrivateAddress, verify, type Webhooks, type CreateWebhooksOptions } from 'multisession/webhooks';
import { driversForTests, SECRET_KEY, startReceiver, type Received } from './helpers.js';

const drivers = await driversForTests();
const headersOf = (r: Received) => ({
  'webhook-id': String(r.headers['webhook-id']),
  'webhook-timestamp': String(r.headers['webhook-timestamp']),
  'webhook-signature': String(r.headers['webhook-signature']),
});

describe.each(drivers)('webhooks on $name', ({ make }) => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(options: Partial<CreateWebhooksOptions> = {}, answer?: Parameters<typeof startReceiver>[0]) {
    const storage: StorageDriver = await make();
    const clock: ManualClock = createManualClock(Date.now());
    const receiver = await startReceiver(answer);
    const webhooks: Webhooks = createWebhooks({ storage, clock, secretKey: SECRET_KEY, allowPrivateTargets: true, jitter: 0, retryScheduleMs: [1000, 5000], ...options });
    cleanup.push(() => storage.close(), () => receiver.close(), () => webhooks.close());
    return { storage, clock, receiver, webhooks };
  }

  it('signs each delivery by Standard Webhooks 1.0 (checked with the standardwebhooks package) and shows the secret only once', async () => {
    const { receiver, webhooks } = await setup();
    const { endpoint, secret } = await webhooks.createEndpoint({ url: receiver.url, events: ['order.paid'] });
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(secret.slice(6), 'base64').length).toBeGreaterThanOrEqual(24);
    expect(JSON.stringify(endpoint)).not.toContain(secret.slice(6));
    expect(JSON.stringify(await webhooks.listEndpoints())).not.toContain(secret.slice(6));
    expect(endpoint.secrets).toEqual({ count: 1, previousExpiresAt: null });

    const [id] = await webhooks.send({ type: 'order.paid', data: { order: 42, note: 'Zoë ✓' } });
    await webhooks.send({ type: 'order.refunded', data: { order: 42 } }); // not subscribed
    expect(await webhooks.deliverDue()).toBe(1);
    expect(receiver.received).toHaveLength(1);
    const got = receiver.received[0]!;
    expect(got.headers['webhook-id']).toBe(id);
    expect(got.headers['content-type']).toBe('application/json');
    const payload = new Webhook(secret).verify(got.body, headersOf(got)) as { type: string; timestamp: string; data: unknown };
    expect(payload).toEqual({ type: 'order.paid', timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), data: { order: 42, note: 'Zoë ✓' } });
    expect(verify(got.body, got.headers as Record<string, string>, secret)).toEqual(payload);
    // a tampered body or another secret does not verify
    expect(() => verify(got.body.replace('42', '43'), got.headers as Record<string, string>, secret)).toThrow(expect.objectContaining({ code: 'WEBHOOK_VERIFICATION' }));
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 1).toString('base64')}`).verify(got.body, headersOf(got))).toThrow();
    const [log] = await webhooks.deliveries(endpoint.id);
    expect(log).toMatchObject({ id, status: 'succeeded', attempts: 1, responseStatus: 204, lastError: null, eventType: 'order.paid' });
    expect(log!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(log).not.toHaveProperty('body');
  });

  it('retries a 5xx on the schedule of the clock, with the same webhook-id, and honours Retry-After', async () => {
    const { receiver, webhooks, clock } = await setup({}, (_r, n) => (n === 1 ? { status: 503 } : n === 2 ? { status: 429, headers: { 'retry-after': '30' } } : { status: 200 }));
    const { endpoint, secret } = await webhooks.createEndpoint({ url: receiver.url });
    const [id] = await webhooks.send({ type: 'order.paid', data: { n: 1 } });
    const t0 = clock.now();
    await webhooks.deliverDue();
    expect(await webhooks.delivery(id!)).toMatchObject({ status: 'pending', attempts: 1, responseStatus: 503, lastError: 'HTTP 503', nextAttemptAt: t0 + 1000 });
    await clock.advance(999);
    expect(await webhooks.deliverDue()).toBe(0);
    await clock.advance(1);
    expect(await webhooks.deliverDue()).toBe(1);
    // the schedule says 5 s, Retry-After says 30 s: the receiver's wish wins
    expect(await webhooks.delivery(id!)).toMatchObject({ status: 'pending', attempts: 2, responseStatus: 429, nextAttemptAt: t0 + 1000 + 30_000 });
    await clock.advance(29_999);
    expect(await webhooks.deliverDue()).toBe(0);
    await clock.advance(1);
    expect(await webhooks.deliverDue()).toBe(1);
    expect(await webhooks.delivery(id!)).toMatchObject({ status: 'succeeded', attempts: 3, responseStatus: 200 });
    expect(receiver.received.map((r) => r.headers['webhook-id'])).toEqual([id, id, id]);
    for (const r of receiver.received) expect(new Webhook(secret).verify(r.body, headersOf(r))).toMatchObject({ data: { n: 1 } });
    expect((await webhooks.getEndpoint(endpoint.id)).failingSince).toBeNull();
  });

  it('gives up after the schedule, and disables an endpoint failing for disableAfterMs with endpoint.disabled', async () => {
    const { receiver, webhooks, clock } = await setup({ disableAfterMs: 4000 }, () => ({ status: 500 }));
    const { endpoint } = await webhooks.createEndpoint({ url: receiver.url });
    const disabled: unknown[] = [];
    webhooks.on('endpoint.disabled', (e) => disabled.push(e));
    const [id] = await webhooks.send({ type: 'a.b', data: 1 });
    await webhooks.deliverDue();
    await clock.advance(1000);
    await webhooks.deliverDue();
    expect(disabled).toEqual([]);
    await clock.advance(5000);
    await webhooks.deliverDue();
    expect(await webhooks.delivery(id!)).toMatchObject({ status: 'failed', attempts: 3, responseStatus: 500 });
    expect(disabled).toEqual([{ endpointId: endpoint.id, reason: 'failing', at: clock.now() }]);
    expect(await webhooks.getEndpoint(endpoint.id)).toMatchObject({ enabled: false, disabledReason: 'failing' });
    expect(await webhooks.send({ type: 'a.b', data: 2 })).toEqual([]);
    // enabling it again clears the failure
    expect(await webhooks.updateEndpoint(endpoint.id, { enabled: true })).toMatchObject({ enabled: true, disabledReason: null, failingSince: null });
  });

  it('a 410 disables the endpoint at once', async () => {
    const { receiver, webhooks } = await setup({}, () => ({ status: 410 }));
    const { endpoint } = await webhooks.createEndpoint({ url: receiver.url });
    const disabled: { reason: string }[] = [];
    webhooks.on('endpoint.disabled', (e) => disabled.push(e));
    const [id] = await webhooks.send({ type: 'a.b', data: 1 });
    await webhooks.deliverDue();
    expect(await webhooks.delivery(id!)).toMatchObject({ status: 'failed', attempts: 1, responseStatus: 410 });
    expect(disabled).toMatchObject([{ endpointId: endpoint.id, reason: 'gone' }]);
    expect(await webhooks.getEndpoint(endpoint.id)).toMatchObject({ enabled: false, disabledReason: 'gone' });
    expect(receiver.received).toHaveLength(1);
  });

  it('replays one delivery and a time range with the same webhook-id; rotation signs with both secrets', async () => {
    const { receiver, webhooks, clock } = await setup();
    const { endpoint, secret } = await webhooks.createEndpoint({ url: receiver.url });
    const [a] = await webhooks.send({ type: 'a.b', data: 'first' });
    await clock.advance(10);
    const [b] = await webhooks.send({ type: 'a.b', data: 'second' });
    await webhooks.deliverDue();
    expect(receiver.received).toHaveLength(2);
    expect(await webhooks.replay(a!)).toMatchObject({ status: 'pending', attempts: 0 });
    await webhooks.deliverDue();
    expect(receiver.received.map((r) => r.headers['webhook-id'])).toEqual([a, b, a]);

    const rotated = await webhooks.rotateSecret(endpoint.id, { keepPreviousForMs: 60_000 });
    expect(rotated.secret).not.toBe(secret);
    expect(rotated.endpoint.secrets).toEqual({ count: 2, previousExpiresAt: clock.now() + 60_000 });
    expect(await webhooks.replayRange(endpoint.id, { since: clock.now() - 5, until: clock.now() + 1 })).toBe(1);
    await webhooks.deliverDue();
    const last = receiver.received.at(-1)!;
    expect(last.headers['webhook-id']).toBe(b);
    expect(String(last.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(new Webhook(secret).verify(last.body, headersOf(last))).toMatchObject({ data: 'second' });
    expect(new Webhook(rotated.secret).verify(last.body, headersOf(last))).toMatchObject({ data: 'second' });
    // once the previous secret expires, only the new one signs
    await clock.advance(60_000);
    await webhooks.replay(b!);
    await webhooks.deliverDue();
    const after = receiver.received.at(-1)!;
    expect(() => new Webhook(secret).verify(after.body, headersOf(after))).toThrow();
    expect(new Webhook(rotated.secret).verify(after.body, headersOf(after))).toMatchObject({ data: 'second' });
  });

  it('sends the manager events an endpoint filters for: by event type and by session id or labels', async () => {
    const { receiver, storage, clock } = await setup();
    const manager = new SessionManager({ storage, adapters: [simulatedAdapter()], secretKey: SECRET_KEY, clock });
    const webhooks = createWebhooks({ storage, manager, clock, secretKey: SECRET_KEY, allowPrivateTargets: true, jitter: 0 });
    cleanup.push(() => webhooks.close(), () => manager.close());
    await manager.open();
    const { endpoint: byLabel } = await webhooks.createEndpoint({ url: `${receiver.url}?label`, events: ['session.state'], sessions: { labels: { team: 'blue' } } });
    const { endpoint: byId } = await webhooks.createEndpoint({ url: `${receiver.url}?id`, events: ['session.created', 'session.deleted'], sessions: { ids: ['red-1'] } });
    await manager.create({ id: 'blue-1', platform: 'simulated', credentials: { token: 'tok-blue-secret' }, labels: { team: 'blue' } });
    await manager.create({ id: 'red-1', platform: 'simulated', credentials: { token: 'tok-red-secret' } });
    await manager.start('blue-1');
    await manager.start('red-1');
    await manager.delete('red-1', { force: true });
    await webhooks.deliverDue();
    const states = (await webhooks.deliveries(byLabel.id)).map((d) => d.eventType);
    expect(states.length).toBeGreaterThanOrEqual(2);
    expect(new Set(states)).toEqual(new Set(['session.state']));
    const bodies = receiver.received.filter((r) => r.path.endsWith('?label')).map((r) => JSON.parse(r.body) as { data: { id: string; to: string } });
    expect(new Set(bodies.map((b) => b.data.id))).toEqual(new Set(['blue-1']));
    expect(bodies.map((b) => b.data.to)).toContain('ready');
    expect((await webhooks.deliveries(byId.id)).map((d) => d.eventType).sort()).toEqual(['session.created', 'session.deleted']);
    // credentials never leave in a webhook
    expect(receiver.received.map((r) => r.body).join('\n')).not.toMatch(/tok-(blue|red)-secret/);
  });

  it('refuses bad input with ValidationError naming the field, before writing anything', async () => {
    const { receiver, webhooks } = await setup();
    const cases: [unknown, string][] = [
      [{ url: 'ftp://example.com/x' }, 'url'],
      [{ url: 'not a url' }, 'url'],
      [{ url: 'https://user:pw@example.com/x' }, 'url'],
      [{ url: receiver.url, events: [] }, 'events'],
      [{ url: receiver.url, events: ['Session State'] }, 'events.0'],
      [{ url: receiver.url, sessions: { ids: 'blue-1' } }, 'sessions.ids'],
      [{ url: receiver.url, secret: 'whsec_c2hvcnQ=' }, 'secret'],
      [{ url: receiver.url, colour: 'red' }, ''],
    ];
    for (const [input, path] of cases) {
      const err = await webhooks.createEndpoint(input as never).then(() => null, (e: unknown) => e as { code: string; issues: { path: (string | number)[] }[] });
      expect(err, JSON.stringify(input)).toMatchObject({ code: 'VALIDATION' });
      expect(err!.issues.map((i) => i.path.join('.')), JSON.stringify(input)).toContain(path);
    }
    expect(await webhooks.listEndpoints()).toEqual([]);
    await expect(webhooks.send({ type: '*', data: 1 })).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(webhooks.deliveries('ep_missing')).rejects.toMatchObject({ code: 'WEBHOOK_NOT_FOUND' });
    await expect(webhooks.replayRange('ep_missing', { since: 0 })).rejects.toMatchObject({ code: 'WEBHOOK_NOT_FOUND' });
    expect(() => createWebhooks({ storage: memoryLike(), retryScheduleMs: [-1] } as never)).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
  });

  it('refuses private, loopback and link-local targets unless allowed, after DNS resolution', async () => {
    const { receiver, storage, clock } = await setup();
    const strict = createWebhooks({ storage, clock, secretKey: SECRET_KEY, jitter: 0, retryScheduleMs: [] });
    cleanup.push(() => strict.close());
    for (const url of ['http://10.0.0.1/hook', 'http://169.254.169.254/latest/meta-data', 'http://127.0.0.1:9/x', 'http://[::1]/x', 'http://[::ffff:127.0.0.1]/x', 'http://localhost/x']) {
      await expect(strict.createEndpoint({ url }), url).rejects.toMatchObject({ code: 'VALIDATION', issues: [{ path: ['url'] }] });
    }
    // a name that resolves to a loopback address passes the URL check, and is refused at connect time
    const name = hostname();
    const resolved = await lookup(name);
    expect(isPrivateAddress(resolved.address)).toBe(true);
    const { endpoint } = await strict.createEndpoint({ url: `http://${name}:${receiver.port}/hooks` });
    const [id] = await strict.send({ type: 'a.b', data: 1 });
    await strict.deliverDue();
    expect(await strict.delivery(id!)).toMatchObject({ status: 'failed', responseStatus: null, lastError: expect.stringMatching(/target refused: .* resolves to/) });
    expect(receiver.received).toEqual([]);
    // allowed explicitly, the same name is delivered to
    const open = createWebhooks({ storage, clock, secretKey: SECRET_KEY, allowPrivateTargets: true, stream: 'open' });
    cleanup.push(() => open.close());
    await open.replay(id!);
    await open.deliverDue();
    expect(receiver.received.map((r) => r.headers['webhook-id'])).toEqual([id]);
    expect(await open.deliveries(endpoint.id)).toMatchObject([{ status: 'succeeded' }]);
  });
});

function memoryLike(): StorageDriver {
  return { kind: 'x' } as StorageDriver;
}

describe('timeouts and answers the sender does not trust', () => {
  it('ends an attempt that hangs at the total timeout, follows no redirect, and reads a huge answer only up to the cap', async () => {
    const { memoryStorage } = await import('multisession');
    const storage = memoryStorage();
    const receiver = await startReceiver((_r, n) =>
      n === 1 ? 'hold' : n === 2 ? { status: 302, headers: { location: 'http://127.0.0.1:1/' } } : { status: 200, body: 'x'.repeat(2_000_000) },
    );
    const webhooks = createWebhooks({ storage, allowPrivateTargets: true, totalTimeoutMs: 300, leaseMs: 1000, retryScheduleMs: [0, 0], jitter: 0 });
    try {
      const { endpoint } = await webhooks.createEndpoint({ url: receiver.url });
      const [id] = await webhooks.send({ type: 'a.b', data: 1 });
      await webhooks.deliverDue();
      expect(await webhooks.delivery(id!)).toMatchObject({ status: 'pending', attempts: 1, responseStatus: null, lastError: 'timed out (total timeout)' });
      await webhooks.deliverDue();
      expect(await webhooks.delivery(id!)).toMatchObject({ status: 'pending', attempts: 2, responseStatus: 302, lastError: 'HTTP 302 (redirects are not followed)' });
      await webhooks.deliverDue();
      expect(await webhooks.delivery(id!)).toMatchObject({ status: 'succeeded', attempts: 3, responseStatus: 200 });
      expect(receiver.received.map((r) => r.headers['webhook-id'])).toEqual([id, id, id]);
      expect(receiver.received.every((r) => r.path === '/hooks')).toBe(true);
      expect((await webhooks.deliveries(endpoint.id)).map((d) => d.id)).toEqual([id]);
    } finally {
      await webhooks.close();
      await receiver.close();
    }
  });
});
