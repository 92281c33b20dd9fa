import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, '.artifacts', 'checkpoint-docs');
const run = promisify(execFile);

/** The ```ts blocks of docs/checkpoint.md marked `<!-- test -->`. */
function runnableBlocks(): { line: number; code: string }[] {
  const lines = readFileSync(join(ROOT, 'docs', 'checkpoint.md'), 'utf8').split('\n');
  const out: { line: number; code: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '<!-- test -->') continue;
    const start = i + 2;
    let end = start;
    while (lines[end] !== '```') end++;
    out.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
  }
  return out;
}

describe('docs/checkpoint.md', () => {
  const blocks = runnableBlocks();

  it('has both uses and the manual-clock example marked runnable', () => {
    expect(blocks.length).toBe(3);
  });

  it.each(blocks.map((b) => [b.line, b.code] as const))('the example at line %i runs as written and prints what it says', async (line, code) => {
    mkdirSync(OUT, { recursive: true });
    const file = join(OUT, `block-${line}.ts`);
    writeFileSync(file, code);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, timeout: 60_000 });
    // Every `// → <output>` comment must appear in what the program printed (whitespace aside).
    const expected = [...code.matchAll(/\/\/ → (.+)$/gm)].map((m) => m[1]!.replace(/\s+/g, ''));
    expect(expected.length).toBeGreaterThan(0);
    const printed = stdout.replace(/\s+/g, '');
    for (const e of expected) expect(printed).toContain(e);
  });
});
