/**
 * `npm run bench:adapters`: 1,000 `telegram-bot` sessions (one SessionManager, memory store,
 * default health checks) long-polling one local fake Bot API server, each figure beside a
 * baseline measured in the same run: 1,000 bare undici long polls (`fetch`, the same
 * `getUpdates` requests, the offset confirmed the same way), each on a bot of its own.
 *
 *   (a) CPU per idle session: this process's CPU time over an idle window (every session holding
 *       its long poll, re-polling when it times out: two cycles by default), per session per second.
 *   (b) Messages per second delivered end to end: a burst of PER_BOT text messages queued on every
 *       bot at once, until the last one reached the app (the library: a `session.message`
 *       listener, with the offset stored after each; the baseline: its loop's counter).
 *
 * The fake (test/adapters/telegram-bot/fake-bot-api.ts) runs in a child process
 * (bench/adapters-fake.ts), so only the clients' CPU is counted here. Baseline and library run one
 * after the other on bots of their own; every wait is bounded.
 * Env: BENCH_SESSIONS (default 1,000), BENCH_POLL_SEC (long-poll timeout, default 3),
 * BENCH_IDLE_MS (idle window, default 6,000,
 * after one whole poll cycle of warm-up), BENCH_PER_BOT (burst per bot, default 20),
 * BENCH_ROUNDS (bursts per side, best reported, default 3).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fetch as undiciFetch } from 'undici';
import { SessionManager } from '../src/index.js';
import { telegramBot } from '../src/adapters/telegram-bot/index.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1_000);
const POLL_SEC = Number(process.env.BENCH_POLL_SEC ?? 3);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 6_000);
const PER_BOT = Number(process.env.BENCH_PER_BOT ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The fake Bot API process and a request/answer channel to it. */
class Fake {
  readonly #child: ChildProcess;
  readonly #waiting: ((m: Record<string, unknown>) => void)[] = [];

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (m) => this.#waiting.shift()?.(m as Record<string, unknown>));
  }

  static async start(): Promise<Fake> {
    const child = fork(new URL('./adapters-fake.ts', import.meta.url), { execArgv: ['--import', 'tsx'] });
    const fake = new Fake(child);
    await fake.#answer(undefined, 20_000);
    return fake;
  }

  #answer(command: unknown, ms = 20_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the fake did not answer ${JSON.stringify(command)} within ${ms} ms`)), ms);
      this.#waiting.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
      if (command !== undefined) this.#child.send(command as object);
    });
  }

  async bots(n: number): Promise<{ url: string; tokens: string[] }> {
    const m = await this.#answer({ op: 'bots', n });
    return { url: m.url as string, tokens: m.tokens as string[] };
  }

  async push(tokens: string[], perBot: number): Promise<number> {
    return (await this.#answer({ op: 'push', tokens, perBot })).n as number;
  }

  /** Waits until every one of these bots has a long poll held. */
  async allHeld(tokens: string[], what: string, ms = 30_000): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      const held = (await this.#answer({ op: 'held', tokens })).n as number;
      if (held === tokens.length) return;
      if (Date.now() > end) throw new Error(`${what}: only ${held} of ${tokens.length} long polls held after ${ms} ms`);
      await sleep(100);
    }
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}

/** CPU µs per session per second over the idle window (every poll held, re-polling on time-out). */
async function idleCpu(): Promise<number> {
  await sleep(POLL_SEC * 1_000 + 500); // one whole poll cycle first: connections made, code warm
  const cpu0 = cpuNow();
  const t0 = performance.now();
  await sleep(IDLE_MS);
  return (cpuNow() - cpu0) / SESSIONS / ((performance.now() - t0) / 1_000);
}

/** Queues a burst on every bot; resolves with messages per second once `received()` has them all. */
async function burst(fake: Fake, tokens: string[], received: () => number, what: string): Promise<number> {
  const before = received();
  const t0 = performance.now();
  const n = await fake.push(tokens, PER_BOT);
  const end = Date.now() + 30_000;
  while (received() - before < n) {
    if (Date.now() > end) throw new Error(`${what}: ${received() - before} of ${n} messages arrived within 30 s`);
    await sleep(2);
  }
  return n / ((performance.now() - t0) / 1_000);
}

interface Side {
  idleUs: number;
  perSec: number[];
  setupMs: number;
}

/** 1,000 bare undici long-poll loops, each confirming its offset with the next poll. */
async function baseline(fake: Fake, url: string, tokens: string[]): Promise<Side> {
  const stop = new AbortController();
  let received = 0;
  let retries = 0;
  const t0 = performance.now();
  const loops = tokens.map(async (token) => {
    let offset: number | null = null;
    while (!stop.signal.aborted) {
      const body: Record<string, unknown> = { timeout: POLL_SEC, limit: 100 };
      if (offset !== null) body.offset = offset;
      let answer: { ok: boolean; result?: { update_id: number }[] };
      try {
        const res = await undiciFetch(`${url}/bot${token}/getUpdates`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.any([stop.signal, AbortSignal.timeout((POLL_SEC + 15) * 1_000)]),
        });
        answer = (await res.json()) as typeof answer;
      } catch (error) {
        if (stop.signal.aborted) return;
        // A keep-alive socket the server closed as it was reused: poll again, as the adapter does.
        if ((error as { cause?: { code?: unknown } }).cause?.code !== 'UND_ERR_SOCKET' || ++retries > SESSIONS) throw error;
        continue;
      }
      if (!answer.ok) throw new Error(`baseline getUpdates refused: ${JSON.stringify(answer)}`);
      for (const update of answer.result ?? []) {
        received++;
        offset = update.update_id + 1;
      }
    }
  });
  const failed = Promise.all(loops).then(() => new Promise<never>(() => {}));
  const run = async (): Promise<Side> => {
    await fake.allHeld(tokens, 'baseline');
    const setupMs = performance.now() - t0;
    const idleUs = await idleCpu();
    const perSec: number[] = [];
    for (let r = 0; r < ROUNDS; r++) perSec.push(await burst(fake, tokens, () => received, 'baseline'));
    if (retries > 0) console.log(`  baseline: ${retries} poll(s) repeated after the server closed a reused keep-alive socket`);
    return { idleUs, perSec, setupMs };
  };
  try {
    return await Promise.race([run(), failed]);
  } finally {
    stop.abort();
    await Promise.allSettled(loops);
  }
}

/** 1,000 telegram-bot sessions under one SessionManager. */
async function library(fake: Fake, url: string, tokens: string[]): Promise<Side> {
  const manager = new SessionManager({ adapters: [telegramBot()], maxSessions: SESSIONS + 10 });
  await manager.open();
  let received = 0;
  manager.on('session.message', () => {
    received++;
  });
  try {
    const t0 = performance.now();
    for (let i = 0; i < tokens.length; i += 100) {
      await Promise.all(
        tokens.slice(i, i + 100).map((token, j) =>
          manager.create({ id: `bot-${i + j}`, platform: 'telegram-bot', credentials: { token }, config: { apiRoot: url, pollTimeoutSec: POLL_SEC } }),
        ),
      );
    }
    for (let i = 0; i < tokens.length; i += 100) {
      const states = await Promise.all(tokens.slice(i, i + 100).map((_, j) => manager.start(`bot-${i + j}`).then((s) => s.state)));
      const notReady = states.filter((s) => s !== 'ready');
      if (notReady.length) throw new Error(`sessions did not start: ${notReady.join(', ')}`);
    }
    await fake.allHeld(tokens, 'library');
    const setupMs = performance.now() - t0;
    const idleUs = await idleCpu();
    const perSec: number[] = [];
    for (let r = 0; r < ROUNDS; r++) perSec.push(await burst(fake, tokens, () => received, 'library'));
    return { idleUs, perSec, setupMs };
  } finally {
    await manager.close();
  }
}

async function main(): Promise<void> {
  const fake = await Fake.start();
  const onSignal = () => {
    fake.kill();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  try {
    const { url, tokens } = await fake.bots(SESSIONS * 2);
    const baseTokens = tokens.slice(0, SESSIONS);
    const libTokens = tokens.slice(SESSIONS);
    console.log(`bench:adapters — ${SESSIONS.toLocaleString('en')} long pollers on one local fake Bot API (its own process)`);
    console.log(`getUpdates timeout ${POLL_SEC} s, idle window ${IDLE_MS / 1_000} s, bursts of ${PER_BOT} messages per bot (${(SESSIONS * PER_BOT).toLocaleString('en')}), best of ${ROUNDS}\n`);
    const base = await baseline(fake, url, baseTokens);
    console.log(`  baseline: ${SESSIONS} polls held in ${(base.setupMs / 1_000).toFixed(1)} s`);
    const lib = await library(fake, url, libTokens);
    console.log(`  telegram-bot: ${SESSIONS} sessions created, started and polling in ${(lib.setupMs / 1_000).toFixed(1)} s\n`);

    const best = (xs: number[]) => Math.max(...xs);
    const row = (name: string, l: string, b: string, ratio: string) => console.log(`${name.padEnd(44)}${l.padStart(14)}${b.padStart(14)}${ratio.padStart(9)}`);
    row('', 'telegram-bot', 'bare undici', 'ratio');
    row('(a) CPU per idle session (µs per second)', lib.idleUs.toFixed(1), base.idleUs.toFixed(1), `${(lib.idleUs / base.idleUs).toFixed(2)}×`);
    row('    … as % of one core for all sessions', `${((lib.idleUs * SESSIONS) / 1e4).toFixed(2)}%`, `${((base.idleUs * SESSIONS) / 1e4).toFixed(2)}%`, '');
    row('(b) messages per second, end to end', Math.round(best(lib.perSec)).toLocaleString('en'), Math.round(best(base.perSec)).toLocaleString('en'), `${(best(lib.perSec) / best(base.perSec)).toFixed(2)}×`);
    console.log(`    every round: telegram-bot ${lib.perSec.map((x) => Math.round(x)).join(' / ')}; bare undici ${base.perSec.map((x) => Math.round(x)).join(' / ')}`);
    console.log('\n(a): lower is better, ratio = library / baseline; (b): higher is better, ratio = library / baseline.');
    console.log('The library also runs its health checks (getMe every 30 s per session) and stores each offset after the app handled the update.');
  } finally {
    process.off('SIGINT', onSignal);
    fake.kill();
  }
}

await main();
