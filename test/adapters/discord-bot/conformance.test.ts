import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { discordBot } from 'multisession/adapters/discord-bot';
import { adapterConformanceSuite } from 'multisession/testing';
import { startFakeDiscord } from './fake-discord.js';

// The conformance suite, every group, against the local fake Discord (registered at load time:
// the suite needs its URL in the config).
const api = await startFakeDiscord();
afterAll(() => api.close());

const main = api.bot();
const refused = api.bot();
refused.revoked = true;
const revocable = api.bot();

adapterConformanceSuite(
  { describe, it, expect, beforeEach, afterEach },
  {
    adapter: discordBot(),
    credentials: { token: main.token },
    config: { apiRoot: api.url },
    action: { method: 'createMessage', channel_id: '41771983423143937', content: 'conformance check' },
    badCredentials: [42, 'not credentials', [], null, {}, { token: 'not-a-token' }, { token: `Bot ${main.token}` }, { token: main.token, extra: 1 }],
    badConfig: [42, 'not a config', [], { apiRoot: 'ftp://example.org' }, { intents: ['Guilds', 'GuildMesages'] }, { maxRateLimitWaitMs: -1 }, { intent: ['Guilds'] }],
    failingStart: { credentials: { token: refused.token } },
    revocable: { credentials: { token: revocable.token }, revoke: () => revocable.revoke() },
    slowDown: () =>
      main.failNext(/^POST \/channels\/\d+\/messages$/, {
        status: 429,
        body: { message: 'You are being rate limited.', retry_after: 2.5, global: true },
        headers: { 'retry-after': '3', 'x-ratelimit-global': 'true', 'x-ratelimit-scope': 'global' },
      }),
    inbound: (text) => void main.pushMessage('41771983423143937', text),
  },
);
