import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

it('--help prints every flag with its environment variable', { timeout: 60_000 }, async () => {
  const r = await run(['--help']);
  expect(r.code).toBe(0);
  for (const flag of ['--port', '--host', '--data-dir', '--db', '--max-sessions', '--api-key', '--cors-origin', '--rate-limit', '--audit-retention-days', '--node-id', '--lease-ttl-ms', '--max-running']) expect(r.out).toContain(flag);
  for (const env of ['PORT', 'HOST', 'MULTISESSION_DB', 'MULTISESSION_API_KEY', 'MULTISESSION_AUDIT_RETENTION_DAYS', 'MULTISESSION_NODE_ID']) expect(r.out).toContain(env);
});

it('bad flags and environment values exit 2 and say what to change', { timeout: 120_000 }, async () => {
  // Four child processes at once (each loads TypeScript through tsx).
  const [port, unknown, key, ttl] = await Promise.all([
    run(['--port', 'eighty']),
    run(['--colour', 'red']),
    // (Flags that would be harmless if the check ever let it start.)
    run(['--port', '0', '--data-dir', join(tmpdir(), `ms-cli-${process.pid}`)], { MULTISESSION_API_KEY: 'short' }),
    // A cluster setting out of range: the manager's ValidationError names the field.
    run(['--port', '0', '--data-dir', join(tmpdir(), `ms-cli-ttl-${process.pid}`), '--lease-ttl-ms', '10'], { MULTISESSION_SECRET_KEY: '', MULTISESSION_API_KEY: '' }),
  ]);
  expect(port.code).toBe(2);
  expect(port.err).toContain('--port must be an integer');
  expect(unknown.code).toBe(2);
  expect(unknown.err).toMatch(/colour/);
  expect(key.code).toBe(2);
  expect(key.err).toContain('at least 16 characters');
  rmSync(join(tmpdir(), `ms-cli-ttl-${process.pid}`), { recursive: true, force: true });
  expect(ttl.code).toBe(1);
  expect(ttl.err).toMatch(/failed to start: .*cluster\.leaseTtlMs/);
});
