/**
 * The example server's command line: `npm start` runs this file.
 *
 *   node --import tsx examples/express-server/src/main.ts [--port 8080] [--host 127.0.0.1]
 *     [--data-dir ./.data] [--db <sqlite file | postgres://…>] [--pg-schema name] [--max-sessions N] [--api-key KEY]
 *     [--cors-origin URL]… [--rate-limit N] [--audit-retention-days N] [--log-level info]
 *     [--node-id ID] [--lease-ttl-ms N] [--max-running N] [--allow-private-webhooks]
 *
 * Each flag has an environment equivalent (PORT, HOST, MULTISESSION_DATA_DIR, MULTISESSION_DB, MULTISESSION_PG_SCHEMA,
 * MULTISESSION_MAX_SESSIONS, MULTISESSION_API_KEY, MULTISESSION_CORS_ORIGINS,
 * MULTISESSION_RATE_LIMIT, MULTISESSION_AUDIT_RETENTION_DAYS, MULTISESSION_LOG_LEVEL, MULTISESSION_NODE_ID,
 * MULTISESSION_LEASE_TTL_MS, MULTISESSION_MAX_RUNNING, MULTISESSION_ALLOW_PRIVATE_WEBHOOKS=1); flags win.
 * It prints `listening on http://host:port` once it serves (tests read the port from that line).
 */
import { parseArgs } from 'node:util';
import type { Logger } from 'multisession';
import { createServer } from './server.js';

const USAGE = `Usage: npm start -- [options]

  --port <n>            TCP port (0: any free port)         PORT               default 8080
  --host <addr>         interface to bind                   HOST               default 127.0.0.1
  --data-dir <dir>      secret key, API key hashes, SQLite  MULTISESSION_DATA_DIR  default ./.data
  --db <path|url>       SQLite file or postgres:// URL      MULTISESSION_DB    default <data-dir>/multisession.db
  --pg-schema <name>    PostgreSQL schema for --db postgres  MULTISESSION_PG_SCHEMA   default multisession
  --max-sessions <n>    most sessions that may exist        MULTISESSION_MAX_SESSIONS
  --api-key <key>       an admin API key                    MULTISESSION_API_KEY
  --cors-origin <url>   allow a browser origin (repeat)     MULTISESSION_CORS_ORIGINS (comma-separated)
  --checkpoint-stream <name>  always report this checkpoint stream in /metrics (repeat)
                                                            MULTISESSION_CHECKPOINT_STREAMS (comma-separated)
  --rate-limit <n>      requests per minute per key         MULTISESSION_RATE_LIMIT  default 600
  --audit-retention-days <n>  days audit entries are kept (0: for ever)
                                                            MULTISESSION_AUDIT_RETENTION_DAYS  default 90
  --log-level <level>   debug | info | warn | error         MULTISESSION_LOG_LEVEL   default info
  --node-id <id>        this process's cluster node id      MULTISESSION_NODE_ID     default random
                        ([A-Za-z0-9_.-]{1,64}; one per process on the same --db)
  --lease-ttl-ms <n>    ownership lease TTL (>= 1000)        MULTISESSION_LEASE_TTL_MS  default 15000
  --max-running <n>     most sessions this node runs        MULTISESSION_MAX_RUNNING
  --allow-private-webhooks  let webhooks go to loopback, private and link-local addresses
                                                            MULTISESSION_ALLOW_PRIVATE_WEBHOOKS=1
  --help`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function intOption(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer of at least ${min}; got "${text}".`);
  return n;
}

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
type Level = (typeof LEVELS)[number];

function consoleLogger(min: Level): Logger {
  const rank = (l: Level) => LEVELS.indexOf(l);
  const write = (level: Level) => (obj: object, msg?: string) => {
    if (rank(level) < rank(min)) return;
    process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${msg ?? ''} ${JSON.stringify(obj)}\n`);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'data-dir': { type: 'string' },
        db: { type: 'string' },
        'pg-schema': { type: 'string' },
        'max-sessions': { type: 'string' },
        'api-key': { type: 'string' },
        'cors-origin': { type: 'string', multiple: true },
        'checkpoint-stream': { type: 'string', multiple: true },
        'rate-limit': { type: 'string' },
        'audit-retention-days': { type: 'string' },
        'log-level': { type: 'string' },
        'node-id': { type: 'string' },
        'lease-ttl-ms': { type: 'string' },
        'max-running': { type: 'string' },
        'allow-private-webhooks': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  // Empty environment variables count as unset.
  const env = Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== undefined && v !== ''));
  const level = (values['log-level'] ?? env.MULTISESSION_LOG_LEVEL ?? 'info') as Level;
  if (!LEVELS.includes(level)) fail(`--log-level must be one of ${LEVELS.join(', ')}; got "${level}".`);
  const apiKey = values['api-key'] ?? env.MULTISESSION_API_KEY;
  if (apiKey !== undefined && apiKey.length < 16) fail('--api-key must be at least 16 characters long.');
  const cors = values['cors-origin'] ?? env.MULTISESSION_CORS_ORIGINS?.split(',').map((s) => s.trim()).filter(Boolean);
  const streams = values['checkpoint-stream'] ?? env.MULTISESSION_CHECKPOINT_STREAMS?.split(',').map((s) => s.trim()).filter(Boolean);
  const rate = intOption('rate-limit', values['rate-limit'] ?? env.MULTISESSION_RATE_LIMIT, 1);
  const retention = intOption('audit-retention-days', values['audit-retention-days'] ?? env.MULTISESSION_AUDIT_RETENTION_DAYS, 0);
  const maxSessions = intOption('max-sessions', values['max-sessions'] ?? env.MULTISESSION_MAX_SESSIONS, 1);
  // Ranges and the node id's form are checked by the manager (a ValidationError naming the field).
  const nodeId = values['node-id'] ?? env.MULTISESSION_NODE_ID;
  const leaseTtlMs = intOption('lease-ttl-ms', values['lease-ttl-ms'] ?? env.MULTISESSION_LEASE_TTL_MS, 0);
  const maxRunning = intOption('max-running', values['max-running'] ?? env.MULTISESSION_MAX_RUNNING, 0);
  const cluster = {
    ...(nodeId !== undefined ? { nodeId } : {}),
    ...(leaseTtlMs !== undefined ? { leaseTtlMs } : {}),
    ...(maxRunning !== undefined ? { maxRunning } : {}),
  };

  const server = await createServer({
    port: intOption('port', values.port ?? env.PORT, 0) ?? 8080,
    host: values.host ?? env.HOST ?? '127.0.0.1',
    dataDir: values['data-dir'] ?? env.MULTISESSION_DATA_DIR ?? '.data',
    ...((values.db ?? env.MULTISESSION_DB) ? { db: values.db ?? env.MULTISESSION_DB } : {}),
    ...((values['pg-schema'] ?? env.MULTISESSION_PG_SCHEMA) ? { pgSchema: values['pg-schema'] ?? env.MULTISESSION_PG_SCHEMA } : {}),
    ...(maxSessions ? { maxSessions } : {}),
    ...(apiKey ? { apiKey } : {}),
    ...(cors && cors.length ? { corsOrigins: cors } : {}),
    ...(streams && streams.length ? { checkpointStreams: streams } : {}),
    ...(rate ? { rateLimit: { max: rate, windowMs: 60_000 } } : {}),
    ...(retention !== undefined ? { auditRetentionDays: retention === 0 ? null : retention } : {}),
    ...(Object.keys(cluster).length ? { cluster } : {}),
    ...(values['allow-private-webhooks'] || env.MULTISESSION_ALLOW_PRIVATE_WEBHOOKS === '1' ? { webhooks: { allowPrivateTargets: true } } : {}),
    logger: consoleLogger(level),
  });

  const sessions = await server.manager.statuses();
  process.stdout.write(
    `multisession example server: ${sessions.length} session(s), storage ${server.storage.kind}, node ${server.manager.nodeId}\n` +
      `listening on ${server.url}\n` +
      `  web page  ${server.url}/\n  API docs  ${server.url}/api-docs\n`,
  );

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting now.\n`);
      process.exit(130);
    }
    stopping = true;
    process.stdout.write(`${signal}: stopping sessions and closing storage…\n`);
    const force = setTimeout(() => {
      process.stderr.write('Shutdown took longer than 30 s; exiting.\n');
      process.exit(1);
    }, 30_000);
    force.unref();
    server.close().then(
      () => {
        process.stdout.write('Stopped. The next start restores the running sessions.\n');
        process.exitCode = 0;
      },
      (err: unknown) => {
        process.stderr.write(`Shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`multisession example server failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
