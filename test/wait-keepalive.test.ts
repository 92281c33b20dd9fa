import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

it('a script awaiting waitFor() with a timeout gets its TimeoutError (the unref\'d timers do not end it early)', async () => {
  const dir = join(root, '.artifacts', 'wait-keepalive');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'script.ts');
  writeFileSync(
    file,
    `import { SessionManager, TimeoutError } from 'multisession';
import { simulatedAdapter } from 'multisession/testing';
const m = new SessionManager({ adapters: [simulatedAdapter({ auth: 'code' })] });
await m.open();
await m.create({ id: 'a', platform: 'simulated', credentials: { token: 'token-a' } });
await m.start('a'); // waits for a code nobody sends
try {
  await m.waitFor('a', 'ready', { timeoutMs: 300 });
} catch (error) {
  console.log(error instanceof TimeoutError ? 'timed out' : 'other error');
}
await m.close();
`,
  );
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], { cwd: root, timeout: 60_000 });
  expect(stdout.trim()).toBe('timed out');
});
