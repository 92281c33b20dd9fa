import { z } from 'zod';
import { MultisessionError } from '../../errors.js';
import { parseWith } from '../../validation.js';
import { storageError } from '../guarded-storage.js';
import { isPending, type MigrationSet } from '../sql/migration-sets.js';
import { pgCode, poolQuery, type PostgresPoolLike } from './postgres-client.js';

/**
 * Connecting to PostgreSQL for `multisession/postgres` (the storage driver and the stand-alone
 * checkpoint alike): the target and options, loading pg, the Kysely migrations in the store's
 * schema (safe from several processes at once; Kysely is loaded only when there is something to
 * migrate), errors without the password, and retries.
 */

const urlTarget = z.strictObject({ connectionString: z.string().min(1, 'give a postgres:// URL') });
const poolTarget = z.strictObject({
  pool: z.custom<PostgresPoolLike>(
    (v) => !!v && typeof (v as PostgresPoolLike).connect === 'function' && typeof (v as PostgresPoolLike).end === 'function',
    'must be a pg Pool (new pg.Pool({ connectionString }))',
  ),
});

/** Where a PostgreSQL store lives: a URL it connects to (its own pool, ended by `close()`), or a pg `Pool` you made (never ended by it). */
export type PostgresTarget = { connectionString: string } | { pool: PostgresPoolLike };

const optionsSchema = z
  .strictObject({
    /** Schema that holds every table; created if missing. */
    schema: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be 1-63 of A-Z, a-z, 0-9 and _, not starting with a digit')
      .default('multisession'),
    /** Connections in the pool the store creates (ignored with your own `pool`). Default 10. */
    poolSize: z.number().int().min(1).max(1000).default(10),
  })
  .default({ schema: 'multisession', poolSize: 10 });

/** Options of `postgresStorage` and `postgresCheckpoint`. */
export type PostgresOptions = z.input<typeof optionsSchema>;
export type ResolvedPostgresOptions = Readonly<z.output<typeof optionsSchema>>;

/** Checks a target and options (`what` names the factory in the error). */
export function parsePostgresConfig(target: unknown, options: unknown, what: string): { target: PostgresTarget; options: ResolvedPostgresOptions } {
  const t =
    target && typeof target === 'object' && 'pool' in target
      ? parseWith(poolTarget, target, `${what} target`)
      : parseWith(urlTarget, target, `${what} target (pass { connectionString } or { pool })`);
  return { target: t, options: Object.freeze(parseWith(optionsSchema, options, `${what} options`)) };
}

/** An open store: the pool, and whether the store made it (and ends it on close). */
export interface PostgresConnection {
  readonly pool: PostgresPoolLike;
  readonly owned: boolean;
}

/** Errors worth retrying while two processes create the same schema objects at once. */
const RACE_CODES = new Set(['23505', '42P06', '42P07', '40P01', '40001']);
/** Errors after which the rolled-back statement or transaction is simply run again. */
const RETRY_CODES = new Set(['40P01', '40001', '23503']);

// Ref'd on purpose: a short wait inside an operation the caller awaits (init retry) must keep
// the process alive, or a script awaiting init() would exit mid-way.
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Connects (a pool of its own for a `connectionString`), creates the schema and runs `sets` of
 * migrations in it. On failure nothing stays open that the store opened.
 */
export async function openPostgres(target: PostgresTarget, options: ResolvedPostgresOptions, sets: readonly MigrationSet[]): Promise<PostgresConnection> {
  const owned = 'connectionString' in target;
  const pool = 'connectionString' in target ? await createPool(target.connectionString, options.poolSize) : target.pool;
  try {
    await migrate(pool, options.schema, sets);
  } catch (err) {
    if (owned) await pool.end().catch(() => {});
    throw postgresError('init', err, target);
  }
  return { pool, owned };
}

/** Releases what {@link openPostgres} opened (never a pool passed in). */
export async function closePostgres(c: PostgresConnection): Promise<void> {
  if (c.owned) await c.pool.end();
}

/** A quoted identifier (the schema name is checked against `^[A-Za-z_][A-Za-z0-9_]*$` already). */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

async function createPool(connectionString: string, max: number): Promise<PostgresPoolLike> {
  let Pool: new (config: object) => PostgresPoolLike & { on(event: 'error', fn: (err: Error) => void): unknown };
  try {
    const pg = (await import('pg')) as unknown as { default?: { Pool: typeof Pool }; Pool?: typeof Pool };
    Pool = (pg.default?.Pool ?? pg.Pool)!;
  } catch (cause) {
    throw storageError('postgres', 'pg is not installed; run `npm install pg` to use multisession/postgres.', cause);
  }
  const pool = new Pool({ connectionString, max, allowExitOnIdle: true });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  return pool;
}

async function migrate(pool: PostgresPoolLike, schema: string, sets: readonly MigrationSet[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await poolQuery(pool, `create schema if not exists ${quoteIdent(schema)}`);
      for (const set of sets) {
        if (!(await hasPendingMigrations(pool, schema, set))) continue;
        const { runPostgresMigrations } = await import('./postgres-kysely.js');
        await runPostgresMigrations(pool, schema, set);
      }
      return;
    } catch (err) {
      // Two processes creating the same schema or bookkeeping tables at once: the loser retries.
      const code = pgCode(err);
      if (!code || !RACE_CODES.has(code) || attempt >= 10) throw err;
      await sleep(20 * attempt);
    }
  }
}

/** True unless every migration of `set` this version knows has run in `schema` (one plain query). */
async function hasPendingMigrations(pool: PostgresPoolLike, schema: string, set: MigrationSet): Promise<boolean> {
  try {
    const { rows } = await poolQuery(pool, `select name from ${quoteIdent(schema)}.${quoteIdent(set.table)}`);
    return isPending(set, (rows as { name: string }[]).map((r) => r.name));
  } catch (err) {
    if (pgCode(err) === '42P01') return true; // no bookkeeping table yet
    throw err;
  }
}

/**
 * `[postgres] <operation> failed: <message> (SQLSTATE <code>).` with the SQLSTATE in `context` and
 * the original as `cause`; never the password of the connection string.
 */
export function postgresError(operation: string, err: unknown, target: PostgresTarget): Error {
  if (err instanceof MultisessionError) return err;
  let message = err instanceof Error ? err.message : String(err);
  if ('connectionString' in target) {
    try {
      const password = new URL(target.connectionString).password;
      if (password) message = message.split(password).join('***');
    } catch {
      // not a URL: nothing to hide
    }
  }
  const code = pgCode(err);
  return storageError('postgres', `${operation} failed: ${message}${code ? ` (SQLSTATE ${code})` : ''}.`, err, code ? { sqlState: code } : undefined);
}

/** What the capabilities of a PostgreSQL store share: the open connection, its schema, error wrapping and retries. */
export class PostgresScope {
  readonly schema: string;
  readonly #target: PostgresTarget;
  readonly #connection: () => PostgresConnection | null;

  constructor(target: PostgresTarget, schema: string, connection: () => PostgresConnection | null) {
    this.#target = target;
    this.schema = schema;
    this.#connection = connection;
  }

  /** The open connection (the guard opens the store before any capability call). */
  get c(): PostgresConnection {
    const c = this.#connection();
    if (!c) throw storageError('postgres', 'the store is not open; call init() first.');
    return c;
  }

  error(operation: string, err: unknown): Error {
    return postgresError(operation, err, this.#target);
  }

  async wrap<T>(operation: string, promise: Promise<T>): Promise<T> {
    try {
      return await promise;
    } catch (err) {
      throw this.error(operation, err);
    }
  }

  /**
   * Runs an atomic statement or transaction again when it was rolled back for a reason that a
   * second try resolves: a deadlock or serialization victim (40P01, 40001; several nodes writing
   * batches for the same sessions), or a session deleted between the existence check and the
   * insert (23503; skipped on the next try). Nothing of a rolled-back try remains.
   */
  async retry<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const code = pgCode(err);
        if (code && RETRY_CODES.has(code) && attempt < 8) {
          await sleep(Math.floor(Math.random() * 10 * attempt));
          continue;
        }
        throw this.error(operation, err);
      }
    }
  }
}
