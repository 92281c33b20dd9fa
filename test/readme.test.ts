import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

it("the README's quick start runs as written and shows the whole flow", async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const quickStart = /## Quick start\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(quickStart).toBeTruthy();
  const dir = join(root, '.artifacts', 'readme');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'quick-start.ts');
  writeFileSync(file, quickStart!);
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], { cwd: root, timeout: 60_000 });
  expect(stdout).toContain('bot-1: starting → authenticating (waiting for code)');
  expect(stdout).toContain('bot-1: authenticating → ready (connected)');
  expect(stdout).toMatch(/custom: \{ sent: 1 \}/);
  expect(stdout).toContain('bot-1: stopping → stopped (manager closing)');
  expect(stdout).not.toContain('secret-token');
});
