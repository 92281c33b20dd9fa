import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openaiChat } from 'multisession/adapters/openai-chat';
import { adapterConformanceSuite } from 'multisession/testing';
import { startFakeOpenAI } from './fake-openai.js';

// The conformance suite against the local fake OpenAI-compatible server (registered at load time:
// the suite needs its URL in the config). `delivery` is skipped: a chat back-end delivers nothing
// on its own — every inbound message (a streamed delta, a reply) answers a send() of the app.
const api = await startFakeOpenAI();
afterAll(() => api.close());

const key = api.key();
const refused = api.key();
api.revoke(refused);
const revocable = api.key();

adapterConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  {
    adapter: openaiChat(),
    credentials: { apiKey: key },
    config: { baseUrl: api.url, model: 'fake-gpt' },
    action: { text: 'conformance check' },
    badCredentials: [42, 'not credentials', [], null, {}, { apiKey: '' }, { apiKey: 'has a space' }, { apiKey: 'Bearer sk-1' }, { apiKey: 'sk-1\n' }, { apiKey: key, extra: 1 }],
    badConfig: [42, 'not a config', [], {}, { baseUrl: 'ftp://example.org/v1', model: 'fake-gpt' }, { model: '' }, { model: 'fake-gpt', temperature: 3 }, { model: 'fake-gpt', modle: 'x' }],
    failingStart: { credentials: { apiKey: refused } },
    revocable: { credentials: { apiKey: revocable }, revoke: () => api.revoke(revocable) },
    slowDown: () => api.failNext('chat/completions', { status: 429, message: 'Rate limit reached for requests', code: 'rate_limit_exceeded', retryAfter: 2 }),
    skip: ['delivery'],
  },
);
