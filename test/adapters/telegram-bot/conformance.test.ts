import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { telegramBot } from 'multisession/adapters/telegram-bot';
import { adapterConformanceSuite } from 'multisession/testing';
import { startFakeBotApi } from './fake-bot-api.js';

// The conformance suite, every group, against the local fake Bot API (registered at load time:
// the suite needs its URL in the config).
const api = await startFakeBotApi();
afterAll(() => api.close());

const main = api.bot();
const refused = api.bot();
refused.revoked = true;
const revocable = api.bot();

adapterConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  {
    adapter: telegramBot(),
    credentials: { token: main.token },
    config: { apiRoot: api.url, pollTimeoutSec: 5 },
    action: { method: 'sendMessage', chat_id: 42, text: 'conformance check' },
    badCredentials: [42, 'not credentials', [], null, {}, { token: 'not-a-token' }, { token: '123:short' }, { token: main.token, extra: 1 }],
    badConfig: [42, 'not a config', [], { apiRoot: 'ftp://example.org' }, { pollTimeoutSec: 51 }, { mode: 'webhook' }, { pollTimout: 5 }],
    failingStart: { credentials: { token: refused.token } },
    revocable: { credentials: { token: revocable.token }, revoke: () => void (revocable.revoked = true) },
    slowDown: () => main.failNext('sendMessage', { status: 429, description: 'Too Many Requests: retry after 2', retryAfter: 2 }),
    inbound: (text) => void main.pushMessage(42, text),
  },
);
