/**
 * A local stand-in for the Freelancer.com REST API (v0.1) on 127.0.0.1, speaking its documented
 * shapes, so the example runs with no account anywhere:
 * - every request carries the OAuth token in the `freelancer-oauth-v1` header; an unknown or
 *   revoked one gets 401 `AuthExceptionCodes.NOT_AUTHENTICATED`;
 * - answers are `{ status: 'success', result, request_id }`, errors
 *   `{ status: 'error', message, error_code, request_id }` with the HTTP status;
 * - `GET /api/users/0.1/self/`: the token's user;
 * - `GET /api/projects/0.1/projects/active/?query=&limit=&offset=&full_description=&job_details=`:
 *   active projects matching any word of `query` (title, description, skills), newest first,
 *   as `{ projects, total_count }`;
 * - `POST /api/projects/0.1/bids/` with `{ project_id, bidder_id, amount, period,
 *   milestone_percentage, description }`: the placed bid; refused for another user's
 *   `bidder_id` (403), an unknown or closed project (404), a second bid on one project (409), an
 *   amount outside the budget or an empty description (400);
 * - a per-token rate limit (`requestsPerSecond`): past it, 429 with `Retry-After`.
 * Tests and the demo add projects, revoke tokens, script failures and read every request.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface FakeProject {
  id: number;
  owner_id: number;
  title: string;
  description: string;
  seo_url: string;
  currency: { id: number; code: string; sign: string };
  budget: { minimum: number; maximum: number };
  type: 'fixed' | 'hourly';
  status: 'active' | 'closed';
  time_submitted: number;
  bid_stats: { bid_count: number; bid_avg: number | null };
  jobs: { id: number; name: string }[];
}

export interface FakeBid {
  id: number;
  bidder_id: number;
  project_id: number;
  amount: number;
  period: number;
  milestone_percentage: number;
  description: string;
  time_submitted: number;
}

export interface FakeAccount {
  readonly token: string;
  readonly id: number;
  readonly username: string;
  revoked: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  token: string | null;
  body: Json;
  at: number;
}

export interface FakeFreelancerOptions {
  /** Requests one token may make per second before it gets 429 (default 50). */
  requestsPerSecond?: number;
  /** Seconds in the 429's `Retry-After` (default 1). */
  retryAfterSec?: number;
}

export interface FakeFreelancer {
  /** The API root, e.g. `http://127.0.0.1:4123` (the adapter's `apiRoot`). */
  readonly url: string;
  readonly requests: RecordedRequest[];
  readonly bids: FakeBid[];
  /** Registers an account and returns it (a new token of Freelancer's shape). */
  account(username?: string): FakeAccount;
  /** Posts a project (active, now); returns it. */
  addProject(p: { title: string; description: string; skills?: readonly string[]; budget?: readonly [number, number]; bids?: number; bidAvg?: number | null }): FakeProject;
  /** Closes a project to bids. */
  close(projectId: number): void;
  /** 429s every token got, counted. */
  readonly rateLimited: number;
  /** 429s this token got. */
  rateLimitedFor(token: string): number;
  /** Answers the next `times` requests whose `METHOD path` matches with this error. */
  failNext(route: RegExp, failure: { status: number; message: string; errorCode: string; retryAfterSec?: number }, times?: number): void;
  stop(): Promise<void>;
}

const requestId = () => randomBytes(16).toString('hex');

function reply(res: ServerResponse, status: number, body: Json, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers }).end(text);
}

function success(res: ServerResponse, result: Json): void {
  reply(res, 200, { status: 'success', result, request_id: requestId() });
}

function error(res: ServerResponse, status: number, message: string, errorCode: string, headers: Record<string, string> = {}): void {
  reply(res, status, { status: 'error', message, error_code: errorCode, request_id: requestId() }, headers);
}

async function bodyOf(req: IncomingMessage): Promise<Json> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return null;
  if ((req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(text));
  return JSON.parse(text) as Json;
}

const slug = (title: string) => title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

/** Starts the fake on 127.0.0.1 (a free port). */
export async function startFakeFreelancer(options: FakeFreelancerOptions = {}): Promise<FakeFreelancer> {
  const perSecond = options.requestsPerSecond ?? 50;
  const retryAfterSec = options.retryAfterSec ?? 1;
  const accounts = new Map<string, FakeAccount>();
  const projects: FakeProject[] = [];
  const bids: FakeBid[] = [];
  const requests: RecordedRequest[] = [];
  const windows = new Map<string, { start: number; count: number }>();
  const failures: { route: RegExp; status: number; message: string; errorCode: string; retryAfterSec?: number }[] = [];
  const sockets = new Set<Socket>();
  const limitedByToken = new Map<string, number>();
  let nextUser = 20_000_000;
  let nextProject = 38_000_000;
  let nextBid = 500_000_000;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => error(res, 500, `Internal error: ${String(e)}`, 'ExceptionCodes.UNKNOWN_ERROR'));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname.replace(/\/+$/, '');
    const header = req.headers['freelancer-oauth-v1'];
    const token = typeof header === 'string' ? header : null;
    let body: Json = null;
    try {
      body = await bodyOf(req);
    } catch {
      return error(res, 400, 'The request body is not valid JSON.', 'ExceptionCodes.INVALID_JSON');
    }
    const method = req.method ?? 'GET';
    requests.push({ method, path, query: Object.fromEntries(url.searchParams), token, body, at: Date.now() });

    const account = token === null ? undefined : accounts.get(token);
    if (!account || account.revoked) return error(res, 401, 'You must be logged in to perform this request.', 'AuthExceptionCodes.NOT_AUTHENTICATED');
    // Per-token rate limit: a fixed one-second window.
    const now = Date.now();
    const w = windows.get(account.token);
    if (!w || now - w.start >= 1_000) windows.set(account.token, { start: now, count: 1 });
    else if (++w.count > perSecond) {
      limitedByToken.set(account.token, (limitedByToken.get(account.token) ?? 0) + 1);
      return error(res, 429, 'You have made too many requests. Please wait and try again.', 'ExceptionCodes.RATE_LIMIT_EXCEEDED', { 'retry-after': String(retryAfterSec) });
    }
    const scripted = failures.findIndex((f) => f.route.test(`${method} ${path}`));
    if (scripted >= 0) {
      const [f] = failures.splice(scripted, 1);
      return error(res, f!.status, f!.message, f!.errorCode, f!.retryAfterSec ? { 'retry-after': String(f!.retryAfterSec) } : {});
    }

    if (method === 'GET' && path === '/api/users/0.1/self') {
      return success(res, { id: account.id, username: account.username, display_name: account.username, role: 'freelancer', chosen_role: 'freelancer', status: { email_verified: true } });
    }
    if (method === 'GET' && path === '/api/projects/0.1/projects/active') return search(url.searchParams, res);
    if (method === 'POST' && path === '/api/projects/0.1/bids') return placeBid(account, body, res);
    return error(res, 404, 'The requested resource does not exist.', 'ExceptionCodes.NOT_FOUND');
  }

  function search(q: URLSearchParams, res: ServerResponse): void {
    const words = (q.get('query') ?? '').toLowerCase().split(/\s+/).filter(Boolean);
    const limit = Math.min(100, Math.max(1, Number(q.get('limit') ?? 10)));
    const offset = Math.max(0, Number(q.get('offset') ?? 0));
    const full = q.get('full_description') === 'true';
    const jobs = q.get('job_details') === 'true';
    const matching = projects
      .filter((p) => p.status === 'active')
      .filter((p) => words.length === 0 || words.some((w) => `${p.title} ${p.description} ${p.jobs.map((j) => j.name).join(' ')}`.toLowerCase().includes(w)))
      .sort((a, b) => b.time_submitted - a.time_submitted || b.id - a.id);
    const page = matching.slice(offset, offset + limit).map((p) => ({
      ...p,
      preview_description: p.description.slice(0, 200),
      description: full ? p.description : null,
      jobs: jobs ? p.jobs : null,
    }));
    success(res, { projects: page as unknown as Json, total_count: matching.length, selected_bids: null });
  }

  function placeBid(account: FakeAccount, body: Json, res: ServerResponse): void {
    const b = (body && typeof body === 'object' && !Array.isArray(body) ? body : {}) as Record<string, Json>;
    if (typeof b.project_id !== 'number' || typeof b.bidder_id !== 'number' || typeof b.amount !== 'number' || typeof b.period !== 'number') {
      return error(res, 400, 'project_id, bidder_id, amount and period are required numbers.', 'ExceptionCodes.MISSING_ARGUMENT');
    }
    if (b.bidder_id !== account.id) return error(res, 403, 'You can only place bids as yourself.', 'ProjectExceptionCodes.NOT_AUTHORIZED');
    const project = projects.find((p) => p.id === b.project_id);
    if (!project) return error(res, 404, 'Project not found.', 'ProjectExceptionCodes.PROJECT_NOT_FOUND');
    if (project.status !== 'active') return error(res, 409, 'This project is no longer accepting bids.', 'ProjectExceptionCodes.PROJECT_NOT_ACTIVE');
    if (bids.some((x) => x.project_id === project.id && x.bidder_id === account.id)) {
      return error(res, 409, 'You have already placed a bid on this project.', 'ProjectExceptionCodes.DUPLICATE_BID');
    }
    if (b.amount < project.budget.minimum || b.amount > project.budget.maximum) {
      return error(res, 400, `Your bid must be between ${project.budget.minimum} and ${project.budget.maximum}.`, 'ProjectExceptionCodes.INVALID_BID_AMOUNT');
    }
    if (typeof b.description !== 'string' || b.description.trim() === '') return error(res, 400, 'Please describe your proposal.', 'ProjectExceptionCodes.INVALID_DESCRIPTION');
    const bid: FakeBid = {
      id: nextBid++,
      bidder_id: account.id,
      project_id: project.id,
      amount: b.amount,
      period: b.period,
      milestone_percentage: typeof b.milestone_percentage === 'number' ? b.milestone_percentage : 0,
      description: b.description,
      time_submitted: Math.floor(Date.now() / 1_000),
    };
    bids.push(bid);
    project.bid_stats.bid_count++;
    success(res, { ...bid, award_status: null, retracted: false, highlighted: false, sealed: false } as unknown as Json);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    bids,
    get rateLimited() {
      return [...limitedByToken.values()].reduce((a, b) => a + b, 0);
    },
    rateLimitedFor(token) {
      return limitedByToken.get(token) ?? 0;
    },
    account(username) {
      const token = randomBytes(22).toString('base64url');
      const account: FakeAccount = { token, id: nextUser++, username: username ?? `user${nextUser}`, revoked: false };
      accounts.set(token, account);
      return account;
    },
    addProject(p) {
      const [minimum, maximum] = p.budget ?? [100, 500];
      const project: FakeProject = {
        id: nextProject++,
        owner_id: 9_000_000 + projects.length,
        title: p.title,
        description: p.description,
        seo_url: `${slug(p.skills?.[0] ?? 'project')}/${slug(p.title)}`,
        currency: { id: 1, code: 'USD', sign: '$' },
        budget: { minimum, maximum },
        type: 'fixed',
        status: 'active',
        time_submitted: Math.floor(Date.now() / 1_000),
        bid_stats: { bid_count: p.bids ?? 0, bid_avg: p.bidAvg === undefined ? null : p.bidAvg },
        jobs: (p.skills ?? []).map((name, i) => ({ id: 3 + i, name })),
      };
      projects.push(project);
      return project;
    },
    close(projectId) {
      const project = projects.find((p) => p.id === projectId);
      if (project) project.status = 'closed';
    },
    failNext(route, failure, times = 1) {
      for (let i = 0; i < times; i++) failures.push({ route, ...failure });
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
