import { z } from 'zod';
import {
  defineAdapter,
  messageEnvelopeSchema,
  networkConfigSchema,
  RateLimitError,
  type AdapterContext,
  type HealthReport,
  type JsonValue,
  type PlatformConnection,
} from 'multisession';
import { callFreelancer, FreelancerApiError } from './freelancer-api.js';

/**
 * `freelancer`: one Freelancer.com account per session (seed 000). It logs in with the account's
 * OAuth token (`GET /api/users/0.1/self/`), searches active projects for each of the account's
 * service offerings every `pollIntervalMs` and emits each new one as a `session.message`
 * (`kind: 'project'`), and places bids with `manager.send(id, { method: 'placeBid', … })`.
 *
 * - The token goes in the `freelancer-oauth-v1` header of every request, through `ctx.fetch`:
 *   the session's own proxy and its own rate limit (`rateLimit`, per token: 2 requests a second,
 *   bursts of 2, unless the config says otherwise). Freelancer's 429 pauses the whole session
 *   for its `Retry-After`; a bid then rejects with `RateLimitError`.
 * - A project is marked seen (`ctx.kv`) only after the app's listeners handled it: a crash
 *   between delivers it again (at least once); a clean restart repeats nothing.
 * - `bidLimit` bids a day (UTC) at most: past it the search pauses until the next day and a
 *   `placeBid` rejects with `RateLimitError` (retry after midnight UTC).
 * - Counters (`manager.stats(id).custom`): `projectsSeen`, `bids`, `bidsRefused`.
 * - A refused token: the session ends `expired` (no restart loop).
 *
 * The account's bid-writing settings (services, bid style, portfolio links, signature) live in
 * the same config, so each session carries its own; the app (`bidder.ts`) reads them.
 */

/** What Freelancer's OAuth tokens look like: URL-safe characters, no spaces. */
const TOKEN = /^[A-Za-z0-9._~+/=-]{16,512}$/;

export const freelancerCredentials = z.strictObject({
  /** The account's OAuth access token (encrypted at rest, never logged or echoed). */
  oauthToken: z.string('must be the OAuth token, a string').regex(TOKEN, 'must be a Freelancer OAuth access token: 16-512 of A-Z a-z 0-9 . _ ~ + / = -'),
});

export const freelancerConfig = z.strictObject({
  proxy: networkConfigSchema.shape.proxy,
  /** Requests a second this token may make (Freelancer limits each token). */
  rateLimit: networkConfigSchema.shape.rateLimit.default({ perSecond: 2, burst: 2 }),
  /** The API root (the sandbox is https://www.freelancer-sandbox.com). */
  apiRoot: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL, e.g. https://www.freelancer.com' }).default('https://www.freelancer.com'),
  /** The services this account offers: each is a project search, and the bid writer's brief. */
  services: z.array(z.string().trim().min(2).max(100)).min(1, 'must name at least one service').max(20),
  /** How bids are written for this account (tone, focus). */
  bidStyle: z.string().max(1_000).default('Professional, concise and specific to the project.'),
  /** Links added under every bid. */
  portfolioLinks: z.array(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })).max(10).default([]),
  /** The name every bid is signed with. */
  signature: z.string().trim().min(1).max(200),
  /** Most bids a day (UTC). */
  bidLimit: z.number().int().min(1).max(1_000).default(10),
  /** Projects whose budget maximum is lower are skipped. */
  minBudget: z.number().min(0).default(0),
  /** Delivery time offered, in days. */
  deliveryDays: z.number().int().min(1).max(365).default(7),
  /** Milestone payment asked up front, in percent. */
  milestonePercentage: z.number().int().min(0).max(100).default(50),
  /** Pause between two searches. */
  pollIntervalMs: z.number().int().min(10).max(86_400_000).default(60_000),
  /** Projects one search returns at most. */
  searchLimit: z.number().int().min(1).max(100).default(20),
  /** Time limit of each request. */
  requestTimeoutMs: z.number().int().min(100).max(120_000).default(15_000),
  /** Searches failing in a row (not counting 429s) before the connection counts as lost (restart with back-off). */
  maxPollFailures: z.number().int().min(1).max(100).default(5),
});

/** `manager.send(id, action)`: place a bid. Unknown keys or a missing field are a `ValidationError`. */
export const freelancerAction = z.strictObject({
  method: z.literal('placeBid'),
  projectId: z.number().int().positive(),
  amount: z.number().positive(),
  description: z.string().trim().min(1).max(5_000),
  /** Days; default the config's `deliveryDays`. */
  period: z.number().int().min(1).max(365).optional(),
  /** Percent; default the config's `milestonePercentage`. */
  milestonePercentage: z.number().int().min(0).max(100).optional(),
});

/** A project found by a search, as the common envelope (`id` = project id) plus its details. */
export const freelancerMessage = messageEnvelopeSchema.extend({
  kind: z.literal('project'),
  project: z.object({
    id: z.number().int(),
    title: z.string(),
    description: z.string(),
    url: z.string(),
    currency: z.string(),
    budget: z.object({ minimum: z.number(), maximum: z.number() }),
    bidCount: z.number().int(),
    bidAverage: z.number().nullable(),
    skills: z.array(z.string()),
    /** The service offering whose search found it. */
    matched: z.string(),
  }),
});

export type FreelancerConfig = z.output<typeof freelancerConfig>;
export type FreelancerAction = z.output<typeof freelancerAction>;
export type FreelancerMessage = z.output<typeof freelancerMessage>;
type Ctx = AdapterContext<FreelancerConfig, z.output<typeof freelancerCredentials>, FreelancerMessage>;

interface ApiProject {
  id: number;
  owner_id: number;
  title: string;
  seo_url?: string;
  description?: string | null;
  preview_description?: string;
  currency?: { code?: string };
  budget?: { minimum?: number; maximum?: number };
  bid_stats?: { bid_count?: number; bid_avg?: number | null };
  jobs?: { name?: string }[] | null;
  time_submitted?: number;
}

const DAY_MS = 86_400_000;
const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const seenKey = (projectId: number) => `seen:${projectId}`;
const bidsKey = (day: string) => `bids:${day}`;

class FreelancerConnection implements PlatformConnection<FreelancerAction> {
  readonly #ctx: Ctx;
  readonly #closed = new AbortController();
  readonly #signal: AbortSignal;
  #userId = 0;
  #timer: unknown = null;
  #failures = 0;
  #limitLogged = '';

  constructor(ctx: Ctx) {
    this.#ctx = ctx;
    this.#signal = AbortSignal.any([ctx.signal, this.#closed.signal]);
  }

  #call<T>(method: 'GET' | 'POST', path: string, options?: { query?: Record<string, string | number | boolean>; body?: unknown }): Promise<T> {
    return callFreelancer<T>(this.#ctx, this.#signal, method, path, options);
  }

  #refused(error: FreelancerApiError): never {
    this.#ctx.expired(`Freelancer refused the OAuth token (${error.status} ${error.errorCode ?? ''})`.trim());
    throw error;
  }

  async start(): Promise<void> {
    let me: { id: number; username: string };
    try {
      me = await this.#call('GET', '/api/users/0.1/self/');
    } catch (error) {
      if (error instanceof FreelancerApiError && error.status === 401) this.#refused(error);
      throw error;
    }
    if (this.#signal.aborted) throw new Error('stopped while starting');
    this.#userId = me.id;
    this.#ctx.log.info(`logged in as ${me.username} (${me.id}); searching ${this.#ctx.config.services.length} service(s)`);
    this.#round();
  }

  /** A search round now, then the next one `pollIntervalMs` after it ended (on the session's clock). */
  #round(): void {
    void this.#poll().finally(() => {
      if (this.#signal.aborted) return;
      this.#timer = this.#ctx.clock.setTimeout(() => {
        this.#timer = null;
        this.#round();
      }, this.#ctx.config.pollIntervalMs);
    });
  }

  async #bidsToday(): Promise<number> {
    return (await this.#ctx.kv.get<number>(bidsKey(dayOf(this.#ctx.clock.now())))) ?? 0;
  }

  /** One search per service; each new project emitted, then marked seen. */
  async #poll(): Promise<void> {
    const ctx = this.#ctx;
    const { services, searchLimit, minBudget, maxPollFailures, bidLimit } = ctx.config;
    try {
      const seen = new Set<number>();
      for (const service of services) {
        if (await this.#limitReached(bidLimit)) return;
        const found = await this.#call<{ projects: ApiProject[] }>('GET', '/api/projects/0.1/projects/active/', {
          query: { query: service, limit: searchLimit, full_description: true, job_details: true, compact: true },
        });
        for (const p of found.projects ?? []) {
          if (this.#signal.aborted || seen.has(p.id)) continue;
          seen.add(p.id);
          if ((p.budget?.maximum ?? 0) < minBudget || (await ctx.kv.get(seenKey(p.id))) !== undefined) continue;
          if (await this.#limitReached(bidLimit)) return;
          // Resolves once the app handled it (wrote and placed its bid, or chose not to).
          await ctx.emitMessage(this.#envelope(p, service));
          await ctx.kv.set(seenKey(p.id), true);
          ctx.stats.increment('projectsSeen');
        }
      }
      this.#failures = 0;
    } catch (error) {
      if (this.#signal.aborted) return;
      if (error instanceof FreelancerApiError && error.status === 401) return void ctx.expired('Freelancer refused the OAuth token (401)');
      if (error instanceof FreelancerApiError && error.status === 429) return ctx.log.warn(`${error.message}; searching again after the pause`);
      ctx.log.warn(`search failed: ${error instanceof Error ? error.message : String(error)}`);
      if (++this.#failures >= maxPollFailures) ctx.fail(error);
    }
  }

  async #limitReached(bidLimit: number): Promise<boolean> {
    if ((await this.#bidsToday()) < bidLimit) return false;
    const day = dayOf(this.#ctx.clock.now());
    if (this.#limitLogged !== day) this.#ctx.log.info(`bid limit reached (${bidLimit} today); searching again tomorrow (UTC)`);
    this.#limitLogged = day;
    return true;
  }

  #envelope(p: ApiProject, matched: string): FreelancerMessage {
    const description = p.description ?? p.preview_description ?? '';
    const project = {
      id: p.id,
      title: p.title,
      description,
      url: `${this.#ctx.config.apiRoot.replace(/\/+$/, '')}/projects/${p.seo_url ?? p.id}`,
      currency: p.currency?.code ?? 'USD',
      budget: { minimum: p.budget?.minimum ?? 0, maximum: p.budget?.maximum ?? 0 },
      bidCount: p.bid_stats?.bid_count ?? 0,
      bidAverage: p.bid_stats?.bid_avg ?? null,
      skills: (p.jobs ?? []).map((j) => j.name ?? '').filter(Boolean),
      matched,
    };
    const at = typeof p.time_submitted === 'number' ? p.time_submitted * 1_000 : this.#ctx.clock.now();
    return { id: String(p.id), chatId: String(p.id), from: { id: String(p.owner_id), name: `employer ${p.owner_id}`, username: null, bot: false }, text: `${p.title}\n\n${description}`, at, raw: p as unknown as JsonValue, kind: 'project', project };
  }

  async stop(): Promise<void> {
    this.#closed.abort();
    if (this.#timer !== null) this.#ctx.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  async health(): Promise<HealthReport> {
    if (this.#userId === 0 || this.#signal.aborted) return { status: 'unknown', detail: 'not connected' };
    const paused = this.#ctx.rateLimit.pausedMs();
    if (paused > 0) return { status: 'healthy', detail: `Freelancer asked to slow down; paused for ${paused} ms` };
    try {
      await this.#call('GET', '/api/users/0.1/self/');
      return { status: 'healthy' };
    } catch (error) {
      if (error instanceof FreelancerApiError && error.status === 401) return { status: 'expired', detail: 'Freelancer refused the OAuth token (401)' };
      if (error instanceof FreelancerApiError && error.status === 429) return { status: 'healthy', detail: error.message };
      return { status: 'unhealthy', detail: error instanceof Error ? error.message : String(error) };
    }
  }

  async send(action: FreelancerAction): Promise<JsonValue> {
    const ctx = this.#ctx;
    if (this.#userId === 0 || this.#signal.aborted) throw new Error('not connected; start the session first');
    const day = dayOf(ctx.clock.now());
    const placed = await this.#bidsToday();
    if (placed >= ctx.config.bidLimit) {
      const untilTomorrow = DAY_MS - (ctx.clock.now() % DAY_MS);
      // Held back by the account's own limit (nothing paused): the caller may retry tomorrow.
      throw new RateLimitError(ctx.id, untilTomorrow, 0, { reason: `bidLimit reached: ${placed} of ${ctx.config.bidLimit} bids today (UTC)` });
    }
    let bid: { id: number; amount: number; period: number };
    try {
      bid = await this.#call('POST', '/api/projects/0.1/bids/', {
        body: {
          project_id: action.projectId,
          bidder_id: this.#userId,
          amount: action.amount,
          period: action.period ?? ctx.config.deliveryDays,
          milestone_percentage: action.milestonePercentage ?? ctx.config.milestonePercentage,
          description: action.description,
        },
      });
    } catch (error) {
      if (error instanceof FreelancerApiError) {
        if (error.rateLimit) throw error.rateLimit;
        if (error.status === 401) this.#refused(error);
        ctx.stats.increment('bidsRefused');
      }
      throw error;
    }
    await ctx.kv.batch([
      { op: 'set', key: bidsKey(day), value: placed + 1 },
      { op: 'set', key: `bid:${action.projectId}`, value: { bidId: bid.id, amount: bid.amount, period: bid.period, at: ctx.clock.now() } },
    ]);
    ctx.stats.increment('bids');
    ctx.log.info(`bid ${bid.id} placed on project ${action.projectId}: ${bid.amount} over ${bid.period} day(s)`);
    return { bidId: bid.id, projectId: action.projectId, amount: bid.amount, period: bid.period };
  }
}

/** The `freelancer` adapter (one per manager). */
export const freelancer = defineAdapter({
  name: 'freelancer',
  description: 'Freelancer.com accounts: project search per service offering, bids placed with a daily limit, a rate limit per OAuth token.',
  credentials: freelancerCredentials,
  config: freelancerConfig,
  action: freelancerAction,
  message: freelancerMessage,
  connect: (ctx) => new FreelancerConnection(ctx),
});
