import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver } from '../../../test/webhooks/helpers.js';
import { startTestServer, type TestServer } from './helpers.js';

/** `/api/v1/webhooks` over HTTP, against a real receiver on 127.0.0.1 (allowed explicitly). */
let t: TestServer;
let receiver: Awaited<ReturnType<typeof startReceiver>>;

beforeAll(async () => {
  receiver = await startReceiver();
  t = await startTestServer({ webhooks: { allowPrivateTargets: true, retryScheduleMs: [20], jitter: 0, pollMs: 20 } });
});
afterAll(async () => {
  await t.close();
  await receiver.close();
});

const headersOf = (r: { headers: Record<string, unknown> }) => ({
  'webhook-id': String(r.headers['webhook-id']),
  'webhook-timestamp': String(r.headers['webhook-timestamp']),
  'webhook-signature': String(r.headers['webhook-signature']),
});

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await read();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('condition never met');
}

describe('/api/v1/webhooks', () => {
  it('creates an endpoint (the secret only in that answer), lists it, sends the manager events, test-sends and replays', async () => {
    const made = await t.call('POST', '/api/v1/webhooks', { body: { url: receiver.url, events: ['session.created', 'webhook.test'], description: 'ops' } });
    expect(made.status).toBe(201);
    expect(made.headers.get('location')).toBe(`/api/v1/webhooks/${made.json.id}`);
    const { id, secret } = made.json as { id: string; secret: string };
    expect(secret).toMatch(/^whsec_/);
    const listed = await t.call('GET', '/api/v1/webhooks');
    expect(listed.json).toMatchObject([{ id, url: receiver.url, events: ['session.created', 'webhook.test'], enabled: true, secrets: { count: 1 } }]);
    expect(listed.text).not.toContain(secret.slice(6));
    expect((await t.call('GET', `/api/v1/webhooks/${id}`)).text).not.toContain(secret.slice(6));

    expect((await t.call('POST', '/api/v1/sessions', { body: { id: 'hooked', platform: 'demo', credentials: { token: 'hook-token-secret' } } })).status).toBe(201);
    const created = await until(() => t.call('GET', `/api/v1/webhooks/${id}/deliveries`), (r) => r.json.some((d: { status: string }) => d.status === 'succeeded'));
    expect(created.json).toMatchObject([{ eventType: 'session.created', sessionId: 'hooked', status: 'succeeded', attempts: 1, responseStatus: 204 }]);
    const first = receiver.received[0]!;
    expect(new Webhook(secret).verify(first.body, headersOf(first))).toMatchObject({ type: 'session.created', data: { id: 'hooked' } });
    expect(first.body).not.toContain('hook-token-secret');

    const test = await t.call('POST', `/api/v1/webhooks/${id}/test`);
    expect(test.status).toBe(200);
    expect(test.json).toMatchObject({ eventType: 'webhook.test', status: 'succeeded', responseStatus: 204 });

    const replay = await t.call('POST', `/api/v1/webhooks/${id}/deliveries/${created.json[0].id}/replay`);
    expect(replay.status).toBe(202);
    await until(async () => receiver.received.filter((r) => r.headers['webhook-id'] === created.json[0].id).length, (n) => n === 2);
    const range = await t.call('POST', `/api/v1/webhooks/${id}/replay`, { body: { since: 0 } });
    expect(range.json).toEqual({ replayed: 2 });
    expect((await t.call('GET', `/api/v1/webhooks/${id}/deliveries?status=pending&limit=5`)).status).toBe(200);
  });

  it('updates, rotates and deletes an endpoint; unknown ids are 404 WEBHOOK_NOT_FOUND', async () => {
    const { json } = await t.call('POST', '/api/v1/webhooks', { body: { url: receiver.url } });
    const patched = await t.call('PATCH', `/api/v1/webhooks/${json.id}`, { body: { enabled: false, events: ['session.state'] } });
    expect(patched.json).toMatchObject({ enabled: false, disabledReason: 'manual', events: ['session.state'] });
    const rotated = await t.call('POST', `/api/v1/webhooks/${json.id}/rotate-secret`, { body: { keepPreviousForMs: 60_000 } });
    expect(rotated.json.secret).toMatch(/^whsec_/);
    expect(rotated.json.secret).not.toBe(json.secret);
    expect(rotated.json.secrets).toMatchObject({ count: 2 });
    expect((await t.call('DELETE', `/api/v1/webhooks/${json.id}`)).status).toBe(204);
    const gone = await t.call('GET', `/api/v1/webhooks/${json.id}`);
    expect(gone.status).toBe(404);
    expect(gone.json.code).toBe('WEBHOOK_NOT_FOUND');
    expect((await t.call('GET', `/api/v1/webhooks/ep_nope/deliveries`)).status).toBe(404);
  });

  it('refuses bad input with the field path, and non-admin keys with 403', async () => {
    const bad = await t.call('POST', '/api/v1/webhooks', { body: { url: 'ftp://x', events: [], colour: 1 } });
    expect(bad.status).toBe(400);
    expect(bad.json.errors.map((e: { path: string }) => e.path)).toEqual(expect.arrayContaining(['body.events', 'body']));
    const badUrl = await t.call('POST', '/api/v1/webhooks', { body: { url: 'ftp://x' } });
    expect(badUrl.json.errors.map((e: { path: string }) => e.path)).toEqual(['body.url']);
    const badQuery = await t.call('GET', '/api/v1/webhooks/ep_x/deliveries?status=lost');
    expect(badQuery.status).toBe(400);
    expect(badQuery.json.errors[0].path).toBe('query.status');
    const key = (await t.call('POST', '/api/v1/keys', { body: { name: 'scoped', sessions: ['hooked'] } })).json.key as string;
    expect((await t.call('GET', '/api/v1/webhooks', { key })).status).toBe(403);
    expect((await t.call('POST', '/api/v1/webhooks', { key, body: { url: receiver.url } })).status).toBe(403);
  });
});

describe('/api/v1/webhooks without --allow-private-webhooks', () => {
  it('refuses private and link-local targets with 400 at body.url', async () => {
    const strict = await startTestServer();
    try {
      for (const url of ['http://10.0.0.1/hook', 'http://169.254.169.254/latest', 'http://127.0.0.1:9/x']) {
        const r = await strict.call('POST', '/api/v1/webhooks', { body: { url } });
        expect(r.status, url).toBe(400);
        expect(r.json.errors.map((e: { path: string }) => e.path)).toEqual(['body.url']);
      }
    } finally {
      await strict.close();
    }
  });
});
