import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `npm run example:ai-chat` end to end: the command of the npm script in a child process (no
 * OPENAI_BASE_URL, so it runs its local fake back-end), driven over HTTP like two browser clients
 * and a curl user. The process is killed at the end; every wait is bounded.
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const script = (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts['example:ai-chat']!;
let child: ChildProcess;
let base = '';
let output = '';

beforeAll(async () => {
  const [cmd, ...args] = script.split(' ');
  expect(cmd).toBe('node');
  const env = { ...process.env };
  delete env.OPENAI_BASE_URL;
  delete env.OPENAI_API_KEY;
  child = spawn(process.execPath, [...args, '--port', '0'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 60 s:\n${output}`)), 60_000);
    const read = (d: Buffer) => {
      output += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.on('exit', (code) => reject(new Error(`the server exited (${code}):\n${output}`)));
  });
}, 90_000);

afterAll(async () => {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
});

/** A client that keeps the `sid` cookie, like a browser. */
function client() {
  let cookie = '';
  return {
    get cookie() {
      return cookie;
    },
    async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
      const init: RequestInit = { method, headers: { ...headers, ...(cookie ? { cookie } : {}) } };
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
      }
      const res = await fetch(base + path, { ...init, signal: AbortSignal.timeout(10_000) });
      const set = res.headers.get('set-cookie');
      const m = set ? /(?:^|,\s*)sid=([^;]*)/.exec(set) : null;
      if (m) cookie = m[1] ? `sid=${m[1]}` : '';
      const type = res.headers.get('content-type') ?? '';
      return { status: res.status, sid: res.headers.get('x-session-id'), body: (type.includes('json') ? await res.json() : await res.text()) as any };
    },
  };
}

describe('npm run example:ai-chat', () => {
  it('says it runs on a local fake back-end when none is configured', () => {
    expect(output).toContain('using a local fake OpenAI-compatible back-end');
  });

  it('a session per client on its first request, with its own history and files; clear vs delete', async () => {
    const ann = client();
    const bob = client();
    const first = await ann.call('POST', '/api/chat', { message: 'hello' });
    expect(first.status).toBe(201); // the session was made by this request
    expect(first.sid).toMatch(/^c_/);
    expect(first.body.reply).toBe('Echo #1: hello');
    expect((await ann.call('POST', '/api/chat', { message: 'again' })).body).toMatchObject({ sessionId: first.sid, reply: 'Echo #2: again' });

    const b = await bob.call('POST', '/api/chat', { message: 'hi' });
    expect(b.sid).not.toBe(first.sid);
    expect(b.body.reply).toBe('Echo #1: hi'); // Bob's history is his own

    // Files: Ann's assistant sees Ann's file; Bob can neither list, read nor be shown it.
    expect((await ann.call('POST', '/api/files?name=notes.txt', 'the secret plan', { 'content-type': 'text/plain' })).status).toBe(201);
    expect((await ann.call('GET', '/api/files')).body.files.map((f: { name: string }) => f.name)).toEqual(['notes.txt']);
    expect((await ann.call('GET', '/api/files/notes.txt')).body).toBe('the secret plan');
    expect((await bob.call('GET', '/api/files')).body.files).toEqual([]);
    expect((await bob.call('GET', '/api/files/notes.txt')).status).toBe(404);
    expect((await ann.call('POST', '/api/chat', { message: 'what do you see?' })).body.reply).toBe('Echo #3: what do you see? [files I can see: notes.txt]');
    expect((await bob.call('POST', '/api/chat', { message: 'and you?' })).body.reply).toBe('Echo #2: and you?');
    // The x-session-id header works as well as the cookie (curl users).
    expect(((await fetch(`${base}/api/files`, { headers: { 'x-session-id': first.sid! } }).then((r) => r.json())) as { files: unknown[] }).files).toHaveLength(1);

    // Statistics per session.
    const stats = (await ann.call('GET', '/api/session')).body;
    expect(stats).toMatchObject({ sessionId: first.sid, state: 'ready', historyMessages: 6, files: 1, idleTimeoutMs: 3_600_000, stats: { messages: 3, replies: 3 } });
    expect(stats.stats.promptTokens).toBeGreaterThan(0);
    expect(stats.stats.completionTokens).toBeGreaterThan(0);

    // Clear: the conversation goes, the session and its files stay.
    expect((await ann.call('POST', '/api/session/clear')).body).toEqual({ sessionId: first.sid, cleared: 6 });
    expect((await ann.call('POST', '/api/chat', { message: 'fresh start' })).body).toMatchObject({ sessionId: first.sid, reply: 'Echo #1: fresh start [files I can see: notes.txt]' });

    // Delete: everything goes; the old id finds nothing and the next request makes a new session.
    expect((await ann.call('DELETE', '/api/session')).status).toBe(204);
    expect((await fetch(`${base}/api/session`, { headers: { 'x-session-id': first.sid! } })).status).toBe(404);
    const again = await fetch(`${base}/api/chat`, { method: 'POST', headers: { 'x-session-id': first.sid!, 'content-type': 'application/json' }, body: JSON.stringify({ message: 'back' }) });
    expect(again.status).toBe(201);
    expect(again.headers.get('x-session-id')).not.toBe(first.sid);
    expect(((await again.json()) as { reply: string }).reply).toBe('Echo #1: back'); // no history, no files
    expect((await bob.call('GET', '/api/session')).body.stats.messages).toBe(2); // Bob is untouched
  });

  it('streams a reply as Server-Sent Events', async () => {
    const res = await fetch(`${base}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: 'stream it please', stream: true }), signal: AbortSignal.timeout(10_000) });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text();
    const deltas = [...text.matchAll(/event: delta\ndata: (.*)\n/g)].map((m) => (JSON.parse(m[1]!) as { text: string }).text);
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.join('')).toBe('Echo #1: stream it please');
    expect(text).toMatch(/event: done\ndata: .*"reply":"Echo #1: stream it please"/);
  });

  it('refuses bad input with 400 and what to change', async () => {
    const dan = client();
    const bad = await dan.call('POST', '/api/chat', { text: 'wrong field' });
    expect(bad.status).toBe(400);
    expect(bad.sid).toBeNull(); // refused before a session was made
    const badName = await dan.call('POST', '/api/files?name=../../etc/passwd', 'x', { 'content-type': 'text/plain' });
    expect(badName.status).toBe(400);
    expect(badName.body.error.code).toBe('BAD_FILE_NAME');
  });
});
