import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TRANSITIONS } from 'multisession';

/**
 * The guides' code works as written: every ```ts block marked runnable (preceded by
 * `<!-- test -->`, or fenced as ```ts test) in the pages below runs in its own child process with
 * `node --import tsx`, from a file inside the repository (so tsconfig `paths` resolve
 * `multisession`, `multisession/testing`, `multisession/sqlite` to the sources) and in a fresh
 * working folder (so relative paths like `./data` start empty). Each must exit with code 0.
 *
 * A block marked `<!-- test: continued -->` goes on with the program of the runnable block
 * before it on the same page; the whole chain runs once, as one program.
 *
 * Also checked: the lifecycle diagram and the table of causes in concepts.md hold exactly the
 * edges of TRANSITIONS; docs/README.md links every page in docs/; relative links and their
 * #anchors in these pages resolve.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCS = join(ROOT, 'docs');
const OUT = join(ROOT, '.artifacts', 'snippets');
const PAGES = ['getting-started.md', 'concepts.md', 'writing-an-adapter.md', 'cluster.md', 'webhooks.md', 'units.md', 'README.md'];
/** Fewest runnable programs (a chain of continued blocks counts once) each page must have: a marker typo must not silently skip them. */
const MIN_SNIPPETS: Record<string, number> = { 'getting-started.md': 4, 'concepts.md': 3, 'writing-an-adapter.md': 1, 'cluster.md': 1, 'webhooks.md': 1, 'units.md': 1, 'README.md': 0 };

interface Snippet {
  page: string;
  line: number;
  code: string;
}

/** Runnable ```ts blocks of a markdown text, with the line each starts on. */
function extractSnippets(page: string, text: string): Snippet[] {
  const lines = text.split('\n');
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w+)(.*)$/.exec(lines[i]!);
    if (!fence) continue;
    let end = i + 1;
    while (end < lines.length && lines[end] !== '```') end++;
    let prev = i - 1;
    while (prev >= 0 && lines[prev]!.trim() === '') prev--;
    const marker = prev >= 0 ? lines[prev]!.trim() : '';
    const continued = marker === '<!-- test: continued -->';
    const marked = continued || /^\s*test\b/.test(fence[2]!) || marker === '<!-- test -->';
    if (marked) {
      if (fence[1] !== 'ts') throw new Error(`${page}:${i + 1}: only ts blocks can be marked runnable`);
      const code = lines.slice(i + 1, end).join('\n') + '\n';
      const last = out.at(-1);
      if (continued) {
        // The block goes on with the program of the runnable block before it: they run as one.
        if (!last) throw new Error(`${page}:${i + 1}: a continued block needs a runnable block before it`);
        last.code += code;
      } else {
        out.push({ page, line: i + 1, code });
      }
    }
    i = end;
  }
  return out;
}

/** The parent's environment without what would change a snippet's behaviour. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.MULTISESSION_SECRET_KEY; // the guides say what happens when it is not set
  delete env.NODE_OPTIONS;
  delete env.VITEST;
  delete env.VITEST_WORKER_ID;
  delete env.VITEST_POOL_ID;
  return env;
}

function run(file: string, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A guard against a snippet that never exits (an open handle), not a speed check.
    const guard = setTimeout(() => child.kill('SIGKILL'), 45_000);
    child.on('close', (code) => {
      clearTimeout(guard);
      done({ code, stdout, stderr });
    });
  });
}

const snippets = PAGES.flatMap((page) => extractSnippets(page, readFileSync(join(DOCS, page), 'utf8')));

describe('runnable code in the guides', () => {
  it.each(PAGES)('%s has its runnable blocks marked', (page) => {
    expect(snippets.filter((s) => s.page === page).length).toBeGreaterThanOrEqual(MIN_SNIPPETS[page]!);
  });

  it('runs every marked block as written (exit code 0)', { timeout: 180_000 }, async () => {
    rmSync(OUT, { recursive: true, force: true });
    const failures: string[] = [];
    const queue = snippets.map((s, n) => ({ s, n }));
    // Two at a time: the machine has two cores and each child compiles with esbuild.
    const worker = async () => {
      for (let job = queue.shift(); job; job = queue.shift()) {
        const { s, n } = job;
        const name = `${s.page.replace(/\.md$/, '')}-${String(n).padStart(2, '0')}-line${s.line}`;
        const cwd = join(OUT, name);
        mkdirSync(cwd, { recursive: true });
        const file = join(OUT, `${name}.ts`);
        writeFileSync(file, s.code);
        const result = await run(file, cwd);
        if (result.code !== 0) {
          failures.push(`docs/${s.page}:${s.line} exited with ${result.code}\n${result.stderr.slice(-3000)}`);
        }
      }
    };
    await Promise.all([worker(), worker()]);
    expect(failures).toEqual([]);
  });
});

describe('concepts.md lifecycle', () => {
  const text = readFileSync(join(DOCS, 'concepts.md'), 'utf8');
  const expected = Object.entries(TRANSITIONS)
    .flatMap(([from, tos]) => tos.map((to) => `${from} -> ${to}`))
    .sort();

  it('the Mermaid diagram has every edge of TRANSITIONS and nothing else', () => {
    const blocks = [...text.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks).toHaveLength(1);
    const lines = blocks[0]!.split('\n').map((l) => l.trim()).filter(Boolean);
    expect(lines[0]).toBe('stateDiagram-v2');
    const edges = lines.slice(1).map((l) => {
      const m = /^(\w+) --> (\w+)$/.exec(l);
      if (!m) throw new Error(`not an edge: ${l}`);
      return `${m[1]} -> ${m[2]}`;
    });
    expect(edges.slice().sort()).toEqual(expected);
    expect(new Set(edges).size).toBe(edges.length);
  });

  it('the table of causes has one row per edge', () => {
    const start = text.indexOf('| from | to | cause |');
    expect(start).toBeGreaterThan(0);
    const rows = text
      .slice(start)
      .split('\n')
      .slice(2)
      .filter((_, i, all) => all.slice(0, i + 1).every((l) => l.startsWith('|')))
      .map((l) => l.split('|').map((c) => c.trim()))
      .map((cells) => `${cells[1]} -> ${cells[2]}`);
    expect(rows.slice().sort()).toEqual(expected);
  });
});

describe('the guides keep up with the code', () => {
  const source = (path: string) => readFileSync(join(ROOT, 'src', path), 'utf8');
  const block = (text: string, start: string) => {
    const from = text.indexOf(start);
    if (from < 0) throw new Error(`${start} not found`);
    return text.slice(from, text.indexOf('\n}', from));
  };
  const concepts = readFileSync(join(DOCS, 'concepts.md'), 'utf8');
  const adapterGuide = readFileSync(join(DOCS, 'writing-an-adapter.md'), 'utf8');

  it('concepts.md explains every error code of src/errors.ts', () => {
    const codes = [...(/export type ErrorCode =([^;]*);/.exec(source('errors.ts'))?.[1] ?? '').matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]!);
    expect(codes.length).toBeGreaterThan(15);
    expect(codes.filter((c) => !concepts.includes(`| \`${c}\` |`))).toEqual([]);
  });

  it('concepts.md lists every event of SessionManagerEvents', () => {
    const events = [...block(source('manager/events.ts'), 'export interface SessionManagerEvents').matchAll(/'([a-z]+\.[a-z]+)':/g)].map((m) => m[1]!);
    expect(events.length).toBeGreaterThanOrEqual(10);
    expect(events.filter((e) => !concepts.includes(`| \`${e}\` |`))).toEqual([]);
  });

  it('writing-an-adapter.md has every member of AdapterContext and PlatformConnection', () => {
    const contract = source('adapters/contract.ts');
    const ctx = [...block(contract, 'export interface AdapterContext').matchAll(/^ {2}(?:readonly )?(\w+)[(:]/gm)].map((m) => m[1]!);
    expect(ctx).toEqual(expect.arrayContaining(['id', 'signal', 'kv', 'authState', 'auth', 'fail']));
    expect(ctx.filter((name) => !adapterGuide.includes(`ctx.${name}`))).toEqual([]);
    const conn = [...block(contract, 'export interface PlatformConnection').matchAll(/^ {2}(\w+)\??\(/gm)].map((m) => m[1]!);
    expect(conn).toEqual(expect.arrayContaining(['start', 'stop', 'health', 'send']));
    expect(conn.filter((name) => !adapterGuide.includes(`| \`${name}(`))).toEqual([]);
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.+)$/.exec(line);
    if (!m) continue;
    anchors.add(
      m[1]!
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return anchors;
}

function listPages(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listPages(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
  );
}

describe('links', () => {
  it('docs/README.md links every page in docs/', () => {
    const index = readFileSync(join(DOCS, 'README.md'), 'utf8');
    const linked = new Set([...index.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)].map((m) => resolve(DOCS, m[1]!)));
    const missing = listPages(DOCS)
      .filter((p) => p !== join(DOCS, 'README.md') && !linked.has(p))
      .map((p) => relative(DOCS, p));
    expect(missing).toEqual([]);
  });

  it.each([...PAGES, 'network.md', 'adapters/telegram-bot.md', 'adapters/openai-chat.md', 'adapters/discord-bot.md', '../examples/custom-adapter/README.md', '../examples/ai-chat-server/README.md'])('relative links in %s resolve, anchors included', (page) => {
    const file = join(DOCS, page);
    const broken: string[] = [];
    for (const m of readFileSync(file, 'utf8').matchAll(/\]\(([^)\s]*)\)/g)) {
      const href = m[1]!;
      if (/^[a-z]+:/.test(href)) continue; // http:, https:, mailto:
      const [path, anchor] = href.split('#') as [string, string | undefined];
      const target = path ? resolve(dirname(file), path) : file;
      if (!existsSync(target)) {
        broken.push(`${href}: no such file`);
        continue;
      }
      if (anchor && target.endsWith('.md') && !anchorsOf(readFileSync(target, 'utf8')).has(anchor)) broken.push(`${href}: no such heading`);
    }
    expect(broken).toEqual([]);
  });
});
