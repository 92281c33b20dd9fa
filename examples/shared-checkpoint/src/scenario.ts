/**
 * The whole scenario, runnable from a script or a test: seed the source chat, start two worker
 * processes (session1 and session2), SIGKILL one halfway while it holds a lock and restart it,
 * stall the other soon after (SIGSTOP) past its lease so its lock is taken over, then wait until the source is
 * drained and check that the target holds every message exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { createCheckpoint, type Checkpoint, type CheckpointItem, type CheckpointStats } from 'multisession';
import { sqliteCheckpoint } from 'multisession/sqlite';
import { parse } from './parse.js';
import { openChats, readChats, seedSource } from './chats.js';
import type { LoggedEvent } from './worker.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SESSIONS = ['session1', 'session2'] as const;

export const scenarioOptionsSchema = z.object({
  /** An empty (or absent) folder for the run's files; it is kept afterwards for inspection. */
  dir: z.string().min(1, 'a folder for the run (it must be empty or absent)'),
  /** Messages in the source chat. */
  messages: z.number().int().min(20, 'seed at least 20 messages').max(1_000_000).default(2_000),
  /** Lease of each lock: how long a dead or stalled worker's lock stays taken. */
  leaseMs: z.number().int().min(200).max(60_000).default(2_000),
  /** Simulated network time of each forward (a lock is held meanwhile). */
  sendDelayMs: z.number().int().min(0).max(1_000).default(2),
  /** Also stall the surviving worker past its lease (SIGSTOP … SIGCONT), to show LeaseLostError. */
  stall: z.boolean().default(true),
  /** Give up (and report a violation) after this long. */
  timeoutMs: z.number().int().min(1_000).default(180_000),
  /** Progress lines (default: none). */
  log: z.custom<(line: string) => void>((v) => typeof v === 'function', 'a function (line) => void').optional(),
  /** Stops the run: the workers are killed (a stopped one is continued first) and the call rejects. */
  signal: z.instanceof(AbortSignal).optional(),
});
export type ScenarioOptions = z.input<typeof scenarioOptionsSchema>;

export interface WorkerSummary {
  session: string;
  /** Processes that ran this session (the killed one and its restart count twice). */
  processes: number;
  /** Locks obtained (claimKey returned a lease). */
  claimed: number;
  /** Of those, locks taken over from a holder whose lease ran out. */
  takeovers: number;
  /** claimKey answered null: done already or held by the other session. */
  skipped: number;
  posted: number;
  /** Took over a post an earlier lease had made (it died or stalled before completing). */
  edited: number;
  /** The target refused the write: a larger token had already written that message. */
  refused: number;
  completed: number;
  /** `complete()` raised LeaseLostError: the lease had been taken over; nothing was changed. */
  leaseLost: number;
  errors: number;
  /** Messages of the final target written by this session. */
  targetMessages: number;
}

export interface ScenarioReport {
  dir: string;
  messages: number;
  leaseMs: number;
  elapsedMs: number;
  workers: WorkerSummary[];
  kill: { session: string; pid: number; doneBefore: number; heldKeys: string[]; restartedPid: number } | null;
  stall: { session: string; pid: number; doneBefore: number; heldKeys: string[]; stoppedMs: number } | null;
  checkpoint: CheckpointStats;
  target: { rows: number; distinctMessages: number; duplicates: number; missing: number; edited: number };
  /** Empty when every check passed. */
  violations: string[];
}

interface Running {
  session: string;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the worker's session is ready and it waits for `go()`. */
  ready: Promise<void>;
  go(): void;
  stderr: () => string;
}

function spawnWorker(dir: string, session: string, o: { leaseMs: number; sendDelayMs: number }): Running {
  const child = spawn(
    process.execPath,
    [
      '--import', 'tsx', WORKER, '--dir', dir, '--session', session, '--wait-for-go',
      '--lease-ms', String(o.leaseMs), '--send-delay-ms', String(o.sendDelayMs),
    ],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  );
  const ready = new Promise<void>((res, rej) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.split('\n').includes('ready')) res();
    });
    void exited.then(({ code, signal }) => rej(new Error(`${session} exited before its session was ready (${code ?? signal}): ${err}`)));
  });
  ready.catch(() => {});
  child.stdin!.on('error', () => {}); // a killed worker's stdin
  return { session, child, exited, ready, go: () => child.stdin!.write('go\n'), stderr: () => err };
}

/** True when nobody holds the write lock of the file (a worker stopped inside a transaction would). */
function writeLockFree(db: Database.Database): boolean {
  try {
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
    return true;
  } catch {
    return false;
  }
}

async function processingOf(cp: Checkpoint, ownerPrefix: string): Promise<CheckpointItem[]> {
  const out: CheckpointItem[] = [];
  for (let cursor: string | null = null; ; ) {
    const page = await cp.list({ status: 'processing', limit: 1000, cursor });
    out.push(...page.items.filter((i) => i.owner === ownerPrefix && (i.leaseExpiresAt ?? 0) > Date.now()));
    cursor = page.cursor;
    if (!cursor) return out;
  }
}

/**
 * Freezes a worker at a moment it holds a live lock and no SQLite write lock (so the other worker
 * is never blocked by it): SIGSTOP, look, SIGCONT and try again a few ms later if not. Gives up
 * (leaving it stopped, holding nothing) at `deadline` or when nothing is left to hold.
 */
async function stopWhileHolding(
  w: Running,
  cp: Checkpoint,
  probes: Database.Database[],
  o: { deadline: number; messages: number; signal?: AbortSignal | undefined },
): Promise<CheckpointItem[]> {
  const owner = `${w.session}:${w.child.pid}`;
  for (;;) {
    o.signal?.throwIfAborted();
    w.child.kill('SIGSTOP');
    await sleep(5);
    const held = await processingOf(cp, owner);
    if (held.length > 0 && probes.every(writeLockFree)) return held;
    // Items are created by the first claimKey, so compare with the source, not stats().total.
    if (Date.now() > o.deadline || (await cp.stats()).done >= o.messages) return [];
    w.child.kill('SIGCONT');
    await sleep(2 + randomInt(10));
  }
}

function prepareDir(dir: string, messages: number): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new Error(`The folder ${dir} is not empty; pass an empty or new folder for the run.`);
  }
  mkdirSync(join(dir, 'shared'), { recursive: true });
  const chats = openChats(join(dir, 'shared', 'chats.db'));
  try {
    seedSource(chats, messages);
  } finally {
    chats.close();
  }
  SESSIONS.forEach((session, i) => {
    mkdirSync(join(dir, session), { recursive: true });
    // The seed's per-session .env: this account's credentials, plus the key that seals them at rest.
    const file = {
      credentials: { apiId: 100_000 + i, apiHash: randomBytes(16).toString('hex'), phone: `+551199999000${i}` },
      secretKey: randomBytes(32).toString('base64'),
    };
    writeFileSync(join(dir, session, 'session.json'), `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  });
}

function readEvents(dir: string): LoggedEvent[] {
  const events: LoggedEvent[] = [];
  for (const session of SESSIONS) {
    const file = join(dir, session, 'clone.log');
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        events.push(JSON.parse(line) as LoggedEvent);
      } catch {
        // the last line of a SIGKILLed worker may be cut short
      }
    }
  }
  return events;
}

/** Checks the finished run from its files alone: checkpoint, target chat and worker logs. */
export async function verifyRun(dir: string, messages: number): Promise<Pick<ScenarioReport, 'checkpoint' | 'target' | 'violations'>> {
  const violations: string[] = [];
  const storage = sqliteCheckpoint({ filename: join(dir, 'shared', 'checkpoint.db') });
  const cp = createCheckpoint({ storage, stream: 'messages' });
  try {
    const stats = await cp.stats();
    if (stats.done !== messages || stats.total !== messages) {
      violations.push(`checkpoint: ${stats.done} of ${messages} messages done (${JSON.stringify(stats)})`);
    }
    const finalToken = new Map<number, number>();
    for (let cursor: string | null = null; ; ) {
      const page = await cp.list({ limit: 1000, cursor });
      for (const item of page.items) finalToken.set(Number(item.key.slice('msg:'.length)), item.token);
      cursor = page.cursor;
      if (!cursor) break;
    }

    const { source, target } = readChats(join(dir, 'shared', 'chats.db'));
    if (source.length !== messages) violations.push(`source chat has ${source.length} messages, want ${messages}`);
    const text = new Map(source.map((m) => [m.id, m.text]));
    const bySource = new Map<number, typeof target>();
    for (const row of target) {
      const list = bySource.get(row.source_id) ?? [];
      list.push(row);
      bySource.set(row.source_id, list);
    }
    let duplicates = 0;
    let missing = 0;
    for (const m of source) {
      const rows = bySource.get(m.id) ?? [];
      if (rows.length === 0) {
        missing += 1;
        if (missing <= 5) violations.push(`message ${m.id} is missing from the target`);
      } else if (rows.length > 1) {
        duplicates += rows.length - 1;
        if (duplicates <= 5) violations.push(`message ${m.id} is in the target ${rows.length} times (target ids ${rows.map((r) => r.id).join(', ')})`);
      }
      // The completing lease holds the largest token ever issued for the message; its write is the one kept.
      for (const row of rows) {
        if (row.token !== finalToken.get(m.id)) {
          violations.push(`target message ${row.id} (source ${m.id}) carries token ${row.token}, but the lease that completed it had ${finalToken.get(m.id)}`);
        }
        if (row.text !== m.text) violations.push(`target message ${row.id} has the wrong text for source ${m.id}`);
      }
    }
    if (missing > 5) violations.push(`… ${missing} messages missing in all`);
    if (duplicates > 5) violations.push(`… ${duplicates} duplicate posts in all`);
    for (const id of bySource.keys()) if (!text.has(id)) violations.push(`target holds message ${id}, which is not in the source`);

    for (const e of readEvents(dir)) {
      if (e.event === 'violation') violations.push(`${e.session} (pid ${e.pid}): ${e.key} token ${e.token}: ${e.detail}`);
    }
    return {
      checkpoint: stats,
      target: {
        rows: target.length,
        distinctMessages: bySource.size,
        duplicates,
        missing,
        edited: target.filter((r) => r.edits > 0).length,
      },
      violations,
    };
  } finally {
    await storage.close();
  }
}

function summarise(dir: string): WorkerSummary[] {
  const events = readEvents(dir);
  const { target } = readChats(join(dir, 'shared', 'chats.db'));
  return SESSIONS.map((session): WorkerSummary => {
    const mine = events.filter((e) => e.session === session);
    const count = (pred: (e: LoggedEvent) => boolean) => mine.filter(pred).length;
    return {
      session,
      processes: new Set(mine.map((e) => e.pid)).size,
      claimed: count((e) => e.event === 'claimed'),
      takeovers: count((e) => e.event === 'claimed' && e.takeover),
      skipped: count((e) => e.event === 'skipped'),
      posted: count((e) => e.event === 'forwarded' && e.outcome === 'posted'),
      edited: count((e) => e.event === 'forwarded' && e.outcome === 'edited'),
      refused: count((e) => e.event === 'forwarded' && e.outcome === 'refused'),
      completed: count((e) => e.event === 'completed'),
      leaseLost: count((e) => e.event === 'lease-lost'),
      errors: count((e) => e.event === 'error'),
      targetMessages: target.filter((r) => r.session_id === session).length,
    };
  });
}

/**
 * Runs the scenario and checks it. Resolves with the report (its `violations` list is empty when
 * every check passed); rejects only when the scenario could not be run at all.
 */
export async function runScenario(input: ScenarioOptions): Promise<ScenarioReport> {
  const o = parse(scenarioOptionsSchema, input, 'scenario options');
  const dir = resolve(o.dir);
  const log = o.log ?? (() => {});
  const started = Date.now();
  const deadline = started + o.timeoutMs;
  const violations: string[] = [];
  prepareDir(dir, o.messages);
  log(`seeded ${o.messages} messages in ${join(dir, 'shared', 'chats.db')}`);

  const storage = sqliteCheckpoint({ filename: join(dir, 'shared', 'checkpoint.db') });
  const cp = createCheckpoint({ storage, stream: 'messages' });
  await cp.stats(); // creates the checkpoint tables before the workers race to
  const probes = [join(dir, 'shared', 'checkpoint.db'), join(dir, 'shared', 'chats.db')].map(
    // A short busy timeout: the running worker's transactions last microseconds; a stopped one's forever.
    (f) => new Database(f, { timeout: 300 }),
  );
  const workers = new Map<string, Running>();
  const all: Running[] = [];
  const start = (session: string) => {
    const w = spawnWorker(dir, session, o);
    workers.set(session, w);
    all.push(w);
    return w;
  };
  const done = async () => (await cp.stats()).done;
  const waitDone = async (n: number) => {
    while ((await done()) < n) {
      o.signal?.throwIfAborted();
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} messages to be done`);
      for (const w of workers.values()) {
        if (w.child.exitCode !== null) throw new Error(`${w.session} exited early (${w.child.exitCode}): ${w.stderr()}`);
      }
      await sleep(10);
    }
  };

  let kill: ScenarioReport['kill'] = null;
  let stall: ScenarioReport['stall'] = null;
  try {
    // Both sessions come up (restore or create, log in), then start copying at the same moment.
    for (const s of SESSIONS) start(s);
    await Promise.race([
      Promise.all([...workers.values()].map((w) => w.ready)),
      new Promise((_, reject) => {
        if (o.signal?.aborted) reject(o.signal.reason);
        o.signal?.addEventListener('abort', () => reject(o.signal!.reason), { once: true });
      }),
    ]);
    for (const w of workers.values()) w.go();
    log(`started ${SESSIONS.map((s) => `${s} (pid ${workers.get(s)!.child.pid})`).join(' and ')}`);

    // Halfway: SIGKILL session1 while it holds a lock, then start it again.
    await waitDone(Math.floor(o.messages / 2));
    const victim = workers.get('session1')!;
    const held = await stopWhileHolding(victim, cp, probes, { deadline, messages: o.messages, signal: o.signal });
    const doneBefore = await done();
    victim.child.kill('SIGKILL');
    await victim.exited;
    const again = start('session1');
    again.go(); // no need to wait: it starts copying as soon as its session is restored
    kill = { session: 'session1', pid: victim.child.pid!, doneBefore, heldKeys: held.map((i) => i.key), restartedPid: again.child.pid! };
    log(`SIGKILLed session1 (pid ${kill.pid}) at ${doneBefore}/${o.messages} done, holding ${kill.heldKeys.join(', ') || 'no lock'}; restarted as pid ${kill.restartedPid}`);

    // Soon after (5/8 done, while session1 may still be coming back): freeze session2 while it
    // holds a lock, past its lease, until session1 has taken its locks over.
    if (o.stall) {
      await waitDone(Math.floor((o.messages * 5) / 8));
      const w = workers.get('session2')!;
      const heldNow = await stopWhileHolding(w, cp, probes, { deadline, messages: o.messages, signal: o.signal });
      const stoppedAt = Date.now();
      const before = await done();
      const tokens = new Map(heldNow.map((i) => [i.key, i.token]));
      log(`SIGSTOPped session2 (pid ${w.child.pid}) at ${before}/${o.messages} done, holding ${[...tokens.keys()].join(', ') || 'no lock'}`);
      for (;;) {
        const items = await Promise.all([...tokens.keys()].map((k) => cp.get(k)));
        if (items.every((i) => i && i.token > tokens.get(i.key)!)) break;
        o.signal?.throwIfAborted();
        if (Date.now() > Math.min(deadline, stoppedAt + 10 * o.leaseMs + 30_000)) {
          violations.push(`the locks session2 held while stalled were not taken over: ${[...tokens.keys()].join(', ')}`);
          break;
        }
        await sleep(20);
      }
      w.child.kill('SIGCONT');
      stall = { session: 'session2', pid: w.child.pid!, doneBefore: before, heldKeys: [...tokens.keys()], stoppedMs: Date.now() - stoppedAt };
      log(`SIGCONTed session2 after ${stall.stoppedMs} ms${tokens.size ? ': its locks were taken over meanwhile' : ''}`);
    }

    // Drained: every message done and both workers gone.
    await waitDone(o.messages);
    for (const w of workers.values()) {
      const timer = new AbortController();
      o.signal?.addEventListener('abort', () => timer.abort(), { once: true });
      const exit = await Promise.race([
        w.exited,
        sleep(Math.max(deadline - Date.now(), 0), null, { signal: timer.signal }).catch(() => null),
      ]);
      timer.abort();
      o.signal?.throwIfAborted();
      if (!exit) violations.push(`${w.session} (pid ${w.child.pid}) did not exit after the source was drained`);
      else if (exit.code !== 0) violations.push(`${w.session} (pid ${w.child.pid}) exited with ${exit.code ?? exit.signal}: ${w.stderr()}`);
    }
    log(`drained in ${Date.now() - started} ms`);
  } finally {
    for (const w of all) {
      if (w.child.exitCode === null && w.child.signalCode === null) {
        w.child.kill('SIGCONT');
        w.child.kill('SIGKILL');
        await w.exited;
      }
    }
    for (const p of probes) p.close();
    await storage.close();
  }

  const checked = await verifyRun(dir, o.messages);
  return {
    dir,
    messages: o.messages,
    leaseMs: o.leaseMs,
    elapsedMs: Date.now() - started,
    workers: summarise(dir),
    kill,
    stall,
    checkpoint: checked.checkpoint,
    target: checked.target,
    violations: [...violations, ...checked.violations],
  };
}
