import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ACCOUNTS, runDemo } from '../src/demo.js';

/**
 * The seed-000 bidder end to end: three Freelancer accounts and a revoked one against the local
 * fake Freelancer API, bids written by the openai-chat adapter against the local fake back-end,
 * in this process (data checked) and as the one command a user runs (`npm run example:freelancer`).
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('the freelancer bidder', () => {
  it('bids for each account up to its limit, in its own style, with its links and signature', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const result = await runDemo({ log: (l) => lines.push(l) });
    expect(result.accounts.map((a) => a.id)).toEqual(['web-dev', 'design', 'writing']);
    for (const a of result.accounts) {
      const setup = ACCOUNTS.find((x) => x.id === a.id)!.config;
      expect(a.state).toBe('ready');
      // Exactly the limit: more projects matched than that.
      expect(a.bids).toHaveLength(setup.bidLimit);
      expect(a.stats.custom.bids).toBe(setup.bidLimit);
      expect(a.tally.placed).toBe(setup.bidLimit);
      expect(new Set(a.bids.map((b) => b.project_id)).size).toBe(a.bids.length);
      expect(a.stats.custom.projectsSeen).toBe(a.stats.messagesIn);
      for (const bid of a.bids) {
        expect(bid.bidder_id).toBe(a.account.id);
        expect(bid.period).toBe(7);
        expect(bid.milestone_percentage).toBe(50);
        for (const link of setup.portfolioLinks) expect(bid.description).toContain(link);
        expect(bid.description.endsWith(setup.signature)).toBe(true);
        // Written for this account: its style reached the writer as the system prompt.
        expect(bid.description).toContain(`(Tone: ${setup.bidStyle.replace(/\.$/, '').toLowerCase()}.)`);
        for (const other of ACCOUNTS.filter((x) => x.id !== a.id)) expect(bid.description).not.toContain(other.config.signature);
      }
    }
    // The design account skips projects under its minimum budget.
    const design = result.accounts.find((a) => a.id === 'design')!;
    expect(lines.some((l) => l.includes('Tiny logo tweak'))).toBe(false);
    expect(design.bids.every((b) => b.amount >= 100)).toBe(true);
    // Per-token limits: the accounts on the adapter's default limit never got a 429; the one
    // configured above Freelancer's limit did, and its session waited them out and still bid.
    const writing = result.accounts.find((a) => a.id === 'writing')!;
    expect(writing.rateLimited).toBeGreaterThan(0);
    expect(result.rateLimited).toBe(writing.rateLimited);
    expect(result.completions).toBe(result.accounts.reduce((n, a) => n + a.tally.written, 0));
    expect(result.revoked.state).toBe('expired');
  });

  it('runs as one command: npm run example:freelancer', { timeout: 90_000 }, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/freelancer-bidder/run.ts'], { cwd: ROOT, timeout: 80_000 });
    // session, state, projects seen, bids placed, refused, bid limit, 429s waited
    expect(stdout, stdout).toMatch(/^web-dev\s+ready\s+\d+\s+3\s+0\s+3\s+0$/m);
    expect(stdout, stdout).toMatch(/^design\s+ready\s+\d+\s+2\s+0\s+2\s+0$/m);
    expect(stdout, stdout).toMatch(/^writing\s+ready\s+\d+\s+2\s+0\s+2\s+[1-9]\d*$/m);
    expect(stdout).toMatch(/^old-account\s+expired/m);
    expect(stdout).toMatch(/^Done in /m);
  });
});
