import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createManualClock } from 'multisession/testing';
import { codeFromQr, openEvents, startTestServer, waitForState, type Reply, type TestServer } from './helpers.js';

/**
 * The example server attacked as a careful tester would (issue 11, "Example server hardening"):
 * each test here failed before its fix.
 */

let servers: TestServer[] = [];
async function server(options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const t = await startTestServer(options);
  servers.push(t);
  return t;
}
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(servers.map((t) => t.close()));
  servers = [];
});

function expectProblem(r: Reply, status: number, code: string): void {
  expect({ status: r.status, code: r.json?.code }).toEqual({ status, code });
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
}

/** Resolves with `value`, or with 'timed out' after `ms` (a bound for real I/O, not a timing assertion). */
function within<T>(work: Promise<T>, ms = 10_000): Promise<T | 'timed out'> {
  return Promise.race([work, new Promise<'timed out'>((r) => setTimeout(() => r('timed out'), ms).unref())]);
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`never happened: ${what}`);
}

async function scopedKey(t: TestServer, sessions: string[], name = 'scoped'): Promise<{ id: string; key: string }> {
  const r = await t.call('POST', '/api/v1/keys', { body: { name, role: 'session', sessions } });
  expect(r.status).toBe(201);
  return { id: r.json.id, key: r.json.key };
}

const metric = async (t: TestServer, name: string): Promise<number> => {
  const text = (await t.call('GET', '/metrics')).text;
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

describe('event streams', () => {
  it('revoking an API key ends its open streams at once; other keys keep theirs', async () => {
    const t = await server();
    await t.call('POST', '/api/v1/sessions', { body: { id: 'rv-1', platform: 'demo', credentials: { token: 'rv-token-1' } } });
    const { id, key } = await scopedKey(t, ['rv-1']);
    const mine = await openEvents(`${t.url}/api/v1/events?key=${key}`);
    const admin = await openEvents(`${t.url}/api/v1/events?key=${t.adminKey}`);

    expect((await t.call('DELETE', `/api/v1/keys/${id}`)).status).toBe(204);
    expect(await within(mine.ended)).toBeUndefined();
    expect(mine.events.at(-1)).toEqual({ event: 'bye', data: { reason: 'the API key was revoked' } });

    // What happens afterwards reaches the admin's stream only.
    const before = mine.events.length;
    await t.call('POST', '/api/v1/sessions/rv-1/start');
    await admin.until((evs) => evs.some((e) => e.event === 'session.auth'));
    expect(mine.events.length).toBe(before);
    admin.close();
  });

  it('a key may hold a bounded number of streams (429 TOO_MANY_STREAMS past it)', async () => {
    const t = await server({ sseMaxStreamsPerKey: 2 });
    const { key } = await scopedKey(t, ['x-1']);
    const a = await openEvents(`${t.url}/api/v1/events?key=${key}`);
    const b = await openEvents(`${t.url}/api/v1/events?key=${key}`);
    const third = await t.call('GET', `/api/v1/events?key=${key}`, { key: null });
    expectProblem(third, 429, 'TOO_MANY_STREAMS');
    expect(third.headers.get('retry-after')).toBe('5');
    // Another key has its own allowance; a closed stream frees a place.
    const admin = await openEvents(`${t.url}/api/v1/events?key=${t.adminKey}`);
    a.close();
    await until(async () => (await metric(t, 'multisession_sse_clients')) === 2, 'the closed stream is gone');
    const again = await openEvents(`${t.url}/api/v1/events?key=${key}`);
    for (const s of [b, admin, again]) s.close();
  });

  it('clients that stopped reading are dropped past the buffer bound, and their messages are not kept', async () => {
    const t = await server({ sseMaxBufferBytes: 256 * 1024, demo: { auth: 'none', echo: true } });
    await t.call('POST', '/api/v1/sessions', { body: { id: 'bp-1', platform: 'demo', credentials: { token: 'bp-token-1' } } });
    await t.call('POST', '/api/v1/sessions/bp-1/start');
    await waitForState(t, 'bp-1', ['ready']);

    // Five raw clients that read the response head and the hello, then never read again.
    const port = new URL(t.url).port;
    const stalled: Array<{ socket: Socket; bytes: number; ended: Promise<void> }> = [];
    for (let i = 0; i < 5; i++) {
      const socket = connect(Number(port), '127.0.0.1');
      const client = { socket, bytes: 0, ended: new Promise<void>((r) => socket.once('close', () => r())) };
      await new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          client.bytes += chunk.length;
          if (chunk.toString().includes('event: hello')) {
            socket.pause();
            resolve();
          }
        });
        socket.write(`GET /api/v1/events?key=${t.adminKey} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      });
      stalled.push(client);
    }
    expect(await metric(t, 'multisession_sse_clients')).toBe(5);

    // 150 messages of 50 KB: each goes out and is echoed back in, 15 MB per stream.
    const text = 'x'.repeat(50_000);
    for (let i = 0; i < 150; i++) await t.server.manager.send('bp-1', { text });

    expect(await metric(t, 'multisession_sse_clients')).toBe(0);
    expect(await metric(t, 'multisession_sse_dropped_total')).toBe(5);
    // Reading again, each client gets what was in flight, then the end: far less than was sent.
    for (const c of stalled) {
      c.socket.resume();
      expect(await within(c.ended)).toBeUndefined();
      expect(c.bytes).toBeLessThan(150 * 2 * 50_000);
    }
    // A new stream works.
    const fresh = await openEvents(`${t.url}/api/v1/events?key=${t.adminKey}`);
    fresh.close();
  });
});

describe('duplicate credentials across scopes', () => {
  it('a scoped key learns no other session id; conflicts are audited and limited per key', async () => {
    const clock = createManualClock();
    const t = await server({ manager: { clock }, credentialConflicts: { max: 2, windowMs: 60_000 } });
    await t.call('POST', '/api/v1/sessions', { body: { id: 'victim', platform: 'demo', credentials: { token: 'victims-token' } } });
    const { key } = await scopedKey(t, ['demo-1'], 'guesser');
    expect((await t.call('POST', '/api/v1/sessions', { key, body: { id: 'demo-1', platform: 'demo', credentials: { token: 'own-token' } } })).status).toBe(201);

    const guess = await t.call('PATCH', '/api/v1/sessions/demo-1', { key, body: { credentials: { token: 'victims-token' } } });
    expectProblem(guess, 409, 'DUPLICATE_CREDENTIALS');
    expect(guess.text).not.toContain('victim"');
    expect(guess.json.context).toEqual({ sessionId: 'demo-1' });
    const create = await t.call('POST', '/api/v1/sessions', { key, body: { id: 'demo-1', platform: 'demo', credentials: { token: 'x' } } });
    expectProblem(create, 409, 'SESSION_EXISTS');

    // The admin sees who collided with whom; the scoped key sees its own entry without the other id.
    const adminView = await t.call('GET', '/api/v1/audit?action=credentials-conflict');
    expect(adminView.json).toEqual([expect.objectContaining({ sessionId: 'demo-1', actor: 'key:guesser', details: { operation: 'update', otherSessionId: 'victim' } })]);
    const ownView = await t.call('GET', '/api/v1/audit?sessionId=demo-1&action=credentials-conflict', { key });
    expect(ownView.json).toEqual([expect.objectContaining({ details: { operation: 'update' } })]);
    expect(ownView.text).not.toContain('victim');

    // The second conflict uses up the allowance: the key's next create or update waits.
    expectProblem(await t.call('PATCH', '/api/v1/sessions/demo-1', { key, body: { credentials: { token: 'victims-token' } } }), 409, 'DUPLICATE_CREDENTIALS');
    const limited = await t.call('PATCH', '/api/v1/sessions/demo-1', { key, body: { priority: 3 } });
    expectProblem(limited, 429, 'RATE_LIMITED');
    expect(limited.json.detail).toMatch(/credential conflicts/);
    // The allowance refills continuously (2 per minute: one every 30 s).
    expect(limited.headers.get('retry-after')).toBe('30');
    // Admin keys are not limited (they can read every session anyway) and are told the holder.
    const adminDup = await t.call('POST', '/api/v1/sessions', { body: { id: 'admin-dup', platform: 'demo', credentials: { token: 'victims-token' } } });
    expect(adminDup.json.context).toMatchObject({ otherSessionId: 'victim' });
    expect(await metric(t, 'multisession_credential_conflicts_total')).toBe(3);

    await clock.advance(29_000);
    expectProblem(await t.call('PATCH', '/api/v1/sessions/demo-1', { key, body: { priority: 3 } }), 429, 'RATE_LIMITED');
    await clock.advance(1_000);
    expect((await t.call('PATCH', '/api/v1/sessions/demo-1', { key, body: { priority: 3 } })).status).toBe(200);
  });
});

describe('request bodies and queries', () => {
  it('JSON nested 2,000 deep is a 400 before validation, not a 500', async () => {
    const t = await server();
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const raw = `{"id":"deep","platform":"demo","metadata":${'['.repeat(2_000)}1${']'.repeat(2_000)}}`;
    const r = await t.call('POST', '/api/v1/sessions', { raw, headers: { 'content-type': 'application/json' } });
    expectProblem(r, 400, 'VALIDATION');
    expect(r.json.errors).toEqual([{ path: 'body', pointer: '#', message: 'nests deeper than 64 levels' }]);
    // Strings full of brackets are not nesting.
    const brackets = await t.call('POST', '/api/v1/sessions', { body: { id: 'flat', platform: 'demo', credentials: { token: 'flat-token' }, metadata: { note: '[[[[{{{{'.repeat(100) } } });
    expect(brackets.status).toBe(201);
    expect(errors).not.toHaveBeenCalled();
  });

  it('__proto__ keys and label filters are refused with their path', async () => {
    const t = await server();
    await t.call('POST', '/api/v1/sessions', { body: { id: 'p-1', platform: 'demo', credentials: { token: 'p-token-1' }, labels: { team: 'a' } } });
    const list = await t.call('GET', '/api/v1/sessions?label=__proto__=x');
    expectProblem(list, 400, 'VALIDATION');
    expect(list.json.errors[0].path).toBe('query.label.0');

    const bodies: Array<[string, string]> = [
      ['{"id":"p-2","platform":"demo","labels":{"__proto__":"x"}}', 'body.labels.__proto__'],
      ['{"id":"p-2","platform":"demo","metadata":{"a":[{"__proto__":{"admin":true}}]}}', 'body.metadata.a.0.__proto__'],
      ['{"id":"p-2","platform":"demo","config":{"__proto__":{"greeting":"x"}}}', 'body.config.__proto__'],
      ['{"id":"p-2","platform":"demo","credentials":{"token":"p-token-2","__proto__":{}}}', 'body.credentials.__proto__'],
    ];
    for (const [raw, path] of bodies) {
      const r = await t.call('POST', '/api/v1/sessions', { raw, headers: { 'content-type': 'application/json' } });
      expectProblem(r, 400, 'VALIDATION');
      expect(r.json.errors).toEqual([{ path, pointer: `#/${path.split('.').slice(1).join('/')}`, message: expect.stringMatching(/__proto__/) }]);
    }
    expect((await t.call('GET', '/api/v1/sessions/p-2')).status).toBe(404);
    const patch = await t.call('PATCH', '/api/v1/sessions/p-1', { raw: '{"labels":{"__proto__":"x"}}', headers: { 'content-type': 'application/json' } });
    expect(patch.json.errors[0].path).toBe('body.labels.__proto__');
  });

  it('unknown keys inside config are refused with their path, on create and update', async () => {
    const t = await server();
    const r = await t.call('POST', '/api/v1/sessions', { body: { id: 'c-1', platform: 'demo', credentials: { token: 'c-token-1' }, config: { greeting: 'hi', multiDevice: true } } });
    expectProblem(r, 400, 'VALIDATION');
    expect(r.json.errors.map((e: any) => [e.path, e.pointer])).toEqual([['body.config.multiDevice', '#/config/multiDevice']]);
    expect(r.json.errors[0].message).toMatch(/not a known field.*greeting/);
    expect((await t.call('POST', '/api/v1/sessions', { body: { id: 'c-1', platform: 'demo', credentials: { token: 'c-token-1' }, config: { greeting: 'hi' } } })).status).toBe(201);
    const patch = await t.call('PATCH', '/api/v1/sessions/c-1', { body: { config: { greting: 'typo' } } });
    expectProblem(patch, 400, 'VALIDATION');
    expect(patch.json.errors[0].path).toBe('body.config.greting');
    expect((await t.call('GET', '/api/v1/sessions/c-1')).json.config.greeting).toBe('hi');
  });

  it('415 carries UNSUPPORTED_MEDIA_TYPE for a charset or encoding the parser refuses', async () => {
    const t = await server();
    const latin = await t.call('POST', '/api/v1/sessions', { raw: '{"id":"l"}', headers: { 'content-type': 'application/json; charset=latin1' } });
    expectProblem(latin, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(latin.json.detail).toMatch(/UTF-8/);
    const encoded = await t.call('POST', '/api/v1/sessions', { raw: '{"id":"l"}', headers: { 'content-type': 'application/json', 'content-encoding': 'x-bogus' } });
    expectProblem(encoded, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('the shared 429 of requests without a valid key says it is per address', async () => {
    const t = await server({ rateLimit: { max: 2, windowMs: 60_000 } });
    for (let i = 0; i < 2; i++) expect((await t.call('GET', '/api/v1/sessions', { key: null })).status).toBe(401);
    const r = await t.call('GET', '/api/v1/sessions', { key: 'not-a-key-at-all' });
    expectProblem(r, 429, 'RATE_LIMITED');
    expect(r.json.detail).toMatch(/from this address without a valid API key/);
    expect(r.json.detail).not.toMatch(/for this (API )?key/);
  });
});

describe('login and audit', () => {
  it('a wrong auth kind while a QR shows is a 409 naming the kind expected, with nothing in the error log', async () => {
    const t = await server();
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    await t.call('POST', '/api/v1/sessions', { body: { id: 'qr-1', platform: 'demo', credentials: { token: 'qr-token-1' } } });
    await t.call('POST', '/api/v1/sessions/qr-1/start');
    await waitForState(t, 'qr-1', ['authenticating']);
    const wrongKind = await t.call('POST', '/api/v1/sessions/qr-1/auth', { body: { kind: 'password', value: 'hunter2-password' } });
    expectProblem(wrongKind, 409, 'AUTH_NOT_PENDING');
    expect(wrongKind.json.detail).toMatch(/kind "code"/);
    expect(wrongKind.json.context).toMatchObject({ expected: 'code', shown: 'qr' });
    const wrongCode = await t.call('POST', '/api/v1/sessions/qr-1/auth', { body: { kind: 'code', value: 'not-the-code' } });
    expectProblem(wrongCode, 400, 'VALIDATION');
    expect(wrongCode.json.errors[0].path).toBe('body.value');
    expect(errors).not.toHaveBeenCalled();

    // Auth submissions are audited with the key as actor, without the value.
    const qr = await t.call('GET', '/api/v1/sessions/qr-1/qr');
    const code = codeFromQr(qr.json.data);
    expect((await t.call('POST', '/api/v1/sessions/qr-1/auth', { body: { kind: 'code', value: code } })).status).toBe(200);
    const audit = await t.call('GET', '/api/v1/audit?sessionId=qr-1&action=auth');
    expect(audit.json.map((e: any) => [e.actor, e.details])).toEqual([
      ['key:admin', { kind: 'code', outcome: 'accepted' }],
      ['key:admin', { kind: 'code', outcome: 'VALIDATION' }],
      ['key:admin', { kind: 'password', outcome: 'AUTH_NOT_PENDING' }],
    ]);
    expect(audit.text).not.toContain('hunter2');
    expect(audit.text).not.toContain(`"${code}"`);
  });

  it('audit entries older than the retention are deleted (the manager clock decides)', async () => {
    const clock = createManualClock();
    const t = await server({ manager: { clock }, auditRetentionDays: 1 });
    await t.call('POST', '/api/v1/sessions', { body: { id: 'ret-1', platform: 'demo', credentials: { token: 'ret-token-1' } } });
    expect((await t.call('GET', '/api/v1/audit?sessionId=ret-1')).json).toHaveLength(1);
    await clock.advance(25 * 60 * 60_000);
    expect((await t.call('GET', '/api/v1/audit?sessionId=ret-1')).json).toEqual([]);
  });
});

describe('headers and files', () => {
  it('CORS exposes Retry-After, Location and X-Cleared-Entries; JSON answers are not cached', async () => {
    const t = await server({ corsOrigins: ['http://app.example'] });
    const created = await t.call('POST', '/api/v1/sessions', { headers: { origin: 'http://app.example' }, body: { id: 'h-1', platform: 'demo', credentials: { token: 'h-token-1' } } });
    const exposed = (created.headers.get('access-control-expose-headers') ?? '').split(/,\s*/).map((h) => h.toLowerCase());
    expect(exposed).toEqual(expect.arrayContaining(['retry-after', 'location', 'x-cleared-entries']));
    for (const r of [
      created,
      await t.call('GET', '/api/v1/sessions'),
      await t.call('GET', '/api/v1/sessions/missing'),
      await t.call('GET', '/api/v1/health', { key: null }),
      await t.call('GET', '/api-docs', { key: null }),
      await t.call('GET', '/metrics'),
      await t.call('GET', '/nowhere', { key: null }),
    ]) {
      expect(r.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('the SQLite file is made with mode 0600 wherever --db points', async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'ms-db-'));
    try {
      const db = join(elsewhere, 'nested', 'sessions.db');
      const t = await server({ db });
      await t.call('POST', '/api/v1/sessions', { body: { id: 'f-1', platform: 'demo', credentials: { token: 'f-token-1' } } });
      expect(statSync(db).mode & 0o777).toBe(0o600);
      expect(statSync(`${db}-wal`).mode & 0o777).toBe(0o600);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
      servers = [];
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
