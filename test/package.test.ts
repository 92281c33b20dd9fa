/**
 * The package as users install it: every `exports` entry resolves for ESM and CommonJS, with
 * types, from outside the repository, and the published files hold no sources or tests.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const consumer = join(root, '.artifacts', 'consumer');
const subpaths = ['multisession', 'multisession/testing', 'multisession/sqlite', 'multisession/postgres'];

beforeAll(async () => {
  // CI builds before testing; a bare `npm test` on a fresh clone builds here.
  if (!existsSync(join(root, 'dist', 'index.js'))) await run('npm', ['run', 'build'], { cwd: root, timeout: 240_000 });
  rmSync(consumer, { recursive: true, force: true });
  mkdirSync(join(consumer, 'node_modules'), { recursive: true });
  symlinkSync(root, join(consumer, 'node_modules', 'multisession'), 'dir');
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
}, 300_000);

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
      void m; void p;`;
    writeFileSync(join(consumer, 'esm.mts'), `import { SessionManager } from 'multisession';\nimport { simulatedAdapter } from 'multisession/testing';\nimport { sqliteStorage } from 'multisession/sqlite';\nimport { postgresStorage } from 'multisession/postgres';\n${use}\n`);
    writeFileSync(join(consumer, 'cjs.cts'), `import { SessionManager } from 'multisession';\nimport { simulatedAdapter } from 'multisession/testing';\nimport { sqliteStorage } from 'multisession/sqlite';\nimport { postgresStorage } from 'multisession/postgres';\n${use}\n`);
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

  it('publishes only the build, README and CHANGELOG', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root });
    const files: string[] = JSON.parse(stdout)[0].files.map((f: { path: string }) => f.path);
    for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/sqlite/index.js', 'dist/postgres/index.cjs', 'dist/testing/index.d.ts', 'README.md', 'CHANGELOG.md', 'package.json']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('examples/'))).toEqual([]);
  });
});
