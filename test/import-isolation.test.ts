import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The core must not load a database client: an app that only uses the memory store never pays
 * for (or needs to install) better-sqlite3, pg or kysely. Checked in a fresh child process that
 * records every module it loads (ESM loader hook + CommonJS Module._load).
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/storage/${name}`, import.meta.url));

function loadsOf(what: string, action?: string): Promise<{ exports: number; packages: string[]; adapters: string[]; total: number }> {
  return new Promise((resolve, reject) => {
    const args = ['--import', 'tsx', '--import', fixture('record-loads.mjs'), fixture('import-child.ts'), what];
    if (action) args.push(action);
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`child exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()!));
    });
  });
}

describe('import isolation', () => {
  it('importing multisession loads neither better-sqlite3, pg nor kysely, nor undici (until a request), nor any built-in adapter', async () => {
    const result = await loadsOf('multisession');
    expect(result.exports).toBeGreaterThan(10);
    expect(result.total).toBeGreaterThan(10); // the recorder saw the core's own modules
    expect(result.packages).toEqual([]);
    expect(result.adapters).toEqual([]);
  });

  it('multisession/adapters/telegram-bot loads its own modules only, and undici not before its first request', async () => {
    const result = await loadsOf('multisession/adapters/telegram-bot');
    expect(result.exports).toBeGreaterThan(5);
    expect(result.adapters).toEqual(['telegram-bot']); // the recorder works
    expect(result.packages).toEqual([]);
  });

  it('multisession/adapters/openai-chat loads its own modules only, and undici not before its first request', async () => {
    const result = await loadsOf('multisession/adapters/openai-chat');
    expect(result.exports).toBeGreaterThan(5);
    expect(result.adapters).toEqual(['openai-chat']);
    expect(result.packages).toEqual([]);
  });

  it('multisession/webhooks loads no database client, and undici not before its first delivery', async () => {
    const result = await loadsOf('multisession/webhooks');
    expect(result.exports).toBeGreaterThan(5);
    expect(result.packages).toEqual([]);
    expect(result.adapters).toEqual([]);
  });

  it('multisession/adapters/discord-bot loads its own modules only, and undici not before its first connection', async () => {
    const result = await loadsOf('multisession/adapters/discord-bot');
    expect(result.exports).toBeGreaterThan(5);
    expect(result.adapters).toEqual(['discord-bot']);
    expect(result.packages).toEqual([]);
  });

  it('importing multisession/testing loads no database client either', async () => {
    expect((await loadsOf('multisession/testing')).packages).toEqual([]);
  });

  it('multisession/postgres loads kysely but not pg until a store opens, and never better-sqlite3', async () => {
    expect((await loadsOf('multisession/postgres')).packages).toEqual(['kysely']);
  });

  it('multisession/sqlite loads better-sqlite3 only when a store opens, and never pg (the recorder works)', async () => {
    expect((await loadsOf('multisession/sqlite')).packages).toEqual(['kysely']);
    expect((await loadsOf('multisession/sqlite', 'init-sqlite')).packages).toEqual(['better-sqlite3', 'kysely', 'bindings']);
  });
});
