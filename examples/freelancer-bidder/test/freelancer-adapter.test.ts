import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RateLimitError, SessionManager, ValidationError } from 'multisession';
import { createManualClock, type ManualClock } from 'multisession/testing';
import { startFakeFreelancer, type FakeAccount } from '../src/fake-freelancer.js';
import { freelancer, type FreelancerMessage } from '../src/freelancer-adapter.js';

/**
 * The example's `freelancer` adapter under a SessionManager on a manual clock, against the local
 * fake Freelancer API: bad input refused before any request, the OAuth header, searches per
 * service, projects marked seen only once handled, bids, the daily bid limit, Freelancer's 429
 * and a revoked token.
 */
const api = await startFakeFreelancer({ requestsPerSecond: 1_000 });
afterAll(() => api.stop());

let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`never happened within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The error `p` rejects with (fails the test when it resolves). */
function rejection<E>(p: Promise<unknown>): Promise<E> {
  return p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e as E,
  );
}

interface Setup {
  m: SessionManager;
  clock: ManualClock;
  account: FakeAccount;
  seen: FreelancerMessage[];
}

const POLL_MS = 60_000;

async function setup(config: Record<string, unknown> = {}, onProject?: (p: FreelancerMessage) => Promise<void> | void): Promise<Setup> {
  const clock = createManualClock();
  const m = new SessionManager({ adapters: [freelancer], clock, health: { intervalMs: 3_600_000, timeoutMs: 5_000, unhealthyThreshold: 3, jitter: 0 } });
  open.push(m);
  await m.open();
  const account = api.account();
  const seen: FreelancerMessage[] = [];
  m.on('session.message', async (e) => {
    if (e.direction !== 'in') return;
    seen.push(e.message as FreelancerMessage);
    await onProject?.(e.message as FreelancerMessage);
  });
  await m.create({
    id: 'acct',
    platform: 'freelancer',
    credentials: { oauthToken: account.token },
    config: { apiRoot: api.url, services: ['kotlin', 'swift'], signature: 'Ann Lee', rateLimit: null, pollIntervalMs: POLL_MS, ...config },
  });
  return { m, clock, account, seen };
}

const searchesBy = (account: FakeAccount) => api.requests.filter((r) => r.token === account.token && r.path === '/api/projects/0.1/projects/active');

describe('bad input is refused before any request, naming the field', () => {
  it('a malformed token, unknown or missing config keys, a non-http(s) apiRoot, a bad bid', async () => {
    const clock = createManualClock();
    const m = new SessionManager({ adapters: [freelancer], clock });
    open.push(m);
    await m.open();
    const before = api.requests.length;
    const create = (credentials: unknown, config: unknown) =>
      m.create({ id: `x-${Math.random().toString(36).slice(2, 8)}`, platform: 'freelancer', credentials: credentials as never, config: config as never }).then(
        () => null,
        (e: unknown) => e as ValidationError,
      );
    const good = { services: ['kotlin'], signature: 'Ann' };
    const token = { oauthToken: 'abcdefghijklmnop1234' };
    expect((await create({ oauthToken: 'has spaces in it, no' }, good))!.issues.map((i) => i.path)).toEqual([['credentials', 'oauthToken']]);
    expect((await create(token, { ...good, bidLimt: 3 }))!.issues).toEqual([{ path: ['config'], message: expect.stringContaining('bidLimt') }]);
    expect((await create(token, { ...good, apiRoot: 'ftp://freelancer.com' }))!.issues.map((i) => i.path)).toEqual([['config', 'apiRoot']]);
    expect((await create(token, { signature: 'Ann' }))!.issues.map((i) => i.path)).toEqual([['config', 'services']]);
    expect((await create(token, { ...good, portfolioLinks: ['javascript:alert(1)'] }))!.issues.map((i) => i.path)).toEqual([['config', 'portfolioLinks', 0]]);
    expect(api.requests.length).toBe(before);

    const s = await setup();
    await s.m.start('acct');
    const count = api.requests.length;
    const bad = await rejection<ValidationError>(s.m.send('acct', { method: 'placeBid', projectId: 1, amount: 10 } as never));
    expect(bad).toBeInstanceOf(ValidationError);
    expect(bad.issues.map((i) => i.path)).toEqual([['action', 'description']]);
    const unknown = await rejection<ValidationError>(s.m.send('acct', { method: 'retractBid', projectId: 1 } as never));
    expect(unknown.issues[0]!.path).toEqual(['action', 'method']);
    expect(api.requests.length).toBe(count);
  });
});

describe('searching and bidding', () => {
  it('logs in with the freelancer-oauth-v1 header and searches each service on the clock', async () => {
    const s = await setup();
    expect((await s.m.start('acct')).state).toBe('ready');
    const self = api.requests.find((r) => r.token === s.account.token)!;
    expect(self.path).toBe('/api/users/0.1/self');
    await until(() => searchesBy(s.account).length === 2, 'the first searches');
    expect(searchesBy(s.account).map((r) => r.query.query)).toEqual(['kotlin', 'swift']);
    expect(searchesBy(s.account)[0]!.query).toMatchObject({ full_description: 'true', job_details: 'true', limit: '20' });
    await s.clock.advance(POLL_MS - 1);
    expect(searchesBy(s.account)).toHaveLength(2);
    await s.clock.advance(1);
    await until(() => searchesBy(s.account).length === 4, 'the next searches, one interval later');
  });

  it('emits each new project once, marked seen only after the app handled it, even across a restart', async () => {
    const p = api.addProject({ title: 'Kotlin app for a gym', description: 'An Android app in Kotlin.', skills: ['Kotlin'], budget: [200, 400], bidAvg: 320 });
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    const s = await setup({}, () => held);
    await s.m.start('acct');
    await until(() => s.seen.length === 1, 'the project');
    expect(s.seen[0]).toMatchObject({ id: String(p.id), kind: 'project', text: expect.stringContaining('Kotlin app for a gym'), project: { id: p.id, budget: { minimum: 200, maximum: 400 }, bidAverage: 320, skills: ['Kotlin'], matched: 'kotlin' } });
    expect(await s.m.kv('acct').get(`seen:${p.id}`)).toBeUndefined(); // not before the app is done
    release();
    await until(async () => (await s.m.kv('acct').get(`seen:${p.id}`)) === true, 'marked seen');
    expect((await s.m.stats('acct')).custom.projectsSeen).toBe(1);
    await until(() => searchesBy(s.account).length === 2, 'the first round of searches');
    await s.m.restart('acct');
    await until(() => searchesBy(s.account).length === 4, 'the searches after the restart');
    expect(s.seen.filter((m) => m.id === String(p.id))).toHaveLength(1);
    api.close(p.id);
  });

  it('places a bid as the account, with the config defaults, and counts it', async () => {
    const p = api.addProject({ title: 'Swift widget', description: 'An iOS widget in Swift.', skills: ['Swift'], budget: [100, 300] });
    const s = await setup({ deliveryDays: 5, milestonePercentage: 30 });
    await s.m.start('acct');
    const result = await s.m.send('acct', { method: 'placeBid', projectId: p.id, amount: 150, description: 'I build widgets.' });
    expect(result).toMatchObject({ projectId: p.id, amount: 150, period: 5, bidId: expect.any(Number) });
    expect(api.bids.at(-1)).toMatchObject({ project_id: p.id, bidder_id: s.account.id, amount: 150, period: 5, milestone_percentage: 30, description: 'I build widgets.' });
    expect((await s.m.stats('acct')).custom.bids).toBe(1);
    // Freelancer refuses a second bid on the project: the caller hears why; counted as refused.
    const again = await rejection<Error>(s.m.send('acct', { method: 'placeBid', projectId: p.id, amount: 150, description: 'Again.' }));
    expect(again.message).toContain('ProjectExceptionCodes.DUPLICATE_BID');
    expect((await s.m.stats('acct')).custom).toMatchObject({ bids: 1, bidsRefused: 1 });
    api.close(p.id);
  });

  it('stops at bidLimit a day: bids refused with RateLimitError, no searches until the next UTC day', async () => {
    const projects = [1, 2, 3].map((i) => api.addProject({ title: `Kotlin job ${i}`, description: 'Kotlin work.', skills: ['Kotlin'], budget: [50, 100] }));
    const s = await setup({ bidLimit: 2, services: ['kotlin'] });
    await s.m.start('acct');
    await until(() => searchesBy(s.account).length === 1, 'the first search');
    for (const p of projects.slice(0, 2)) await s.m.send('acct', { method: 'placeBid', projectId: p.id, amount: 60, description: 'Kotlin.' });
    const refused = await rejection<RateLimitError>(s.m.send('acct', { method: 'placeBid', projectId: projects[2]!.id, amount: 60, description: 'Kotlin.' }));
    expect(refused).toBeInstanceOf(RateLimitError);
    const msToMidnight = 86_400_000 - (s.clock.now() % 86_400_000);
    expect((refused as RateLimitError).retryAfterMs).toBe(Math.ceil(msToMidnight));
    expect((refused as Error).message).toContain('bidLimit reached: 2 of 2 bids today');
    await s.clock.advance(POLL_MS);
    await new Promise((r) => setTimeout(r, 50));
    expect(searchesBy(s.account)).toHaveLength(1);
    await s.clock.advance(Math.ceil(msToMidnight)); // the next day: the round due then searches again
    await until(async () => {
      if (searchesBy(s.account).length >= 2) return true;
      await s.clock.advance(POLL_MS);
      return false;
    }, 'searching again the next day');
    for (const p of projects) api.close(p.id);
  });

  it("Freelancer's 429 pauses the token's traffic for its Retry-After and reaches the bid's caller", async () => {
    const p = api.addProject({ title: 'Swift fix', description: 'Swift crash fix.', skills: ['Swift'], budget: [30, 60] });
    const s = await setup({ services: ['swift'] });
    await s.m.start('acct');
    await until(() => searchesBy(s.account).length === 1, 'the first search');
    api.failNext(/^POST \/api\/projects\/0\.1\/bids$/, { status: 429, message: 'You have made too many requests.', errorCode: 'ExceptionCodes.RATE_LIMIT_EXCEEDED', retryAfterSec: 7 });
    const slowed = await rejection<RateLimitError>(s.m.send('acct', { method: 'placeBid', projectId: p.id, amount: 40, description: 'Fix.' }));
    expect(slowed).toBeInstanceOf(RateLimitError);
    expect(slowed.retryAfterMs).toBe(7_000);
    // The search due meanwhile waits out the pause.
    await s.clock.advance(POLL_MS - 7_000 + 1);
    const waiting = searchesBy(s.account).length;
    expect(waiting).toBe(1);
    await s.clock.advance(7_000);
    await until(() => searchesBy(s.account).length === 2, 'the search after the pause');
    api.close(p.id);
  });

  it('a revoked token ends the session expired, without a restart loop', async () => {
    const s = await setup();
    await s.m.start('acct');
    await until(() => searchesBy(s.account).length === 2, 'the first searches');
    s.account.revoked = true;
    await s.clock.advance(POLL_MS);
    await until(async () => (await s.m.get('acct')).state === 'expired', 'expired');
    await s.clock.advance(10 * POLL_MS);
    expect((await s.m.stats('acct')).starts).toBe(1);
    expect((await s.m.get('acct')).state).toBe('expired');
  });
});
