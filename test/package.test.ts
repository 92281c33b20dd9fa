/**
 * The package as users install it: the tarball `npm pack` makes from a fresh build, unpacked
 * outside the repository; every `exports` entry (each adapter of `./adapters/*` too) resolves for
 * ESM and CommonJS, with types, and the published files hold no sources or tests.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error a plain ES module of the build scripts, without types
import { isFresh } from '../scripts/build-stamp.mjs';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const artifacts = join(root, '.artifacts');
const consumer = join(artifacts, 'consumer');
const installed = join(consumer, 'node_modules', 'multisession');
let subpaths: string[] = [];
let packed: string[] = [];

/** Every import specifier the exports map offers, the adapters of the wildcard entry by name. */
function exportedSpecifiers(): string[] {
  const { exports } = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  return Object.keys(exports)
    .filter((key) => key !== './package.json')
    .flatMap((key) => {
      if (!key.includes('*')) return [key === '.' ? 'multisession' : `multisession${key.slice(1)}`];
      const folder = join(installed, 'dist', key.slice(2, key.indexOf('*')));
      return existsSync(folder) ? readdirSync(folder).map((name) => `multisession${key.slice(1).replace('*', name)}`) : [];
    });
}

beforeAll(async () => {
  // A build older than the sources (or none) is rebuilt: the test checks what the code is now.
  if (!(isFresh as () => boolean)()) await run('npm', ['run', 'build'], { cwd: root, timeout: 300_000 });
  rmSync(consumer, { recursive: true, force: true });
  mkdirSync(join(consumer, 'node_modules'), { recursive: true });
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', artifacts], { cwd: root });
  const [info] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  packed = info!.files.map((f) => f.path);
  mkdirSync(installed);
  // Dependencies resolve from the repository's node_modules (the consumer sits inside it).
  await run('tar', ['-xzf', join(artifacts, info!.filename), '-C', installed, '--strip-components=1']);
  rmSync(join(artifacts, info!.filename));
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  subpaths = exportedSpecifiers();
}, 400_000);

describe('the published package', () => {
  it('every subpath loads with import and with require, with the same exports', async () => {
    const esm = `
      const out = {};
      for (const p of ${JSON.stringify(subpaths)}) out[p] = Object.keys(await import(p)).sort();
      console.log(JSON.stringify(out));`;
    const cjs = `
      const out = {};
      for (const p of ${JSON.stringify(subpaths)}) out[p] = Object.keys(require(p)).sort();
      console.log(JSON.stringify(out));`;
    const a = JSON.parse((await run(process.execPath, ['--input-type=module', '-e', esm], { cwd: consumer })).stdout);
    const b = JSON.parse((await run(process.execPath, ['-e', cjs], { cwd: consumer })).stdout);
    for (const p of subpaths) expect(a[p].length, p).toBeGreaterThan(0);
    expect(a.multisession).toEqual(expect.arrayContaining(['SessionManager', 'defineAdapter', 'memoryStorage', 'createCheckpoint', 'ValidationError']));
    expect(a['multisession/testing']).toEqual(expect.arrayContaining(['simulatedAdapter', 'createManualClock', 'storageConformanceSuite', 'adapterConformanceSuite', 'checkpointConformanceSuite']));
    expect(a['multisession/sqlite']).toContain('sqliteStorage');
    expect(a['multisession/postgres']).toContain('postgresStorage');
    expect(a['multisession/webhooks']).toEqual(expect.arrayContaining(['createWebhooks', 'verify', 'sign', 'generateWebhookSecret']));
    expect(a['multisession/adapters/telegram-bot']).toEqual(expect.arrayContaining(['telegramBot', 'telegramBotAction', 'TelegramApiError']));
    expect(a['multisession/adapters/openai-chat']).toEqual(expect.arrayContaining(['openaiChat', 'openaiChatAction', 'OpenAIApiError']));
    expect(a['multisession/adapters/discord-bot']).toEqual(expect.arrayContaining(['discordBot', 'discordBotAction', 'DiscordApiError', 'DiscordGatewayError']));
    // CommonJS sees the same names (the default export aside).
    for (const p of subpaths) expect(b[p].filter((k: string) => k !== 'default')).toEqual(a[p].filter((k: string) => k !== 'default'));
  });

  it('a session runs end to end from the CommonJS build', async () => {
    const script = `
      const { SessionManager } = require('multisession');
      const { simulatedAdapter } = require('multisession/testing');
      (async () => {
        const m = new SessionManager({ adapters: [simulatedAdapter()] });
        await m.open();
        await m.create({ id: 'cjs', platform: 'simulated', credentials: { token: 'token-cjs' } });
        const s = await m.start('cjs');
        console.log(s.state);
        await m.close();
      })();`;
    expect((await run(process.execPath, ['-e', script], { cwd: consumer })).stdout.trim()).toBe('ready');
  });

  it('types resolve for ESM and CommonJS consumers (node16 resolution)', async () => {
    const use = `
      const m = new SessionManager({ adapters: [simulatedAdapter()], storage: sqliteStorage({ filename: ':memory:' }) });
      const p: typeof postgresStorage = postgresStorage;
      const t = telegramBot();
      const action: TelegramBotAction = { method: 'sendMessage', chat_id: 1, text: 'hi' };
      const managed = new SessionManager({ adapters: [t] });
      const chat: OpenAIChatAction = { text: 'hi', conversation: 'c1' };
      const ai = new SessionManager({ adapters: [openaiChat()] });
      const d = discordBot();
      const send: DiscordBotAction = { method: 'createMessage', channel_id: '1', content: 'hi' };
      const both = new SessionManager({ adapters: [t, d] });
      const w: typeof createWebhooks = createWebhooks;
      const v: typeof verify = verify;
      void m; void p; void action; void managed; void chat; void ai; void send; void both; void w; void v;`;
    writeFileSync(join(consumer, 'esm.mts'), `import { SessionManager } from 'multisession';\nimport { simulatedAdapter } from 'multisession/testing';\nimport { sqliteStorage } from 'multisession/sqlite';\nimport { postgresStorage } from 'multisession/postgres';\nimport { createWebhooks, verify } from 'multisession/webhooks';\nimport { telegramBot, type TelegramBotAction } from 'multisession/adapters/telegram-bot';\nimport { openaiChat, type OpenAIChatAction } from 'multisession/adapters/openai-chat';\nimport { discordBot, type DiscordBotAction } from 'multisession/adapters/discord-bot';\n${use}\n`);
    writeFileSync(join(consumer, 'cjs.cts'), `import { SessionManager } from 'multisession';\nimport { simulatedAdapter } from 'multisession/testing';\nimport { sqliteStorage } from 'multisession/sqlite';\nimport { postgresStorage } from 'multisession/postgres';\nimport { createWebhooks, verify } from 'multisession/webhooks';\nimport { telegramBot, type TelegramBotAction } from 'multisession/adapters/telegram-bot';\nimport { openaiChat, type OpenAIChatAction } from 'multisession/adapters/openai-chat';\nimport { discordBot, type DiscordBotAction } from 'multisession/adapters/discord-bot';\n${use}\n`);
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'node16', moduleResolution: 'node16', strict: true, noEmit: true, skipLibCheck: true, types: [], lib: ['ES2022'], target: 'ES2022' }, files: ['esm.mts', 'cjs.cts'] }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', consumer], { cwd: consumer }).then(
      (r) => r.stdout,
      (e: { stdout: string }) => e.stdout,
    );
    expect(result).toBe('');
  });

  it('publishes the build, README, CHANGELOG and the docs README links to; no sources or tests', async () => {
    const files = packed;
    for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/sqlite/index.js', 'dist/postgres/index.cjs', 'dist/webhooks/index.js', 'dist/webhooks/index.cjs', 'dist/webhooks/index.d.ts', 'dist/testing/index.d.ts', 'dist/adapters/telegram-bot/index.js', 'dist/adapters/telegram-bot/index.cjs', 'dist/adapters/telegram-bot/index.d.ts', 'dist/adapters/telegram-bot/index.d.cts', 'dist/adapters/openai-chat/index.js', 'dist/adapters/openai-chat/index.cjs', 'dist/adapters/openai-chat/index.d.ts', 'dist/adapters/openai-chat/index.d.cts', 'dist/adapters/discord-bot/index.js', 'dist/adapters/discord-bot/index.cjs', 'dist/adapters/discord-bot/index.d.ts', 'dist/adapters/discord-bot/index.d.cts', 'README.md', 'CHANGELOG.md', 'package.json']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('examples/') || f.endsWith('.build-stamp'))).toEqual([]);
    // Every relative link of the README reaches a file of the package.
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\(((?!https?:|#)[^)#\s]+)/g)].map((m) => m[1]!.replace(/^\.\//, ''));
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((l) => !files.includes(l) && !files.some((f) => f.startsWith(`${l.replace(/\/$/, '')}/`)))).toEqual([]);
  });

  it('every exports entry is listed in the test (a new subpath cannot ship untested)', () => {
    expect(subpaths).toEqual(expect.arrayContaining(['multisession', 'multisession/testing', 'multisession/sqlite', 'multisession/postgres', 'multisession/webhooks', 'multisession/adapters/telegram-bot', 'multisession/adapters/openai-chat', 'multisession/adapters/discord-bot']));
    for (const p of subpaths) expect(p.startsWith('multisession')).toBe(true);
  });
});
