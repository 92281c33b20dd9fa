import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer as createHttpServer, type Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { SessionManager, type Logger, type SessionManagerOptions, type StorageDriver } from 'multisession';
import { sqliteStorage } from 'multisession/sqlite';
import { postgresStorage } from 'multisession/postgres';
import { simulatedAdapter, type SimulatedAdapterOptions } from 'multisession/testing';
import { createWebhooks, type CreateWebhooksOptions, type Webhooks } from 'multisession/webhooks';
import { discordBot } from 'multisession/adapters/discord-bot';
import { openaiChat } from 'multisession/adapters/openai-chat';
import { telegramBot } from 'multisession/adapters/telegram-bot';
import { ApiKeyStore } from './api-keys.js';
import { createApp, type AppHandle, type AppOptions } from './app.js';
import type { RateLimitOptions } from './rate-limit.js';

export interface ServerOptions {
  /** TCP port; 0 picks a free one. Default 8080. */
  port?: number;
  /** Interface to bind. Default 127.0.0.1 (use 0.0.0.0 to listen on every interface). */
  host?: string;
  /** Folder for the SQLite file, the secret key and the API key hashes. Default `./.data`. */
  dataDir?: string;
  /** A SQLite file path or a `postgres://` URL. Default `<dataDir>/multisession.db`. */
  db?: string;
  /** PostgreSQL schema when `db` is a postgres URL. Default `multisession`. */
  pgSchema?: string;
  maxSessions?: number;
  /** An admin API key given by the operator. Without one (and none stored) a key is created. */
  apiKey?: string;
  /** Credential secret key; else MULTISESSION_SECRET_KEY; else `<dataDir>/secret.key` (created once). */
  secretKey?: string;
  rateLimit?: RateLimitOptions;
  bodyLimit?: string;
  corsOrigins?: string[];
  checkpointStreams?: string[];
  /** Options of the `demo` simulated adapter (default: QR login, remembered across restarts). */
  demo?: SimulatedAdapterOptions;
  /** Cluster settings of this node (`nodeId`, `leaseTtlMs`, `maxRunning` …); see docs/cluster.md. */
  cluster?: SessionManagerOptions['cluster'];
  /** Extra SessionManager options (health, restart, timeouts …). */
  manager?: Partial<Omit<SessionManagerOptions, 'storage' | 'adapters' | 'secretKey' | 'maxSessions'>>;
  /** Where the server says what it did (new keys, listening). Default: stdout. */
  print?: (line: string) => void;
  logger?: Logger;
  sseHeartbeatMs?: number;
  /** See {@link AppOptions.sseMaxBufferBytes}. */
  sseMaxBufferBytes?: number;
  /** See {@link AppOptions.sseMaxStreamsPerKey}. */
  sseMaxStreamsPerKey?: number;
  /** See {@link AppOptions.jsonMaxDepth}. */
  jsonMaxDepth?: number;
  /** See {@link AppOptions.credentialConflicts}. */
  credentialConflicts?: RateLimitOptions;
  /** Options of the webhooks (`allowPrivateTargets`, `retryScheduleMs` …); see docs/webhooks.md. */
  webhooks?: Partial<Omit<CreateWebhooksOptions, 'storage' | 'manager' | 'secretKey'>>;
  /** Days audit entries are kept (null: for ever). Default 90. `manager.audit` wins when given. */
  auditRetentionDays?: number | null;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly manager: SessionManager;
  readonly storage: StorageDriver;
  readonly keys: ApiKeyStore;
  readonly webhooks: Webhooks;
  readonly http: Server;
  /** The admin key created on this start (first start without --api-key), else null. */
  readonly createdAdminKey: string | null;
  /** Graceful shutdown: stops taking requests, ends event streams, closes the manager and storage. */
  close(): Promise<void>;
}

const VERSION = '0.1.0';

/** The app options given in the server options (undefined ones left out). */
function pick<K extends keyof AppOptions & keyof ServerOptions>(options: ServerOptions, names: K[]): Partial<AppOptions> {
  return Object.fromEntries(names.filter((n) => options[n] !== undefined).map((n) => [n, options[n]])) as Partial<AppOptions>;
}

export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/** Reads the secret key: explicit, environment, or the data folder's file (created on first start). */
function resolveSecretKey(options: ServerOptions, dataDir: string, print: (l: string) => void): string {
  if (options.secretKey) return options.secretKey;
  const env = process.env.MULTISESSION_SECRET_KEY;
  if (env) return env;
  const file = join(dataDir, 'secret.key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const key = randomBytes(32).toString('base64');
  writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  print(`Created a secret key for stored credentials in ${file} (mode 0600). Back it up: without it the stored credentials cannot be read.`);
  return key;
}

/**
 * The SQLite file holds sealed credentials, auth state and the audit log: it is made readable by
 * this user only (mode 0600) wherever it is, before SQLite opens it. SQLite gives its `-wal` and
 * `-shm` files the mode of the database file; files left by an older start are tightened too.
 */
function privateFile(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    if (existsSync(f)) chmodSync(f, 0o600);
  }
}

export function createStorage(db: string, pgSchema = 'multisession'): StorageDriver {
  if (isPostgresUrl(db)) return postgresStorage({ connectionString: db }, { schema: pgSchema });
  const file = resolve(db);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  privateFile(file);
  return sqliteStorage({ filename: file });
}

/** Where Telegram posts the updates of webhook-mode `telegram-bot` sessions (their `webhookUrl` ends with it). */
export const TELEGRAM_WEBHOOK_PATH = '/webhooks/telegram';

/**
 * Starts the example server: storage, a SessionManager with the `demo` adapter and the built-in
 * ones (`telegram-bot`, `discord-bot`: a real bot from its token; `openai-chat`: any
 * OpenAI-compatible back-end from its base URL and key), the HTTP app.
 * Resolves once it listens; sessions whose desired state is `running` are being restored.
 *
 * @example
 * ```ts
 * const server = await createServer({ port: 0, dataDir: '/tmp/ms' });
 * console.log(server.url, server.createdAdminKey);
 * await server.close();
 * ```
 */
export async function createServer(options: ServerOptions = {}): Promise<RunningServer> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const dataDir = resolve(options.dataDir ?? '.data');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const db = options.db ?? join(dataDir, 'multisession.db');
  const secretKey = resolveSecretKey(options, dataDir, print);

  const keys = new ApiKeyStore({ file: join(dataDir, 'api-keys.json'), adminKey: options.apiKey });
  let createdAdminKey: string | null = null;
  if (!keys.hasAdmin) {
    createdAdminKey = keys.create({ name: 'admin', role: 'admin' }).key;
    print(`Created an admin API key (shown only now; only its hash is stored in ${join(dataDir, 'api-keys.json')}):`);
    print(`  ${createdAdminKey}`);
  } else if (!options.apiKey) {
    print(`API keys: hashes in ${join(dataDir, 'api-keys.json')} (the admin key was printed on the first start; delete that file to get a new one).`);
  }

  const storage = createStorage(db, options.pgSchema);
  const demo = simulatedAdapter({
    name: 'demo',
    description:
      'Demo platform (the simulated adapter): logs in with a QR code, remembers the login across restarts, echoes what you send. Any token works; "Simulate scan" stands in for a phone.',
    auth: 'qr',
    remember: true,
    rotateQr: true,
    // Sent actions come back as inbound messages, so the page shows traffic both ways.
    echo: true,
    ...(options.demo ?? {}),
  });
  // A real platform: create a session with a bot token from @BotFather and it long-polls Telegram
  // (or, with mode webhook and a public https webhookUrl ending in TELEGRAM_WEBHOOK_PATH, gets
  // Telegram's posts there). config.apiRoot points it at another Bot API server.
  const telegram = telegramBot();
  const retentionDays = options.auditRetentionDays === undefined ? 90 : options.auditRetentionDays;
  const manager = new SessionManager({
    audit: { retentionMs: retentionDays === null ? null : retentionDays * 24 * 60 * 60_000 },
    ...(options.manager ?? {}),
    storage,
    // Real platforms: `discord-bot` (config.apiRoot) and `openai-chat` (config.baseUrl) point at
    // other servers the same way.
    adapters: [demo, telegram, discordBot(), openaiChat()],
    secretKey,
    ...(options.maxSessions ? { maxSessions: options.maxSessions } : {}),
    ...(options.cluster ? { cluster: { ...(options.manager?.cluster ?? {}), ...options.cluster } } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  await manager.open();
  const webhooks = createWebhooks({ ...(options.webhooks ?? {}), storage, manager, secretKey });
  webhooks.on('webhooks.error', ({ error, operation }) => print(`webhooks: ${operation} failed: ${error instanceof Error ? error.message : String(error)}`));
  webhooks.start();

  let handle: AppHandle;
  try {
    handle = createApp(manager, {
      keys,
      ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
      ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
      ...(options.corsOrigins ? { corsOrigins: options.corsOrigins } : {}),
      ...(options.checkpointStreams ? { checkpointStreams: options.checkpointStreams } : {}),
      ...(options.sseHeartbeatMs ? { sseHeartbeatMs: options.sseHeartbeatMs } : {}),
      ...pick(options, ['sseMaxBufferBytes', 'sseMaxStreamsPerKey', 'jsonMaxDepth', 'credentialConflicts']),
      ...(options.manager?.clock ? { clock: options.manager.clock } : {}),
      webhooks,
      platformHooks: [{ path: TELEGRAM_WEBHOOK_PATH, handler: telegram.webhook }],
      ping: () => storage.ping(),
      storageKind: storage.kind,
      version: VERSION,
    });
  } catch (err) {
    await webhooks.close();
    await manager.close();
    throw err;
  }

  const server = createHttpServer(handle.app);
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 5 * 60_000;
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const shownHost = host === '0.0.0.0' || host === '[::]' ? 'localhost' : host;

  let closing: Promise<void> | null = null;
  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    manager,
    storage,
    keys,
    webhooks,
    http: server,
    createdAdminKey,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((r) => server.close(() => r()));
        handle.closeStreams();
        server.closeIdleConnections();
        await webhooks.close();
        // Sessions keep their desired state: the next start restores them.
        await manager.close();
        server.closeAllConnections();
        await stopped;
      })();
      return closing;
    },
  };
}

export { VERSION };
