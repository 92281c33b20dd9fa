import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpProxy, startSocksProxy, startTarget, startTlsTarget, type HttpProxy, type SocksProxy, type Target } from './servers.js';

/**
 * Checks that need a fresh process: which packages an import loads (undici and socks only once a
 * session really fetches), and HTTPS targets and an HTTPS proxy, trusted through
 * NODE_EXTRA_CA_CERTS (read only at process start) with a certificate made here by openssl.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const recorder = fileURLToPath(new URL('../fixtures/storage/record-loads.mjs', import.meta.url));
const child = fileURLToPath(new URL('./fixtures/fetch-child.ts', import.meta.url));

interface ChildResult {
  before: string[];
  after: string[];
  results: Record<string, { status?: number; body?: { path: string; session: string; tls?: boolean }; error?: string }>;
}

function run(input: { url: string; sessions: { id: string; proxy?: unknown }[] }, env: Record<string, string> = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', '--import', recorder, child, JSON.stringify(input)], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => {
      if (code !== 0) reject(new Error(`child exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()!) as ChildResult);
    });
  });
}

let dir: string;
let tls: { key: string; cert: string };
let target: Target;
let tlsTarget: Target;
let socks: SocksProxy;
let httpProxy: HttpProxy;
let httpsProxy: HttpProxy;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'multisession-net-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  [target, tlsTarget, socks, httpProxy, httpsProxy] = await Promise.all([
    startTarget(),
    startTlsTarget(tls),
    startSocksProxy({ auth: { user: 'carol', pass: 'tls-S0cks-Pass' } }),
    startHttpProxy(),
    startHttpProxy({ auth: { user: 'dave', pass: 'tls-Http-Pass' }, tls }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([target, tlsTarget, socks, httpProxy, httpsProxy].map((s) => s?.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('in a fresh process', () => {
  it('importing multisession loads neither undici nor socks; a direct fetch loads undici only', async () => {
    const bare = await run({ url: target.url, sessions: [] });
    expect(bare.before).toEqual([]);
    expect(bare.after).toEqual([]);
    const fetched = await run({ url: `${target.url}/lazy`, sessions: [{ id: 'direct' }] });
    expect(fetched.before).toEqual([]);
    expect(fetched.results.direct).toMatchObject({ status: 200, body: { path: '/lazy', session: 'direct' } });
    expect(fetched.after).toEqual(['undici']);
  });

  it('HTTPS targets through SOCKS5h, SOCKS4 and an HTTP CONNECT proxy, and through an HTTPS proxy with auth', async () => {
    const socksBefore = socks.events.length;
    const httpBefore = httpProxy.events.length;
    const httpsBefore = httpsProxy.events.length;
    const result = await run(
      {
        url: `${tlsTarget.url}/secure`,
        sessions: [
          { id: 'direct' },
          { id: 's5h', proxy: `socks5h://carol:tls-S0cks-Pass@127.0.0.1:${socks.port}` },
          { id: 's4', proxy: { protocol: 'socks4', host: '127.0.0.1', port: socks.port, username: 'carol' } },
          { id: 'connect', proxy: `http://127.0.0.1:${httpProxy.port}` },
          { id: 'tls-proxy', proxy: `https://dave:tls-Http-Pass@127.0.0.1:${httpsProxy.port}` },
        ],
      },
      { NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') },
    );
    for (const id of ['direct', 's5h', 's4', 'connect', 'tls-proxy']) {
      expect(result.results[id], id).toMatchObject({ status: 200, body: { path: '/secure', session: id, tls: true } });
    }
    expect(result.after).toEqual(['undici', 'socks', 'ip-address', 'smart-buffer']);
    expect(socks.events.slice(socksBefore)).toMatchObject([
      { version: 5, host: 'localhost', addressType: 'domain', port: tlsTarget.port, user: 'carol' },
      { version: 4, host: '127.0.0.1', addressType: 'ipv4', port: tlsTarget.port, user: 'carol' },
    ]);
    expect(httpProxy.events.slice(httpBefore)).toEqual([{ kind: 'connect', target: `localhost:${tlsTarget.port}`, allowed: true }]);
    expect(httpsProxy.events.slice(httpsBefore)).toEqual([{ kind: 'connect', target: `localhost:${tlsTarget.port}`, allowed: true }]);
    expect(tlsTarget.hits.filter((h) => h.path === '/secure').map((h) => h.session).sort()).toEqual(['connect', 'direct', 's4', 's5h', 'tls-proxy']);
  });

  it('without the certificate trusted, TLS through the proxy fails (the check is real)', async () => {
    const result = await run({ url: `${tlsTarget.url}/untrusted`, sessions: [{ id: 's5h', proxy: `socks5h://carol:tls-S0cks-Pass@127.0.0.1:${socks.port}` }] });
    expect(result.results.s5h?.error).toMatch(/certificate/i);
    expect(result.results.s5h?.error).not.toContain('tls-S0cks-Pass');
  });
});
