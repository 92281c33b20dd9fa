import { SessionManager, type SessionStatistics } from 'multisession';
import { openaiChat } from 'multisession/adapters/openai-chat';
import { startFakeOpenAI, type ChatMessage } from '../../../test/adapters/openai-chat/fake-openai.js';
import { Bidder, type BidderTally } from './bidder.js';
import { startFakeFreelancer, type FakeAccount, type FakeBid } from './fake-freelancer.js';
import { freelancer } from './freelancer-adapter.js';

/**
 * The seed-000 setup, end to end, with no account anywhere: a local fake of the Freelancer REST
 * API (three accounts, a fourth whose token was revoked, projects for each account's services, a
 * per-token rate limit of 4 requests a second) and a local fake OpenAI-compatible back-end (the
 * seed's Groq) writing the bids. One `freelancer` session per account, each with its own services,
 * bid style, portfolio links, signature and bid limit; one `openai-chat` session writes every bid.
 */

/** The accounts of the seed's "Example Setup", plus one whose token Freelancer no longer takes. */
export const ACCOUNTS = [
  {
    id: 'web-dev',
    username: 'johnsmith_dev',
    config: {
      services: ['WordPress', 'React', 'E-commerce'],
      bidStyle: 'Professional, technical and solution-focused.',
      portfolioLinks: ['https://github.com/johnsmith', 'https://johnsmith.dev/work'],
      signature: 'John Smith - Web Developer',
      bidLimit: 3,
    },
  },
  {
    id: 'design',
    username: 'sarah_designs',
    config: {
      services: ['Logo design', 'Branding', 'UI/UX'],
      bidStyle: 'Creative, enthusiastic and visual-focused.',
      portfolioLinks: ['https://www.behance.net/sarahjohnson', 'https://dribbble.com/sarahjohnson'],
      signature: 'Sarah Johnson - Graphic Designer',
      bidLimit: 2,
      minBudget: 100,
    },
  },
  {
    id: 'writing',
    username: 'mike_writes',
    config: {
      services: ['Content writing', 'Copywriting', 'Blog posts', 'Proofreading', 'Ghostwriting', 'Technical writing'],
      bidStyle: 'Conversational, persuasive and results-oriented.',
      portfolioLinks: ['https://mikedavis.blog/samples'],
      signature: 'Mike Davis - Content Writer',
      bidLimit: 2,
      // Set above Freelancer's limit on purpose (its first search round alone is 7 requests): this
      // token gets 429s, its session pauses for each Retry-After and still gets its bids in; the
      // other accounts never notice.
      rateLimit: { perSecond: 40, burst: 40 },
    },
  },
] as const;

/** Projects on the fake: more for each account than its bid limit; one too small for `design`. */
const PROJECTS = [
  { title: 'WordPress site for a bakery', description: 'Need a WordPress site with online ordering and a menu page.', skills: ['WordPress', 'PHP'], budget: [250, 750] },
  { title: 'React dashboard for sales data', description: 'Build a React dashboard with charts fed by our REST API.', skills: ['React', 'TypeScript'], budget: [500, 1500], bidAvg: 900 },
  { title: 'Shopify to WooCommerce migration', description: 'Move our E-commerce store (300 products) to WooCommerce.', skills: ['E-commerce', 'WordPress'], budget: [300, 800] },
  { title: 'Fix React Native build', description: 'Our React Native app does not build on iOS any more.', skills: ['React Native'], budget: [100, 300] },
  { title: 'Logo design for a coffee brand', description: 'A modern logo and colour palette for a coffee roaster.', skills: ['Logo design', 'Illustrator'], budget: [150, 400] },
  { title: 'Tiny logo tweak', description: 'Change the colour of an existing logo design.', skills: ['Logo design'], budget: [10, 30] },
  { title: 'Branding kit for a yoga studio', description: 'Branding: logo, business cards and social media templates.', skills: ['Branding', 'Graphic Design'], budget: [300, 900] },
  { title: 'UI/UX review of a checkout flow', description: 'Review our checkout flow and propose a UI/UX redesign in Figma.', skills: ['UI/UX', 'Figma'], budget: [200, 600] },
  { title: 'Blog posts about home gardening', description: 'Ten blog posts of 1,000 words each on home gardening.', skills: ['Blog posts', 'Content writing'], budget: [200, 500] },
  { title: 'Copywriting for a landing page', description: 'Persuasive copywriting for a SaaS landing page.', skills: ['Copywriting'], budget: [100, 300], bidAvg: 180 },
  { title: 'Content writing for a travel site', description: 'Destination guides, content writing in a friendly tone.', skills: ['Content writing'], budget: [150, 450] },
] as const;

/** A bid text from the prompt, as a model would write one (the fake back-end's reply). */
export function writeBid(messages: ChatMessage[]): string {
  const prompt = messages.filter((m) => m.role === 'user').at(-1)?.content ?? '';
  const title = /^Project: (.*)$/m.exec(prompt)?.[1] ?? 'your project';
  const offer = /my bid: ([^,]+), delivered in (\d+) days/.exec(prompt);
  const style = /Writing style: ([^.]+)\./.exec(messages.find((m) => m.role === 'system')?.content ?? '')?.[1] ?? 'clear';
  return `I have read "${title}" closely and can start today. I would split the work into small milestones, show you progress every other day, and keep you in the loop on every decision. ${offer ? `My offer is ${offer[1]} with delivery in ${offer[2]} days.` : ''} (Tone: ${style.toLowerCase()}.)`;
}

export interface DemoOptions {
  /** Where the demo says what happens. Default: nothing. */
  log?: (line: string) => void;
  /** Longest the demo waits for every account to reach its bid limit. Default 30 s. */
  timeoutMs?: number;
}

export interface DemoResult {
  /** Per account: the library's statistics, the app's tally, the bids Freelancer holds, the state. */
  accounts: { id: string; account: FakeAccount; state: string; stats: SessionStatistics; tally: BidderTally; bids: FakeBid[]; bidLimit: number; rateLimited: number }[];
  /** The revoked account's session: it ends `expired`. */
  revoked: { id: string; state: string };
  /** 429s the fake Freelancer answered (per-token limit), absorbed by the sessions' pauses. */
  rateLimited: number;
  /** Requests the fake back-end got to write bids. */
  completions: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const log = options.log ?? (() => {});
  const api = await startFakeFreelancer({ requestsPerSecond: 4, retryAfterSec: 1 });
  const ai = await startFakeOpenAI({ models: ['llama-3.1-8b-instant'] });
  ai.respond = (messages) => writeBid(messages);
  const manager = new SessionManager({ adapters: [freelancer, openaiChat()], health: { intervalMs: 60_000 } });
  const bidder = new Bidder({ manager, writer: 'bid-writer', log });
  try {
    await manager.open();
    for (const p of PROJECTS.slice(0, 8)) api.addProject(p);

    // One writer for every account: one key (the seed's shared Groq key), its own rate limit.
    await manager.create({
      id: 'bid-writer',
      platform: 'openai-chat',
      credentials: { apiKey: ai.key() },
      config: { baseUrl: ai.url, model: 'llama-3.1-8b-instant', temperature: 0.7, rateLimit: { perSecond: 5, burst: 5 } },
    });
    await manager.start('bid-writer');
    bidder.start();

    const accounts = ACCOUNTS.map((a) => ({ ...a, account: api.account(a.username) }));
    for (const a of accounts) {
      await manager.create({ id: a.id, platform: 'freelancer', credentials: { oauthToken: a.account.token }, config: { ...a.config, apiRoot: api.url, pollIntervalMs: 500 }, labels: { kind: 'freelancer' } });
    }
    const old = api.account('old_account');
    old.revoked = true;
    await manager.create({ id: 'old-account', platform: 'freelancer', credentials: { oauthToken: old.token }, config: { services: ['WordPress'], signature: 'Old Account', apiRoot: api.url } });

    for (const a of accounts) {
      const snap = await manager.start(a.id);
      log(`[${a.id}] ${snap.state}: ${a.config.services.join(', ')}; at most ${a.config.bidLimit} bids a day`);
    }
    await manager.start('old-account').catch(() => {});
    const oldSnap = await manager.get('old-account');
    log(`[old-account] ${oldSnap.state}: ${oldSnap.lastError?.message ?? 'no error'}`);

    // Projects posted later are found by the next search.
    await sleep(300);
    for (const p of PROJECTS.slice(8)) api.addProject(p);

    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    const done = () => accounts.every((a) => api.bids.filter((b) => b.bidder_id === a.account.id).length >= a.config.bidLimit);
    while (!done() && Date.now() < deadline) await sleep(50);
    await sleep(200); // a search in flight past the limit would show here

    return {
      accounts: await Promise.all(
        accounts.map(async (a) => ({
          id: a.id,
          account: a.account,
          state: (await manager.get(a.id)).state,
          stats: await manager.stats(a.id),
          tally: bidder.tally(a.id),
          bids: api.bids.filter((b) => b.bidder_id === a.account.id),
          bidLimit: a.config.bidLimit,
          rateLimited: api.rateLimitedFor(a.account.token),
        })),
      ),
      revoked: { id: 'old-account', state: (await manager.get('old-account')).state },
      rateLimited: api.rateLimited,
      completions: ai.completions().length,
    };
  } finally {
    bidder.stop();
    await manager.close();
    await api.stop();
    await ai.close();
  }
}
