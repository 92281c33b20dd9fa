import { isMessageFrom, RateLimitError, type SessionManager, type SessionManagerEventPayload } from 'multisession';
import type { OpenAIChatReply } from 'multisession/adapters/openai-chat';
import { freelancer, type FreelancerConfig, type FreelancerMessage } from './freelancer-adapter.js';
import { FreelancerApiError } from './freelancer-api.js';

/**
 * The bidding app on top of the sessions: for each project a `freelancer` session finds, it has
 * the bid written through the `openai-chat` session `writer` (one shared back-end key, as in seed
 * 000; each account's own style as the system prompt, no history between bids), adds the
 * account's portfolio links and signature, and places the bid through that account's session.
 *
 * Its listener is awaited by the adapter before the project is marked seen, so a crash mid-way
 * brings the project back after the restart. A "slow down" (RateLimitError) short enough is
 * waited out and retried; anything else is logged and the project is passed over.
 */
export interface BidderOptions {
  manager: SessionManager;
  /** The id of the `openai-chat` session that writes the bids. */
  writer: string;
  /** Where the app says what it did. Default: nothing. */
  log?: (line: string) => void;
  /** Longest "slow down" waited out before a retry; past it the project is passed over. Default 30 s. */
  maxRetryWaitMs?: number;
}

/** What the app did for one account. */
export interface BidderTally {
  written: number;
  placed: number;
  passedOver: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** The bid amount: the average of the bids so far, or the middle of the budget, kept within it. */
export function bidAmount(project: FreelancerMessage['project']): number {
  const { minimum, maximum } = project.budget;
  const wanted = project.bidAverage ?? (minimum + maximum) / 2;
  return Math.round(Math.min(maximum, Math.max(minimum, wanted)));
}

/** The writer's brief: the project and what this account offers. */
export function bidPrompt(project: FreelancerMessage['project'], config: FreelancerConfig, amount: number): { system: string; text: string } {
  return {
    system: `You write bids on Freelancer.com for one freelancer. Their services: ${config.services.join(', ')}. Writing style: ${config.bidStyle} Answer with the bid text only: no greeting placeholders, no signature, no links.`,
    text: [
      `Project: ${project.title}`,
      `Budget: ${project.currency} ${project.budget.minimum}-${project.budget.maximum}; my bid: ${project.currency} ${amount}, delivered in ${config.deliveryDays} days.`,
      project.skills.length ? `Skills: ${project.skills.join(', ')}` : null,
      `Description: ${project.description}`,
      'Write a bid of 60 to 150 words that shows I understood the project and how I would do it.',
    ]
      .filter(Boolean)
      .join('\n'),
  };
}

export class Bidder {
  readonly #manager: SessionManager;
  readonly #writer: string;
  readonly #log: (line: string) => void;
  readonly #maxRetryWaitMs: number;
  readonly #tallies = new Map<string, BidderTally>();
  readonly #listener = (e: SessionManagerEventPayload<'session.message'>) => this.#onMessage(e);

  constructor(options: BidderOptions) {
    this.#manager = options.manager;
    this.#writer = options.writer;
    this.#log = options.log ?? (() => {});
    this.#maxRetryWaitMs = options.maxRetryWaitMs ?? 30_000;
  }

  /** Starts handling the projects the freelancer sessions find. */
  start(): this {
    this.#manager.on('session.message', this.#listener);
    return this;
  }

  stop(): void {
    this.#manager.off('session.message', this.#listener);
  }

  /** What the app did per account so far. */
  tally(id: string): BidderTally {
    return { ...(this.#tallies.get(id) ?? { written: 0, placed: 0, passedOver: 0 }) };
  }

  #count(id: string, field: keyof BidderTally): void {
    const t = this.#tallies.get(id) ?? { written: 0, placed: 0, passedOver: 0 };
    t[field]++;
    this.#tallies.set(id, t);
  }

  async #onMessage(event: SessionManagerEventPayload<'session.message'>): Promise<void> {
    if (!isMessageFrom(freelancer, event)) return;
    await this.#bid(event.id, event.message);
  }

  /** Runs `work`, waiting out a short "slow down" and trying again (three tries). */
  async #patiently<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (!(error instanceof RateLimitError) || attempt >= 3 || error.retryAfterMs > this.#maxRetryWaitMs) throw error;
        await sleep(error.retryAfterMs);
      }
    }
  }

  async #bid(id: string, message: FreelancerMessage): Promise<void> {
    const { project } = message;
    const config = (await this.#manager.get(id)).config as unknown as FreelancerConfig;
    const amount = bidAmount(project);
    try {
      const prompt = bidPrompt(project, config, amount);
      const reply = (await this.#patiently(() => this.#manager.send(this.#writer, { text: prompt.text, system: prompt.system, history: false }))) as OpenAIChatReply;
      this.#count(id, 'written');
      const description = [reply.text.trim(), config.portfolioLinks.length ? `Portfolio:\n${config.portfolioLinks.join('\n')}` : null, config.signature].filter(Boolean).join('\n\n');
      await this.#patiently(() => this.#manager.send(id, { method: 'placeBid', projectId: project.id, amount, description }));
      this.#count(id, 'placed');
      this.#log(`[${id}] bid ${project.currency} ${amount} on "${project.title}" (found by "${project.matched}")`);
    } catch (error) {
      this.#count(id, 'passedOver');
      const why = error instanceof FreelancerApiError || error instanceof RateLimitError ? error.message : error instanceof Error ? error.message : String(error);
      this.#log(`[${id}] passed over "${project.title}": ${why}`);
    }
  }
}
