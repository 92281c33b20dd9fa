import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers.js';

/**
 * docs/server-api.md promises curl examples that work as written: every ```bash block runs here,
 * in order, against a real server (BASE and KEY set as the page tells the reader to set them).
 * Each curl call reports its HTTP status on stderr; blocks that show an error must get a 4xx,
 * all others 2xx.
 */
const DOC = fileURLToPath(new URL('../../../docs/server-api.md', import.meta.url));
const blocks = [...readFileSync(DOC, 'utf8').matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!);
const hasCurl = spawnSync('curl', ['--version']).status === 0;
if (!hasCurl && process.env.CI) throw new Error('curl is needed to check docs/server-api.md');

/** Blocks that demonstrate an error answer. */
const expectsError = (block: string) => block.includes('bad id!') || /^curl -s \$BASE\/api\/v1\/sessions\n$/.test(block);

/** Runs a script without blocking this process (the server under test lives in it). */
function run(script: string, env: Record<string, string>, cwd: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t?.close();
});

it.skipIf(!hasCurl)('every bash example in docs/server-api.md works as written', async () => {
  expect(blocks.length).toBeGreaterThan(15);
  const failures: string[] = [];
  for (const block of blocks) {
    const script = `curl() { command curl -w '%{stderr}HTTP %{http_code}\\n' "$@"; }\nset -e\n${block}`;
    const r = await run(script, { BASE: t.url, KEY: t.adminKey }, t.dir);
    const statuses = [...r.stderr.matchAll(/^HTTP (\d{3})$/gm)].map((m) => Number(m[1]));
    const wantError = expectsError(block);
    const ok =
      r.status === 0 &&
      statuses.length > 0 &&
      statuses.every((s) => (wantError ? s >= 400 && s < 500 : s >= 200 && s < 300)) &&
      !r.stdout.includes('"status":5');
    if (!ok) failures.push(`--- block:\n${block}--- exit ${r.status}, statuses ${statuses.join(',')}\n${r.stdout}\n${r.stderr}`);
  }
  expect(failures).toEqual([]);
});
