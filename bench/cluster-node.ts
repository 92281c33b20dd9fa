/**
 * One cluster node in its own process, for `npm run bench:cluster` (bench/cluster.ts): like
 * test/fixtures/cluster/node-child.ts, plus a bulk create and readiness counts for 10,000 sessions.
 *
 * argv[2]: JSON { kind: 'sqlite'|'postgres', where: filename|schema, nodeId, ttlMs, changePollMs?, probeLog?, deferOpen? }
 * The `probe` adapter tracks the connections this process runs; with `probeLog` it also appends
 * one JSON line per start and stop (synchronously, so a SIGKILL loses nothing):
 * { ev, session, node, pid, at }.
 * Commands arrive as JSON lines on stdin, each answered by a JSON line on stdout with its `seq`:
 *   { op: 'create', ids }                 create and start each (one at a time)
 *   { op: 'bulk', prefix, from, count }   create + start in batches of 500 (Promise.all); answers { ms }
 *   { op: 'running' }                     ids whose connection runs here
 *   { op: 'counts' }                      { running, ready, stallMs }: connections here, sessions ready
 *                                         here, the longest event-loop stall since the node opened
 *   { op: 'nodes' }                       manager.nodes()
 *   { op: 'close' }                       closes the manager and exits
 * The first line is { ready: true, nodeId } once the manager is open. With `deferOpen` the process
 * loads, writes { loaded: true } and opens the manager only at { op: 'open' } (a replacement node
 * kept ready to join). When stdin ends (the bench went away) the process exits.
 */
import { appendFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { defineAdapter, SessionManager } from 'multisession';
import { postgresStorage } from 'multisession/postgres';
import { sqliteStorage } from 'multisession/sqlite';

interface Options {
  kind: 'sqlite' | 'postgres';
  where: string;
  nodeId: string;
  ttlMs: number;
  changePollMs?: number;
  probeLog?: string;
  deferOpen?: boolean;
}
const opts = JSON.parse(process.argv[2]!) as Options;
const url = process.env.MULTISESSION_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const secretKey = Buffer.alloc(32, 7).toString('base64');
const running = new Set<string>();
const ready = new Set<string>();
// The longest the event loop went without turning: the node's timers (its heartbeat) wait that long.
const stalls = monitorEventLoopDelay({ resolution: 20 });
stalls.enable();

const probe = defineAdapter({
  name: 'probe',
  credentials: z.object({}).optional(),
  config: z.object({}).default({}),
  connect(ctx) {
    const mark = (ev: string) => {
      if (opts.probeLog) appendFileSync(opts.probeLog, `${JSON.stringify({ ev, session: ctx.id, node: opts.nodeId, pid: process.pid, at: Date.now() })}\n`);
    };
    return {
      async start() {
        mark('start');
        running.add(ctx.id);
      },
      async stop() {
        running.delete(ctx.id);
        mark('stop');
      },
      async health() {
        return { status: 'healthy' as const };
      },
      async send(action) {
        return { node: opts.nodeId, echo: action };
      },
    };
  },
});

const storage = opts.kind === 'postgres' ? postgresStorage({ connectionString: url }, { schema: opts.where }) : sqliteStorage({ filename: opts.where });
const manager = new SessionManager({
  storage,
  secretKey,
  adapters: [probe],
  cluster: { nodeId: opts.nodeId, leaseTtlMs: opts.ttlMs, ...(opts.changePollMs ? { changePollMs: opts.changePollMs } : {}) },
  health: { intervalMs: 60_000 },
  logBufferSize: 10,
  maxSessions: 50_000,
});
// Ready: every node emits every session's `session.ready` (relayed through the store), so `counts`
// counts those whose connection runs here; a local state change away from ready (another node's
// states arrive with the reason `on node <id>`) ends it.
manager.on('session.ready', (e) => ready.add(e.id));
manager.on('session.state', (e) => {
  if (e.to !== 'ready' && !e.reason.startsWith('on node ')) ready.delete(e.id);
});
manager.on('manager.error', (e) => process.stderr.write(`manager.error: ${e.error.message}\n`));

const reply = (data: unknown) => process.stdout.write(`${JSON.stringify(data)}\n`);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
if (opts.deferOpen) {
  reply({ loaded: true });
  if ((await lines.next()).done) process.exit(0); // the bench went away before it was needed
}
try {
  await manager.open();
} catch (err) {
  reply({ ready: false, error: (err as Error).message, code: (err as { code?: string }).code });
  process.exit(3);
}
reply({ ready: true, nodeId: manager.nodeId });

async function createAndStart(id: string): Promise<void> {
  await manager.create({ id, platform: 'probe' });
  await manager.start(id);
}

for await (const line of { [Symbol.asyncIterator]: () => lines }) {
  const cmd = JSON.parse(line) as { op: string; seq: number; ids?: string[]; prefix?: string; from?: number; count?: number };
  try {
    switch (cmd.op) {
      case 'create':
        for (const id of cmd.ids!) await createAndStart(id);
        reply({ seq: cmd.seq, ok: true });
        break;
      case 'bulk': {
        const t0 = performance.now();
        const end = cmd.from! + cmd.count!;
        for (let i = cmd.from!; i < end; i += 500) {
          const ids = Array.from({ length: Math.min(500, end - i) }, (_, j) => `${cmd.prefix}${String(i + j).padStart(6, '0')}`);
          await Promise.all(ids.map(createAndStart));
        }
        reply({ seq: cmd.seq, ok: true, ms: performance.now() - t0 });
        break;
      }
      case 'nodes':
        reply({ seq: cmd.seq, ok: true, nodes: await manager.nodes() });
        break;
      case 'running':
        reply({ seq: cmd.seq, ok: true, running: [...running] });
        break;
      case 'counts':
        // Ready here: every node emits every session's session.ready (relayed), so count only those whose connection runs here.
        reply({ seq: cmd.seq, ok: true, running: running.size, ready: [...ready].filter((id) => running.has(id)).length, stallMs: stalls.max / 1e6 });
        break;
      case 'close':
        await manager.close();
        reply({ seq: cmd.seq, ok: true });
        process.exit(0);
    }
  } catch (err) {
    reply({ seq: cmd.seq, ok: false, error: (err as Error).message, code: (err as { code?: string }).code });
  }
}
// stdin ended: the bench is gone.
process.exit(0);
