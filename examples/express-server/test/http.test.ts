import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeFromQr, openEvents, startTestServer, waitForState, type TestServer } from './helpers.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

let t: TestServer;
/** Every body the server answered, to check no credential ever leaks. */
const seen: string[] = [];

async function call(...args: Parameters<TestServer['call']>) {
  const r = await t.call(...args);
  seen.push(r.text);
  return r;
}

function expectProblem(r: { status: number; headers: Headers; json: any }, status: number, code: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.json).toMatchObject({ status, code, type: expect.stringMatching(/^urn:multisession:problem:/) });
  expect(typeof r.json.detail).toBe('string');
}

/** Credential field names of the demo adapter, read from its schema (so the test follows the adapter). */
let credentialFields: string[] = [];
const SECRET = 'tok-SECRET-4242-never-echo';
/** Distinct credentials per session (the duplicate-credentials guard refuses shared ones). */
function credentialsFor(id: string): Record<string, string> | undefined {
  if (!credentialFields.length) return undefined;
  return Object.fromEntries(credentialFields.map((f) => [f, `${SECRET}-${id}-${f}`]));
}

beforeAll(async () => {
  t = await startTestServer({ manager: { health: { intervalMs: 60_000 } } });
  const adapters = (await t.call('GET', '/api/v1/adapters')).json as any[];
  const demo = adapters.find((a) => a.name === 'demo');
  credentialFields = Object.keys(demo?.credentialsSchema?.properties ?? {});
});

afterAll(async () => {
  await t?.close();
});

function create(id: string, extra: Record<string, unknown> = {}) {
  return call('POST', '/api/v1/sessions', {
    body: { id, platform: 'demo', credentials: credentialsFor(id), ...extra },
  });
}

describe('public endpoints', () => {
  it('GET /api/v1/health answers without a key and pings the storage', async () => {
    const r = await call('GET', '/api/v1/health', { key: null });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ status: 'ok', storage: { kind: 'sqlite', ok: true } });
  });

  it('GET /api-docs is an OpenAPI 3.1 document generated from the zod schemas', async () => {
    const r = await call('GET', '/api-docs', { key: null });
    expect(r.status).toBe(200);
    expect(r.json.openapi).toBe('3.1.0');
    for (const p of ['/api/v1/sessions', '/api/v1/sessions/{id}', '/api/v1/sessions/{id}/qr.png', '/api/v1/events', '/metrics']) {
      expect(r.json.paths).toHaveProperty([p]);
    }
    // The list is paged: a SessionPage, with limit and cursor among its query parameters.
    const list = r.json.paths['/api/v1/sessions'].get;
    expect(list.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/SessionPage' });
    expect(r.json.components.schemas.SessionPage.properties.items.items).toEqual({ $ref: '#/components/schemas/Session' });
    expect(list.parameters.find((p: any) => p.name === 'limit').schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000, default: 100 });
    expect(list.parameters.find((p: any) => p.name === 'cursor').schema).toMatchObject({ type: 'string' });
    const input = r.json.components.schemas.SessionInput;
    expect(input.properties.id.pattern).toBe('^[A-Za-z0-9_-]{1,64}$');
    expect(input.required).toEqual(['id', 'platform']);
    // Every $ref resolves inside the document.
    const refs = [...r.text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(10);
    for (const name of refs) expect(r.json.components.schemas).toHaveProperty([name]);
    // Every {param} of a path is declared on each of its operations.
    for (const [path, ops] of Object.entries<any>(r.json.paths)) {
      const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const op of Object.values<any>(ops)) {
        for (const n of names) expect(op.parameters?.some((p: any) => p.in === 'path' && p.name === n), `${path} ${n}`).toBe(true);
      }
    }
  });

  it('GET / serves the web page with a strict content security policy', async () => {
    const r = await call('GET', '/', { key: null });
    expect(r.status).toBe(200);
    expect(r.text).toContain('<title>multisession');
    expect(r.headers.get('content-security-policy')).toContain("default-src 'self'");
  });
});

describe('authentication', () => {
  it('401 without a key or with a wrong one', async () => {
    const none = await call('GET', '/api/v1/sessions', { key: null });
    expectProblem(none, 401, 'UNAUTHORIZED');
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expectProblem(await call('GET', '/api/v1/sessions', { key: 'msk_0123456789abcdef_' + 'x'.repeat(43) }), 401, 'UNAUTHORIZED');
    expectProblem(await call('GET', '/metrics', { key: null }), 401, 'UNAUTHORIZED');
  });

  it('accepts X-API-Key, and ?key= only on /events', async () => {
    const r = await call('GET', '/api/v1/sessions', { key: null, headers: { 'x-api-key': t.adminKey } });
    expect(r.status).toBe(200);
    const q = await call('GET', `/api/v1/sessions?key=${t.adminKey}`, { key: null });
    expect(q.status).toBe(401);
  });

  it('stores only hashes of keys', async () => {
    const { readFileSync, statSync } = await import('node:fs');
    const file = `${t.dir}/api-keys.json`;
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(t.adminKey);
    expect(text).toContain(t.adminKey.split('_')[1]); // the id, not the secret
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(`${t.dir}/secret.key`).mode & 0o777).toBe(0o600);
  });
});

describe('sessions CRUD', () => {
  it('POST /sessions creates (201) and never echoes credentials', async () => {
    const r = await create('crud-1', { labels: { team: 'a' } });
    expect(r.status).toBe(201);
    expect(r.headers.get('location')).toBe('/api/v1/sessions/crud-1');
    expect(r.json).toMatchObject({ id: 'crud-1', platform: 'demo', state: 'stopped', labels: { team: 'a' } });
    expect(r.json).not.toHaveProperty('credentials');
  });

  it('400 with field paths for bad input, and nothing is stored', async () => {
    const r = await call('POST', '/api/v1/sessions', { body: { id: 'bad id!', platform: 'demo', priority: 99, extra: 1 } });
    expectProblem(r, 400, 'VALIDATION');
    const paths = r.json.errors.map((e: any) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['body.id', 'body.priority']));
    expect(r.json.errors.find((e: any) => e.path === 'body.id').pointer).toBe('#/id');
    const badPath = await call('GET', '/api/v1/sessions/bad%20id!');
    expectProblem(badPath, 400, 'VALIDATION');
    expect(badPath.json.errors[0].path).toBe('path.id');

    const unknown = await call('POST', '/api/v1/sessions', { body: { id: 'x1', platform: 'nope' } });
    expectProblem(unknown, 400, 'VALIDATION');
    expect(unknown.json.errors[0].path).toBe('body.platform');
    expectProblem(await call('GET', '/api/v1/sessions/x1'), 404, 'SESSION_NOT_FOUND');

    const notJson = await call('POST', '/api/v1/sessions', { raw: '{"id": ', headers: { 'content-type': 'application/json' } });
    expectProblem(notJson, 400, 'VALIDATION');
    expectProblem(await call('POST', '/api/v1/sessions', { raw: 'id=x', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('409 when the id is taken or the credentials are in use', async () => {
    expectProblem(await create('crud-1'), 409, 'SESSION_EXISTS');
    const dup = await create('crud-dup', { credentials: credentialsFor('crud-1') });
    expectProblem(dup, 409, 'DUPLICATE_CREDENTIALS');
    expect(dup.json.context).toMatchObject({ otherSessionId: 'crud-1' });
    expectProblem(await call('GET', '/api/v1/sessions/crud-dup'), 404, 'SESSION_NOT_FOUND');
  });

  it('GET /sessions filters by state, platform and label; bad filters are 400', async () => {
    await create('crud-2', { labels: { team: 'b' } });
    const byLabel = await call('GET', '/api/v1/sessions?label=team=b');
    expect(byLabel.json).toEqual({ items: [expect.objectContaining({ id: 'crud-2' })], nextCursor: null });
    const byState = await call('GET', '/api/v1/sessions?state=stopped,ready&platform=demo');
    expect(byState.json.items.map((s: any) => s.id)).toEqual(expect.arrayContaining(['crud-1', 'crud-2']));
    expect((await call('GET', '/api/v1/sessions?platform=other')).json).toEqual({ items: [], nextCursor: null });
    const bad = await call('GET', '/api/v1/sessions?state=sleeping');
    expectProblem(bad, 400, 'VALIDATION');
    expect(bad.json.errors[0].path).toMatch(/^query\.state/);
    expectProblem(await call('GET', '/api/v1/sessions?colour=red'), 400, 'VALIDATION');
  });

  it('GET /sessions/:id, 404 for a missing one', async () => {
    expect((await call('GET', '/api/v1/sessions/crud-1')).json.id).toBe('crud-1');
    expectProblem(await call('GET', '/api/v1/sessions/missing'), 404, 'SESSION_NOT_FOUND');
  });

  it('PATCH changes fields; bad patches are 400 with paths', async () => {
    const r = await call('PATCH', '/api/v1/sessions/crud-2', { body: { labels: { team: 'c' }, priority: 7 } });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ labels: { team: 'c' }, priority: 7 });
    const bad = await call('PATCH', '/api/v1/sessions/crud-2', { body: { priority: 'high', platform: 'x' } });
    expectProblem(bad, 400, 'VALIDATION');
    expect(bad.json.errors.map((e: any) => e.path)).toEqual(expect.arrayContaining(['body.priority']));
    expect((await call('GET', '/api/v1/sessions/crud-2')).json.priority).toBe(7);
    expectProblem(await call('PATCH', '/api/v1/sessions/missing', { body: { priority: 2 } }), 404, 'SESSION_NOT_FOUND');
  });

  it('DELETE removes (204); a missing one is 404', async () => {
    expect((await call('DELETE', '/api/v1/sessions/crud-2')).status).toBe(204);
    expectProblem(await call('GET', '/api/v1/sessions/crud-2'), 404, 'SESSION_NOT_FOUND');
    expectProblem(await call('DELETE', '/api/v1/sessions/crud-2'), 404, 'SESSION_NOT_FOUND');
    expectProblem(await call('DELETE', '/api/v1/sessions/crud-1?force=maybe'), 400, 'VALIDATION');
  });
});

describe('lifecycle, QR login, messages', () => {
  it('start → QR (JSON and PNG) → auth → ready → send → stop → delete', async () => {
    await create('life-1');
    const started = await call('POST', '/api/v1/sessions/life-1/start', { body: { reason: 'test' } });
    expect(started.status).toBe(200);
    const st = await waitForState(t, 'life-1', ['authenticating']);
    expect(st.auth.kind).toBe('qr');

    const qr = await call('GET', '/api/v1/sessions/life-1/qr');
    expect(qr.status).toBe(200);
    expect(qr.json.data).toMatch(/^multisession-demo:life-1:\d{6}$/);
    expect(qr.json.dataUrl).toMatch(/^data:image\/png;base64,/);

    const png = await fetch(`${t.url}/api/v1/sessions/life-1/qr.png`, { headers: { authorization: `Bearer ${t.adminKey}` } });
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    const bytes = new Uint8Array(await png.arrayBuffer());
    expect([...bytes.slice(0, 8)]).toEqual(PNG_SIGNATURE);
    expect(bytes.length).toBeGreaterThan(200);

    // Sending before ready is a conflict.
    expectProblem(await call('POST', '/api/v1/sessions/life-1/messages', { body: { text: 'hi' } }), 409, 'SESSION_NOT_READY');
    // Bad auth input is a 400 with paths.
    const badAuth = await call('POST', '/api/v1/sessions/life-1/auth', { body: { kind: 'fingerprint' } });
    expectProblem(badAuth, 400, 'VALIDATION');
    expect(badAuth.json.errors.map((e: any) => e.path)).toEqual(expect.arrayContaining(['body.kind', 'body.value']));

    const auth = await call('POST', '/api/v1/sessions/life-1/auth', { body: { kind: 'code', value: codeFromQr(qr.json.data) } });
    expect(auth.status).toBe(200);
    await waitForState(t, 'life-1', ['ready']);
    expectProblem(await call('GET', '/api/v1/sessions/life-1/qr'), 409, 'AUTH_NOT_PENDING');
    expectProblem(await call('POST', '/api/v1/sessions/life-1/auth', { body: { kind: 'code', value: '123456' } }), 409, 'AUTH_NOT_PENDING');
    // Starting a running session is idempotent.
    expect((await call('POST', '/api/v1/sessions/life-1/start')).json.state).toBe('ready');

    const sent = await call('POST', '/api/v1/sessions/life-1/messages', { body: { text: 'hello' } });
    expect(sent.status).toBe(200);
    expect(sent.json).toHaveProperty('result');

    const stats = await call('GET', '/api/v1/sessions/life-1/statistics');
    expect(stats.json).toMatchObject({ id: 'life-1', starts: 1, messagesOut: 1 });
    const logs = await call('GET', '/api/v1/sessions/life-1/logs?limit=50');
    expect(Array.isArray(logs.json)).toBe(true);
    expectProblem(await call('GET', '/api/v1/sessions/life-1/logs?level=loud'), 400, 'VALIDATION');
    const status = await call('GET', '/api/v1/sessions/life-1/status');
    expect(status.json).toMatchObject({ id: 'life-1', state: 'ready', desiredState: 'running' });
    const all = await call('GET', '/api/v1/sessions/status');
    expect(all.json.find((s: any) => s.id === 'life-1').state).toBe('ready');

    expectProblem(await call('DELETE', '/api/v1/sessions/life-1'), 409, 'INVALID_TRANSITION');
    const restarted = await call('POST', '/api/v1/sessions/life-1/restart');
    expect(restarted.status).toBe(200);
    // The demo adapter remembers its login: a restart comes back without a new QR.
    await waitForState(t, 'life-1', ['ready']);
    const stopped = await call('POST', '/api/v1/sessions/life-1/stop');
    expect(stopped.json.state).toBe('stopped');
    const cleared = await call('POST', '/api/v1/sessions/life-1/clear');
    expect(cleared.status).toBe(200);
    expect(cleared.headers.get('x-cleared-entries')).toMatch(/^\d+$/);
    const loggedOut = await call('POST', '/api/v1/sessions/life-1/logout');
    expect(loggedOut.status).toBe(200);
    // After logout the next start asks for a QR again.
    await call('POST', '/api/v1/sessions/life-1/start');
    expect((await waitForState(t, 'life-1', ['authenticating'])).auth.kind).toBe('qr');
    expect((await call('DELETE', '/api/v1/sessions/life-1?force=true')).status).toBe(204);
    expectProblem(await call('POST', '/api/v1/sessions/life-1/start'), 404, 'SESSION_NOT_FOUND');
    expect((await call('POST', '/api/v1/sessions/life-1/start', { body: { nope: 1 } })).status).toBe(400);
  });

  it('touch answers 204', async () => {
    await create('touch-1');
    expect((await call('POST', '/api/v1/sessions/touch-1/touch')).status).toBe(204);
  });
});

describe('events (SSE)', () => {
  it('streams state and auth events, filtered by ?session=, key in the query', async () => {
    await create('sse-1');
    await create('sse-2');
    const stream = await openEvents(`${t.url}/api/v1/events?session=sse-1&key=${t.adminKey}`);
    await call('POST', '/api/v1/sessions/sse-2/start');
    await call('POST', '/api/v1/sessions/sse-1/start');
    const events = await stream.until((evs) => evs.some((e) => e.event === 'session.auth'));
    stream.close();
    expect(events[0]!.event).toBe('hello');
    const states = events.filter((e) => e.event === 'session.state');
    expect(states.length).toBeGreaterThan(0);
    expect(states.every((e) => e.data.id === 'sse-1')).toBe(true);
    expect(states.map((e) => e.data.to)).toContain('starting');
    const auth = events.find((e) => e.event === 'session.auth')!;
    expect(auth.data).toMatchObject({ id: 'sse-1', kind: 'qr' });
    for (const e of events) seen.push(JSON.stringify(e.data));
    await call('DELETE', '/api/v1/sessions/sse-1?force=true');
    await call('DELETE', '/api/v1/sessions/sse-2?force=true');
  });

  it('401 without a key; 400 for a bad filter', async () => {
    expectProblem(await call('GET', '/api/v1/events', { key: null }), 401, 'UNAUTHORIZED');
    expectProblem(await call('GET', '/api/v1/events?session=bad%20id'), 400, 'VALIDATION');
  });
});

describe('scoped keys (403)', () => {
  it('a session-scoped key acts only on its sessions', async () => {
    await create('mine');
    await create('theirs');
    const made = await call('POST', '/api/v1/keys', { body: { name: 'bot-owner', sessions: ['mine', 'mine-2'] } });
    expect(made.status).toBe(201);
    const key = made.json.key as string;
    expect(key).toMatch(/^msk_[a-f0-9]{16}_/);
    const listed = await call('GET', '/api/v1/keys');
    expect(JSON.stringify(listed.json)).not.toContain(key);
    expect(listed.json.find((k: any) => k.id === made.json.id)).toMatchObject({ role: 'session', sessions: ['mine', 'mine-2'] });

    expect((await call('GET', '/api/v1/sessions/mine', { key })).status).toBe(200);
    expectProblem(await call('GET', '/api/v1/sessions/theirs', { key }), 403, 'FORBIDDEN');
    expectProblem(await call('POST', '/api/v1/sessions/theirs/start', { key }), 403, 'FORBIDDEN');
    expectProblem(await call('DELETE', '/api/v1/sessions/theirs', { key }), 403, 'FORBIDDEN');
    expect((await call('GET', '/api/v1/sessions', { key })).json).toEqual({ items: [expect.objectContaining({ id: 'mine' })], nextCursor: null });
    expect((await call('GET', '/api/v1/sessions/status', { key })).json.map((s: any) => s.id)).toEqual(['mine']);
    expectProblem(await call('POST', '/api/v1/sessions', { key, body: { id: 'other', platform: 'demo' } }), 403, 'FORBIDDEN');
    const own = await call('POST', '/api/v1/sessions', { key, body: { id: 'mine-2', platform: 'demo', credentials: credentialsFor('mine-2') } });
    expect(own.status).toBe(201);
    expectProblem(await call('GET', '/api/v1/keys', { key }), 403, 'FORBIDDEN');
    expectProblem(await call('GET', '/metrics', { key }), 403, 'FORBIDDEN');
    expectProblem(await call('GET', '/api/v1/audit', { key }), 403, 'FORBIDDEN');
    expect((await call('GET', '/api/v1/audit?sessionId=mine', { key })).status).toBe(200);
    expectProblem(await call('GET', `/api/v1/events?session=theirs&key=${key}`, { key: null }), 403, 'FORBIDDEN');
    expectProblem(await call('GET', '/api/v1/checkpoints/jobs/stats', { key }), 403, 'FORBIDDEN');

    // Its event stream carries only its sessions' events.
    const stream = await openEvents(`${t.url}/api/v1/events?key=${key}`);
    await call('POST', '/api/v1/sessions/theirs/start');
    await call('POST', '/api/v1/sessions/mine/start', { key });
    const events = (await stream.until((evs) => evs.some((e) => e.event === 'session.auth'))).filter((e) => e.event !== 'hello');
    stream.close();
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.data.id === 'mine')).toBe(true);
    await call('POST', '/api/v1/sessions/theirs/stop');
    await call('POST', '/api/v1/sessions/mine/stop', { key });

    expect((await call('DELETE', `/api/v1/keys/${made.json.id}`)).status).toBe(204);
    expectProblem(await call('GET', '/api/v1/sessions/mine', { key }), 401, 'UNAUTHORIZED');
    expectProblem(await call('DELETE', `/api/v1/keys/${made.json.id}`), 404, 'KEY_NOT_FOUND');
    const badKey = await call('POST', '/api/v1/keys', { body: { name: '', role: 'session' } });
    expectProblem(badKey, 400, 'VALIDATION');
    expect(badKey.json.errors.map((e: any) => e.path)).toEqual(expect.arrayContaining(['body.name']));
  });
});

describe('audit, metrics, checkpoints', () => {
  it('GET /audit lists actions with the key as actor; bad queries are 400', async () => {
    const r = await call('GET', '/api/v1/audit?sessionId=mine&limit=20');
    expect(r.status).toBe(200);
    expect(r.json.length).toBeGreaterThan(0);
    expect(r.json.every((e: any) => e.sessionId === 'mine')).toBe(true);
    // The actor is the API key's name: the admin created it, the scoped key stopped it.
    expect(r.json).toEqual(expect.arrayContaining([
      expect.objectContaining({ action: 'create', actor: 'key:admin' }),
      expect.objectContaining({ action: 'stop', actor: 'key:bot-owner' }),
    ]));
    expectProblem(await call('GET', '/api/v1/audit?limit=-1'), 400, 'VALIDATION');
  });

  it('GET /metrics is Prometheus text with sessions by state and health', async () => {
    const r = await call('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(r.text).toContain('# TYPE multisession_sessions gauge');
    expect(r.text).toMatch(/^multisession_sessions\{state="stopped"\} \d+$/m);
    expect(r.text).toMatch(/^multisession_sessions_by_health\{health="unknown"\} \d+$/m);
    expect(r.text).toMatch(/^multisession_restarts_total \d+$/m);
    expect(r.text).toMatch(/^multisession_http_requests_total\{method="GET",status="200"\} \d+$/m);
  });

  it('GET /checkpoints/:stream/stats counts items and feeds /metrics', async () => {
    const cp = t.server.manager.checkpoint('jobs');
    await cp.add([{ key: 'a' }, { key: 'b' }, { key: 'c' }]);
    const r = await call('GET', '/api/v1/checkpoints/jobs/stats');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ stream: 'jobs', pending: 3, total: 3 });
    const m = await call('GET', '/metrics');
    expect(m.text).toMatch(/^multisession_checkpoint_items\{stream="jobs",status="pending"\} 3$/m);
  });
});

describe('limits', () => {
  it('CORS is off unless configured', async () => {
    const r = await call('GET', '/api/v1/sessions', { headers: { origin: 'http://evil.example' } });
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('close() ends open event streams and returns', async () => {
    const s = await startTestServer();
    const res = await fetch(`${s.url}/api/v1/events?key=${s.adminKey}`);
    expect(res.status).toBe(200);
    const body = res.text();
    await s.close();
    expect(await body).toContain('event: hello');
  });

  it('the session limit is a 409 CAPACITY', async () => {
    const small = await startTestServer({ maxSessions: 1 });
    try {
      expect((await small.call('POST', '/api/v1/sessions', { body: { id: 'one', platform: 'demo', credentials: credentialsFor('one') } })).status).toBe(201);
      const r = await small.call('POST', '/api/v1/sessions', { body: { id: 'two', platform: 'demo', credentials: credentialsFor('two') } });
      expectProblem(r, 409, 'CAPACITY');
    } finally {
      await small.close();
    }
  });

  it('rate limit per key: 429 with Retry-After; body limit 413; CORS when configured', async () => {
    const limited = await startTestServer({ rateLimit: { max: 3, windowMs: 60_000 }, bodyLimit: '1kb', corsOrigins: ['http://app.example'] });
    try {
      for (let i = 0; i < 3; i++) expect((await limited.call('GET', '/api/v1/sessions')).status).toBe(200);
      const r = await limited.call('GET', '/api/v1/sessions');
      expectProblem(r, 429, 'RATE_LIMITED');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // Another caller has its own bucket (here: unauthenticated, by address).
      expect((await limited.call('GET', '/api/v1/sessions', { key: null })).status).toBe(401);
    } finally {
      await limited.close();
    }
    const sized = await startTestServer({ bodyLimit: '1kb', corsOrigins: ['http://app.example'] });
    try {
      const big = await sized.call('POST', '/api/v1/sessions', { body: { id: 'big', platform: 'demo', metadata: 'x'.repeat(5000) } });
      expectProblem(big, 413, 'BODY_TOO_LARGE');
      const cors = await sized.call('GET', '/api/v1/sessions', { headers: { origin: 'http://app.example' } });
      expect(cors.headers.get('access-control-allow-origin')).toBe('http://app.example');
      const pre = await fetch(`${sized.url}/api/v1/sessions`, { method: 'OPTIONS', headers: { origin: 'http://app.example', 'access-control-request-method': 'POST' } });
      expect(pre.status).toBe(204);
      const other = await sized.call('GET', '/api/v1/sessions', { headers: { origin: 'http://evil.example' } });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await sized.close();
    }
  });

  it('no response or event carried a credential', () => {
    expect(seen.length).toBeGreaterThan(50);
    for (const body of seen) expect(body).not.toContain(SECRET);
  });
});
