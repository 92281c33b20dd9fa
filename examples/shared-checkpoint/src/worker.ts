/**
 * One worker process: the seed's `cd sessionN && bash run.sh`.
 *
 * It runs a `SessionManager` of its own (storage `<dir>/<session>/sessions.db`) with one session,
 * a simulated Telegram account, and copies the source chat to the target chat. For every source
 * message it asks the SHARED checkpoint (`<dir>/shared/checkpoint.db`) for a lock with
 * `claimKey('msg:<id>')`: locked → forward it with the lease's fencing token, then `complete`;
 * `null` (done, or held by the other worker) → skip. After one pass it sweeps what is left
 * (locks of a dead worker come back when their lease runs out) until the source is drained.
 *
 * Every step is appended to `<dir>/<session>/clone.log` as a JSON line, written synchronously,
 * so a SIGKILL loses nothing already logged.
 *
 * node --import tsx examples/shared-checkpoint/src/worker.ts --dir <dir> --session session1
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { LeaseLostError, SessionManager, createCheckpoint, type Lease } from 'multisession';
import { sqliteCheckpoint, sqliteStorage } from 'multisession/sqlite';
import { parse } from './parse.js';
import type { ForwardOutcome, SourceMessage } from './chats.js';
import { telegramAdapter, telegramCredentials } from './telegram-adapter.js';

export const workerOptionsSchema = z.object({
  dir: z.string().min(1, 'the scenario folder (holds shared/ and one folder per session)'),
  session: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a session id: 1-64 of A-Z, a-z, 0-9, _ and -'),
  leaseMs: z.coerce.number().int().min(100).max(600_000).default(2_000),
  sendDelayMs: z.coerce.number().int().min(0).max(10_000).default(0),
  pollMs: z.coerce.number().int().min(10).max(60_000).default(100),
  /** Print `ready` once the session is up, then wait for a `go` line on stdin (so workers start together). */
  waitForGo: z.boolean().default(false),
});
export type WorkerOptions = z.input<typeof workerOptionsSchema>;

/** What `<dir>/<session>/session.json` holds: the seed's `.env` (credentials and settings). */
export const sessionFileSchema = z.object({
  credentials: telegramCredentials,
  secretKey: z.string().min(1),
});

/** The events a worker logs, one JSON object per line of its clone.log. */
export type WorkerEvent =
  | { event: 'start'; restored: boolean; owner: string }
  | { event: 'claimed'; key: string; token: number; takeover: boolean }
  | { event: 'skipped'; key: string }
  | { event: 'forwarded'; key: string; token: number; outcome: ForwardOutcome['outcome']; targetId: number }
  | { event: 'completed'; key: string; token: number }
  | { event: 'lease-lost'; key: string; token: number; during: 'complete' }
  | { event: 'violation'; key: string; token: number; detail: string }
  | { event: 'error'; key?: string; message: string }
  | { event: 'pass'; pass: number; claimed: number }
  | { event: 'drained'; stats: unknown };

export type LoggedEvent = WorkerEvent & { t: number; session: string; pid: number };

export async function runWorker(input: WorkerOptions, signal?: AbortSignal): Promise<void> {
  const o = parse(workerOptionsSchema, input, 'worker options');
  const sessionDir = join(o.dir, o.session);
  const logFile = join(sessionDir, 'clone.log');
  const log = (e: WorkerEvent) => appendFileSync(logFile, `${JSON.stringify({ t: Date.now(), session: o.session, pid: process.pid, ...e })}\n`);
  const file = parse(sessionFileSchema, JSON.parse(readFileSync(join(sessionDir, 'session.json'), 'utf8')), 'session.json');

  // The session: its own manager and store, like the seed's per-session folder and .session file.
  const manager = new SessionManager({
    storage: sqliteStorage({ filename: join(sessionDir, 'sessions.db') }),
    adapters: [telegramAdapter],
    secretKey: file.secretKey,
    restart: { retries: 10, minDelayMs: 100, maxDelayMs: 2_000, factor: 2 },
  });
  // The lock: a checkpoint on the SHARED file, the seed's sessions/shared/checkpoint.db.
  const shared = sqliteCheckpoint({ filename: join(o.dir, 'shared', 'checkpoint.db') }, { busyTimeoutMs: 30_000 });
  const checkpoint = createCheckpoint({ storage: shared, stream: 'messages', maxAttempts: 50 });
  const owner = `${o.session}:${process.pid}`;

  try {
    await manager.open(); // brings the session back when it was running before a crash
    const restored = (await manager.list()).items.some((s) => s.id === o.session);
    if (!restored) {
      await manager.create({
        id: o.session,
        platform: 'telegram',
        credentials: file.credentials,
        config: { chatsFile: join(o.dir, 'shared', 'chats.db'), sendDelayMs: o.sendDelayMs },
        labels: { role: 'clone' },
      });
    }
    const snap = await manager.get(o.session);
    if (snap.desiredState !== 'running') await manager.start(o.session);
    await manager.waitFor(o.session, ['ready', 'degraded'], { timeoutMs: 60_000, ...(signal ? { signal } : {}) });
    if (o.waitForGo) {
      process.stdout.write('ready\n');
      const lines = createInterface({ input: process.stdin });
      await new Promise<void>((resolve, reject) => {
        lines.on('line', (line) => line.trim() === 'go' && resolve());
        lines.once('close', () => reject(new Error('stdin closed before "go"')));
      }).finally(() => lines.close());
    }
    log({ event: 'start', restored, owner });

    /** The seed's loop body: lock the message, forward it, mark it done. */
    const copy = async (message: SourceMessage): Promise<boolean> => {
      const key = `msg:${message.id}`;
      let lease: Lease | null;
      try {
        lease = await checkpoint.claimKey(key, { owner, leaseMs: o.leaseMs, payload: { id: message.id, text: message.text } });
      } catch (err) {
        log({ event: 'error', key, message: (err as Error).message });
        await sleep(o.pollMs);
        return false;
      }
      if (!lease) {
        log({ event: 'skipped', key }); // done already, or the other session holds it
        return false;
      }
      // attempts > 0: an earlier holder's lease ran out (it died or stalled) and we took it over.
      log({ event: 'claimed', key, token: lease.token, takeover: lease.attempts > 0 });
      let forwarded: ForwardOutcome;
      try {
        forwarded = (await manager.send(o.session, {
          type: 'forward',
          sourceId: message.id,
          text: message.text,
          fence: lease.token,
        })) as unknown as ForwardOutcome;
      } catch (err) {
        log({ event: 'error', key, message: (err as Error).message });
        await checkpoint.fail(lease, err, { retryInMs: o.pollMs }).catch(() => {}); // else the lease runs out
        return false;
      }
      log({ event: 'forwarded', key, token: lease.token, outcome: forwarded.outcome, targetId: forwarded.targetId });
      try {
        await checkpoint.complete(lease);
        if (forwarded.outcome === 'refused') {
          // The target saw a larger token, so our lease must have been taken over.
          log({ event: 'violation', key, token: lease.token, detail: 'the target refused the token but complete() accepted it' });
          return false;
        }
        log({ event: 'completed', key, token: lease.token });
        return true;
      } catch (err) {
        if (err instanceof LeaseLostError) {
          log({ event: 'lease-lost', key, token: lease.token, during: 'complete' });
          return false;
        }
        log({ event: 'error', key, message: (err as Error).message });
        return false;
      }
    };

    // Pass 1: the whole source chat, oldest first, a page at a time.
    let claimed = 0;
    for (let afterId = 0; !signal?.aborted; ) {
      const page = (await manager.send(o.session, { type: 'history', afterId, limit: 200 })) as unknown as SourceMessage[];
      if (!page.length) break;
      for (const m of page) {
        if (signal?.aborted) break;
        if (await copy(m)) claimed += 1;
      }
      afterId = page[page.length - 1]!.id;
    }
    log({ event: 'pass', pass: 1, claimed });

    // Then sweep what is left until every message is done: messages the other session held
    // when we passed them, and locks of a dead worker once their lease has run out.
    for (let pass = 2; !signal?.aborted; pass++) {
      const stats = await checkpoint.stats();
      if (stats.pending + stats.processing + stats.failed === 0) {
        log({ event: 'drained', stats });
        break;
      }
      let n = 0;
      for (const status of ['failed', 'pending', 'processing'] as const) {
        for (let cursor: string | null = null; ; ) {
          const page = await checkpoint.list({ status, limit: 500, cursor });
          for (const item of page.items) {
            const payload = item.payload as { id: number; text: string } | null;
            if (!payload || (status === 'processing' && (item.leaseExpiresAt ?? 0) > Date.now())) continue;
            if (await copy(payload)) n += 1;
          }
          cursor = page.cursor;
          if (!cursor) break;
        }
      }
      if (n > 0) log({ event: 'pass', pass, claimed: n });
      else await sleep(o.pollMs, undefined, signal ? { signal } : {}).catch(() => {});
    }
  } finally {
    await manager.close(); // keeps the desired state: the next start restores the session
    await shared.close();
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      session: { type: 'string' },
      'lease-ms': { type: 'string' },
      'send-delay-ms': { type: 'string' },
      'poll-ms': { type: 'string' },
      'wait-for-go': { type: 'boolean' },
    },
  });
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  try {
    await runWorker(
      {
        dir: values.dir ?? '',
        session: values.session ?? '',
        leaseMs: values['lease-ms'] as unknown as number,
        sendDelayMs: values['send-delay-ms'] as unknown as number,
        pollMs: values['poll-ms'] as unknown as number,
        waitForGo: values['wait-for-go'] ?? false,
      },
      stop.signal,
    );
  } catch (err) {
    console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
    process.exitCode = 1;
  }
}
