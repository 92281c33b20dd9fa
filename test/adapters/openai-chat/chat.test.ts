import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AdapterError, RateLimitError, SessionManager, ValidationError, isMessageFrom, type SessionMessageEvent } from 'multisession';
import { OPENAI_HISTORY_PREFIX, OpenAIApiError, openaiChat, type OpenAIChatMessage, type OpenAIChatReply } from 'multisession/adapters/openai-chat';
import { connectForTest, createManualClock, type ManualClock } from 'multisession/testing';
import { startHttpProxy } from '../../net/servers.js';
import { startFakeOpenAI } from './fake-openai.js';

/**
 * The openai-chat adapter under a real SessionManager (manual clock) against the local fake
 * OpenAI-compatible server: bad input, replies and the history in the session's KV (windowed,
 * per conversation, emptied by clear), streaming over SSE, token counters, the back-end's
 * refusals (401, 404, 429, an error inside a stream) and /models as health.
 */
const api = await startFakeOpenAI({ models: ['fake-gpt', 'fake-mini'] });
afterAll(() => api.close());
let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
  api.respond = (messages) => `Echo #${messages.filter((m) => m.role === 'user').length}: ${messages.filter((m) => m.role === 'user').at(-1)?.content ?? ''}`;
});

interface Setup {
  m: SessionManager;
  clock: ManualClock;
  key: string;
  adapter: ReturnType<typeof openaiChat>;
}

async function make(config: Record<string, unknown> = {}, id = 'chat'): Promise<Setup> {
  const clock = createManualClock();
  const adapter = openaiChat();
  const m = new SessionManager({ adapters: [adapter], clock, health: { intervalMs: 60_000, timeoutMs: 5_000, unhealthyThreshold: 1, jitter: 0 }, restart: { retries: 3, minDelayMs: 1_000, maxDelayMs: 8_000, factor: 2 } });
  open.push(m);
  await m.open();
  const key = api.key();
  await m.create({ id, platform: 'openai-chat', credentials: { apiKey: key }, config: { baseUrl: api.url, model: 'fake-gpt', ...config } as never });
  return { m, clock, key, adapter };
}

const reply = (value: unknown) => value as OpenAIChatReply;
const history = async (m: SessionManager, id: string, conversation = 'default') => ((await m.kv(id).get(OPENAI_HISTORY_PREFIX + conversation)) ?? []) as { role: string; content: string }[];

describe('bad input is refused before any request, saying what to change', () => {
  it('a malformed key, a base URL that is not http(s), unknown config keys, a bad action', async () => {
    const { m } = await make();
    const before = api.requests.length;
    const create = (credentials: unknown, config: unknown) =>
      m.create({ id: `x${Math.random().toString(36).slice(2, 8)}`, platform: 'openai-chat', credentials: credentials as never, config: config as never }).then(
        () => new ValidationError('nothing', []),
        (e: unknown) => e as ValidationError,
      );
    const badKey = await create({ apiKey: 'sk-has a space' }, { baseUrl: api.url, model: 'fake-gpt' });
    expect(badKey).toBeInstanceOf(ValidationError);
    expect(badKey.issues.map((i) => i.path)).toEqual([['credentials', 'apiKey']]);
    expect(badKey.message).not.toContain('has a space'); // the key is never echoed
    expect((await create({ apiKey: 'Bearer sk-abc' }, { baseUrl: api.url, model: 'fake-gpt' })).issues[0]!.message).toContain('without "Bearer "');
    expect((await create({ apiKey: 'sk-1', org: 'x' }, { baseUrl: api.url, model: 'fake-gpt' })).message).toContain('org');
    expect((await create({ apiKey: 'sk-1' }, { baseUrl: 'ftp://api.openai.com/v1', model: 'fake-gpt' })).issues.map((i) => i.path)).toEqual([['config', 'baseUrl']]);
    expect((await create({ apiKey: 'sk-1' }, { baseUrl: 'file:///etc/passwd', model: 'fake-gpt' })).issues.map((i) => i.path)).toEqual([['config', 'baseUrl']]);
    expect((await create({ apiKey: 'sk-1' }, { baseUrl: api.url })).issues.map((i) => i.path)).toEqual([['config', 'model']]);
    const typo = await create({ apiKey: 'sk-1' }, { baseUrl: api.url, model: 'fake-gpt', temprature: 0.2 });
    expect(typo.message).toContain('temprature');
    expect((await create({ apiKey: 'sk-1' }, { baseUrl: api.url, model: 'fake-gpt', temperature: 2.5 })).issues.map((i) => i.path)).toEqual([['config', 'temperature']]);
    expect(api.requests.length).toBe(before);

    await m.start('chat');
    const sent = before + 1; // the login's GET /models
    const send = (action: unknown) => m.send('chat', action as never).then(() => new ValidationError('nothing', []), (e: unknown) => e as ValidationError);
    expect((await send({})).issues[0]!.path).toEqual(['action', 'text']);
    expect((await send({ text: '' })).issues[0]!.path).toEqual(['action', 'text']);
    expect((await send({ text: 'hi', conversation: 'no spaces allowed' })).issues[0]!.path).toEqual(['action', 'conversation']);
    expect((await send({ text: 'hi', model: 'other' })).message).toContain('model');
    expect(api.requests.length).toBe(sent);
    expect(() => openaiChat({ nmae: 'x' } as never)).toThrow(ValidationError);
  });
});

describe('chatting', () => {
  it('send({ text }) returns the reply; the history lives in the session KV and clear() empties it', async () => {
    const { m, key } = await make({ systemPrompt: 'You are terse.', temperature: 0.2, maxTokens: 64 });
    expect((await m.start('chat')).state).toBe('ready');
    const first = reply(await m.send('chat', { text: 'hello' }));
    expect(first).toEqual({ text: 'Echo #1: hello', id: expect.stringMatching(/^chatcmpl-/), model: 'fake-gpt', finishReason: 'stop', usage: { promptTokens: expect.any(Number), completionTokens: expect.any(Number), totalTokens: expect.any(Number) } });
    expect(reply(await m.send('chat', { text: 'again' })).text).toBe('Echo #2: again');
    const last = api.completions().at(-1)!;
    expect(last.key).toBe(key);
    expect(last.body).toMatchObject({ model: 'fake-gpt', temperature: 0.2, max_tokens: 64 });
    expect(last.messages).toEqual([
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'Echo #1: hello' },
      { role: 'user', content: 'again' },
    ]);
    expect((await history(m, 'chat')).map((h) => h.content)).toEqual(['hello', 'Echo #1: hello', 'again', 'Echo #2: again']);

    expect(await m.clear('chat')).toBe(1);
    expect(await history(m, 'chat')).toEqual([]);
    expect(reply(await m.send('chat', { text: 'fresh' })).text).toBe('Echo #1: fresh'); // nothing of before is sent
    expect((await m.status('chat')).state).toBe('ready'); // clear keeps the session running
  });

  it('counts prompt and completion tokens as the back-end reports them, and replies', async () => {
    const { m } = await make();
    await m.start('chat');
    const a = reply(await m.send('chat', { text: 'one' }));
    const b = reply(await m.send('chat', { text: 'two' }));
    const stats = await m.stats('chat');
    expect(stats.custom).toEqual({ promptTokens: a.usage!.promptTokens + b.usage!.promptTokens, completionTokens: a.usage!.completionTokens + b.usage!.completionTokens, replies: 2 });
    expect(stats.messagesOut).toBe(2);
  });

  it('keeps each session and each conversation apart; history: false sends and keeps nothing of it', async () => {
    const one = await make({ model: 'fake-gpt', systemPrompt: 'one' }, 'one');
    await one.m.create({ id: 'two', platform: 'openai-chat', credentials: { apiKey: api.key() }, config: { baseUrl: api.url, model: 'fake-mini', systemPrompt: 'two' } });
    await one.m.start('one');
    await one.m.start('two');
    await one.m.send('one', { text: 'secret of one' });
    expect(reply(await one.m.send('two', { text: 'hi' })).text).toBe('Echo #1: hi');
    const toTwo = api.completions().at(-1)!;
    expect(toTwo.model).toBe('fake-mini');
    expect(JSON.stringify(toTwo.messages)).not.toContain('secret of one');
    expect(reply(await one.m.send('one', { text: 'other topic', conversation: 'topic-2' })).text).toBe('Echo #1: other topic');
    expect(reply(await one.m.send('one', { text: 'one-off', history: false, system: 'Write a bid.' })).text).toBe('Echo #1: one-off');
    expect(api.completions().at(-1)!.messages).toEqual([{ role: 'system', content: 'Write a bid.' }, { role: 'user', content: 'one-off' }]);
    expect((await history(one.m, 'one')).map((h) => h.content)).toEqual(['secret of one', 'Echo #1: secret of one']);
    expect((await history(one.m, 'one', 'topic-2')).length).toBe(2);
    expect((await history(one.m, 'two')).map((h) => h.content)).toEqual(['hi', 'Echo #1: hi']);
  });

  it('bounds the window by messages and by tokens, never opening on a reply', async () => {
    const { m } = await make({ historyMessages: 4 });
    await m.start('chat');
    for (const text of ['a', 'b', 'c', 'd']) await m.send('chat', { text });
    // 4 messages at most, the new one included, and never opening on a reply: the last exchange and the new question
    expect(api.completions().at(-1)!.messages.map((x) => x.content)).toEqual(['c', 'Echo #2: c', 'd']);
    expect((await history(m, 'chat')).length).toBe(4);

    const t = await make({ historyTokens: 40 }, 'tokens');
    await t.m.start('tokens');
    const long = 'x'.repeat(80); // ~24 tokens each
    await t.m.send('tokens', { text: long });
    await t.m.send('tokens', { text: 'short' });
    const sent = api.completions().at(-1)!.messages;
    expect(sent.map((x) => x.content)).toEqual(['short']); // the long exchange no longer fits 40 tokens
    await t.m.send('tokens', { text: 'y'.repeat(400) }); // over the bound alone: still sent
    expect(api.completions().at(-1)!.messages.map((x) => x.content.length)).toEqual([400]);
  });

  it("every request goes through the session's proxy, and each send takes one token of its rate limit", async () => {
    const proxy = await startHttpProxy();
    try {
      const { m, clock } = await make({ proxy: `http://127.0.0.1:${proxy.port}`, rateLimit: { perSecond: 1, burst: 1 } });
      await m.start('chat'); // the login probe takes no token
      expect(reply(await m.send('chat', { text: 'one' })).text).toBe('Echo #1: one');
      let second = false;
      const next = m.send('chat', { text: 'two' }).then((r) => ((second = true), r));
      await new Promise((r) => setTimeout(r, 50));
      expect(second).toBe(false); // waits for the bucket's next token
      await clock.advance(1_000);
      expect(reply(await next).text).toBe('Echo #2: two');
      const host = new URL(api.url).host;
      expect(proxy.events.length).toBeGreaterThan(0);
      expect(proxy.events.every((e) => e.target === host && e.allowed)).toBe(true);
      await m.close();
    } finally {
      await proxy.close();
    }
  });

  it('two sends to one conversation at once run in turn: neither exchange is lost', async () => {
    const { m } = await make();
    await m.start('chat');
    await Promise.all([m.send('chat', { text: 'first' }), m.send('chat', { text: 'second' })]);
    expect((await history(m, 'chat')).map((h) => h.content)).toEqual(['first', 'Echo #1: first', 'second', 'Echo #2: second']);
  });
});

describe('streaming over SSE', () => {
  it('emits each delta in order as a session.message in the common envelope, then the whole reply', async () => {
    const { m, adapter } = await make({ stream: true });
    await m.start('chat');
    const seen: OpenAIChatMessage[] = [];
    m.on('session.message', async (e: SessionMessageEvent<unknown>) => {
      if (isMessageFrom(adapter, e)) {
        await new Promise((r) => setTimeout(r, 1)); // a slow async listener: deltas wait for it
        seen.push(e.message);
      }
    });
    api.respond = () => 'The quick brown fox jumps.';
    const r = reply(await m.send('chat', { text: 'tell me' }));
    expect(r.text).toBe('The quick brown fox jumps.');
    expect(r.usage).not.toBeNull(); // stream_options.include_usage
    expect(api.completions().at(-1)!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    const deltas = seen.filter((x) => x.kind === 'delta');
    expect(deltas.map((d) => d.text).join('')).toBe(r.text);
    expect(deltas.map((d) => d.index)).toEqual(deltas.map((_, i) => i));
    expect(deltas[0]).toMatchObject({ id: `${r.id}:0`, replyId: r.id, chatId: 'default', from: { id: 'fake-gpt', name: 'fake-gpt', username: null, bot: true }, at: expect.any(Number), raw: { object: 'chat.completion.chunk' } });
    expect(seen.at(-1)).toMatchObject({ kind: 'reply', id: r.id, text: r.text });
    const stats = await m.stats('chat');
    expect(stats.custom.completionTokens).toBe(r.usage!.completionTokens);
    expect(stats.messagesIn).toBe(deltas.length + 1);
    expect((await history(m, 'chat')).map((h) => h.content)).toEqual(['tell me', r.text]);
  });

  it('a send may stream without the config saying so, and without usage when streamUsage is off', async () => {
    const { m } = await make({ streamUsage: false });
    await m.start('chat');
    const r = reply(await m.send('chat', { text: 'hi', stream: true }));
    expect(r.text).toBe('Echo #1: hi');
    expect(r.usage).toBeNull();
    expect(api.completions().at(-1)!.body.stream_options).toBeUndefined();
  });

  it('an error event inside the stream fails the send and keeps no half reply', async () => {
    const { m } = await make({ stream: true });
    await m.start('chat');
    api.failNext('chat/completions', { status: 500, message: 'The server had an error while processing your request.', type: 'server_error', midStream: 2 });
    const error = await m.send('chat', { text: 'hi there friend' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdapterError);
    expect((error as AdapterError).cause).toBeInstanceOf(OpenAIApiError);
    expect(String((error as AdapterError).cause)).toContain('The server had an error');
    expect(await history(m, 'chat')).toEqual([]);

    api.failNext('chat/completions', { status: 0, message: '', midStream: 2, cut: true });
    const cut = (await m.send('chat', { text: 'hi there friend' }).catch((e: unknown) => e)) as AdapterError;
    expect(cut).toBeInstanceOf(AdapterError);
    expect(String(cut.cause)).toMatch(/stream (broke off|ended before the reply was complete)/);
    expect(await history(m, 'chat')).toEqual([]);
    expect(reply(await m.send('chat', { text: 'next' })).text).toBe('Echo #1: next'); // the connection is fine
  });
});

describe("the back-end's refusals", () => {
  it('401 at login: expired, started once, no restart loop', async () => {
    const { m, key, clock } = await make();
    api.revoke(key);
    await m.start('chat');
    for (let i = 0; i < 5; i++) await clock.advance(10_000);
    const s = await m.get('chat');
    expect(s.state).toBe('expired');
    expect(s.lastError?.message).toContain('refused the API key');
    expect(s.lastError?.message).not.toContain(key.slice(10));
    expect((await m.stats('chat')).starts).toBe(1);
  });

  it('401 on a send or a health check (a revoked key): expired', async () => {
    const a = await make();
    await a.m.start('chat');
    api.revoke(a.key);
    expect(await a.m.send('chat', { text: 'hi' }).catch((e: unknown) => (e as Error).name)).toBe('AdapterError');
    expect((await a.m.waitFor('chat', 'expired', { timeoutMs: 5_000 })).health).toBe('expired');

    const b = await make({}, 'probe');
    await b.m.start('probe');
    api.revoke(b.key);
    await b.clock.advance(60_000); // the health check: GET /models
    expect((await b.m.waitFor('probe', 'expired', { timeoutMs: 5_000 })).health).toBe('expired');
  });

  it('429: send() rejects with RateLimitError (retry-after-ms) and the session waits it out before its next request', async () => {
    const { m, clock } = await make();
    await m.start('chat');
    api.failNext('chat/completions', { status: 429, message: 'Rate limit reached for requests', code: 'rate_limit_exceeded', retryAfter: 3, retryAfterMs: 2_500 });
    const error = (await m.send('chat', { text: 'hi' }).catch((e: unknown) => e)) as RateLimitError;
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error.retryAfterMs).toBe(2_500);
    expect(error.message).toContain('Rate limit reached');
    const count = api.completions().length;
    let done = false;
    const next = m.send('chat', { text: 'later' }).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 50));
    expect({ done, sent: api.completions().length }).toEqual({ done: false, sent: count }); // held back
    await clock.advance(2_500);
    expect(reply(await next).text).toBe('Echo #1: later');
    expect(await history(m, 'chat')).toHaveLength(2); // the refused message was not kept
  });

  it('an unknown model is a failed send naming it; a model the back-end does not list shows in health', async () => {
    const { m, clock } = await make({ model: 'no-such-model' });
    await m.start('chat');
    const error = (await m.send('chat', { text: 'hi' }).catch((e: unknown) => e)) as AdapterError;
    expect(((error.cause as OpenAIApiError).status)).toBe(404);
    expect((error.cause as OpenAIApiError).code).toBe('model_not_found');
    expect(String(error.cause)).toContain('no-such-model');
    await clock.advance(60_000); // the health check: the back-end answers, the session stays up
    expect((await m.get('chat')).health).toBe('healthy');
    const t = connectForTest(openaiChat(), { credentials: { apiKey: api.key() }, config: { baseUrl: api.url, model: 'no-such-model' } });
    await t.connection.start();
    expect(await t.connection.health()).toEqual({ status: 'healthy', detail: 'the model no-such-model is not among the 2 the back-end lists' });
    await t.stop();
  });

  it('a back-end that wants no key gets no Authorization header', async () => {
    const local = await startFakeOpenAI({ requireKey: false, models: ['llama3.1:8b'] });
    try {
      const m = new SessionManager({ adapters: [openaiChat()] });
      open.push(m);
      await m.open();
      await m.create({ id: 'local', platform: 'openai-chat', config: { baseUrl: local.url, model: 'llama3.1:8b' } });
      await m.start('local');
      expect(reply(await m.send('local', { text: 'hi' })).text).toBe('Echo #1: hi');
      expect(local.requests.map((r) => r.key)).toEqual([null, null]);
    } finally {
      await local.close();
    }
  });
});
