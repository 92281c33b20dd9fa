import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createManualClock, type ManualClock } from 'multisession/testing';
import { startChatServer, type ChatServer } from '../src/app.js';
import { demoReply, startFakeOpenAI, type FakeOpenAI } from '../src/fake-openai.js';

/**
 * The chat server in process, on a manual clock and the fake back-end with a key: the 60-minute
 * idle expiry (activity keeps a session; an idle one is deleted with its history and files),
 * what reaches the back-end for each client, and the back-end's 429 passed on.
 */
let fake: FakeOpenAI;
let key: string;
let clock: ManualClock;
let server: ChatServer;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  fake.respond = demoReply;
  key = fake.key();
});
afterAll(() => fake.close());
afterEach(() => server?.close());

async function start(): Promise<void> {
  clock = createManualClock();
  server = await startChatServer({ backend: { baseUrl: fake.url, model: 'fake-gpt', apiKey: key, systemPrompt: 'Be brief.' }, clock });
}

async function call(method: string, path: string, sid: string | null, body?: unknown, type = 'application/json') {
  const res = await fetch(server.url + path, {
    method,
    headers: { ...(sid ? { 'x-session-id': sid } : {}), ...(body === undefined ? {} : { 'content-type': type }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, sid: res.headers.get('x-session-id'), body: (text.startsWith('{') ? JSON.parse(text) : text) as any };
}

it('a session idle for 60 minutes is deleted with its history and files; activity keeps it', async () => {
  await start();
  const a = (await call('POST', '/api/chat', null, { message: 'hi' })).sid!;
  const b = (await call('POST', '/api/chat', null, { message: 'hi' })).sid!;
  expect((await call('POST', '/api/files?name=a.txt', a, 'for a only', 'text/plain')).status).toBe(201);
  expect((await server.manager.get(a)).idleTimeoutMs).toBe(60 * 60_000);

  await clock.advance(59 * 60_000);
  expect((await call('POST', '/api/chat', b, { message: 'still here' })).body.reply).toBe('Echo #2: still here'); // b is active
  await clock.advance(60_000); // a: 60 minutes without a request
  await server.sessions.settled();
  await expect(server.manager.get(a)).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
  expect(await server.manager.kv(b).list()).not.toHaveLength(0);
  const back = await call('GET', '/api/files', a);
  expect(back.status).toBe(404); // a's id finds nothing any more
  const fresh = await call('POST', '/api/chat', a, { message: 'hello again' });
  expect(fresh.status).toBe(201);
  expect(fresh.sid).not.toBe(a);
  expect(fresh.body.reply).toBe('Echo #1: hello again'); // nothing of a's history or files

  await clock.advance(58 * 60_000);
  expect((await server.manager.get(b)).state).toBe('ready'); // 59 minutes after its last request
  await clock.advance(60_000);
  await server.sessions.settled();
  await expect(server.manager.get(b)).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
});

it("each client's requests carry its own history and files only, with the server's key", async () => {
  await start();
  const a = (await call('POST', '/api/chat', null, { message: 'my name is Ann' })).sid!;
  await call('POST', '/api/files?name=plan.md', a, '# Ann secret plan', 'text/markdown');
  const b = (await call('POST', '/api/chat', null, { message: 'my name is Bob' })).sid!;
  const before = fake.completions().length;
  await call('POST', '/api/chat', b, { message: 'who am I?' });
  const toB = fake.completions().slice(before);
  expect(toB).toHaveLength(1);
  expect(toB[0]!.key).toBe(key);
  expect(toB[0]!.messages).toEqual([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'my name is Bob' },
    { role: 'assistant', content: 'Echo #1: my name is Bob' },
    { role: 'user', content: 'who am I?' },
  ]);
  await call('POST', '/api/chat', a, { message: 'and me?' });
  const toA = fake.completions().at(-1)!;
  expect(toA.messages[0]!.content).toContain('# Ann secret plan');
  expect(toA.messages.map((m) => m.content).join('\n')).not.toContain('Bob');
});

it("the back-end's 429 reaches the client as 429 with its wait", async () => {
  await start();
  const a = (await call('POST', '/api/chat', null, { message: 'hi' })).sid!;
  fake.failNext('chat/completions', { status: 429, message: 'Rate limit reached for requests', retryAfterMs: 1_500 });
  const limited = await call('POST', '/api/chat', a, { message: 'too fast' });
  expect(limited.status).toBe(429);
  expect(limited.body.error.code).toBe('RATE_LIMITED');
  expect(limited.body.error.message).toContain('1500 ms');
});
