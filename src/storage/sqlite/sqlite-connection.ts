import { z } from 'zod';
import { parseWith } from '../../validation.js';
import { storageError, wrapStorageError } from '../guarded-storage.js';
import { isPending, type MigrationSet } from '../sql/migration-sets.js';
import type { SqliteClient } from './sqlite-client.js';

/**
 * Opening a SQLite database for `multisession/sqlite` (the storage driver and the stand-alone
 * checkpoint alike): the target and options, loading better-sqlite3, the pragmas, and the Kysely
 * migrations (a busy retry against other processes, one at a time within this one). Kysely itself
 * is loaded only when there is something to migrate.
 */

const filenameTarget = z.strictObject({
  filename: z.string().min(1, 'give a file path, or ":memory:" for a throw-away database'),
});
const databaseTarget = z.strictObject({
  database: z.custom<SqliteClient>(
    (v) => !!v && typeof (v as SqliteClient).prepare === 'function' && typeof (v as SqliteClient).transaction === 'function',
    'must be a better-sqlite3 Database (new Database(filename))',
  ),
});

/** Where a SQLite store lives: a file it opens (and closes), or a better-sqlite3 `Database` you opened (never closed by it). */
export type SqliteTarget = { filename: string } | { database: SqliteClient };

export const sqliteOptionsSchema = z
  .strictObject({
    /** `NORMAL` (default): safe against process crashes. `FULL`: also against power loss, slower. */
    synchronous: z.enum(['NORMAL', 'FULL']).default('NORMAL'),
    /** How long a write waits for another connection's lock before failing (default 5000 ms). */
    busyTimeoutMs: z.number().int().min(0).max(600_000).default(5_000),
  })
  .default({ synchronous: 'NORMAL', busyTimeoutMs: 5_000 });

/** Options of `sqliteStorage` and `sqliteCheckpoint`. */
export type SqliteOptions = z.input<typeof sqliteOptionsSchema>;
export type ResolvedSqliteOptions = Readonly<z.output<typeof sqliteOptionsSchema>>;

/** Checks a target and options (`what` names the factory in the error). */
export function parseSqliteConfig(target: unknown, options: unknown, what: string): { target: SqliteTarget; options: ResolvedSqliteOptions } {
  const t =
    target && typeof target === 'object' && 'database' in target
      ? parseWith(databaseTarget, target, `${what} target`)
      : parseWith(filenameTarget, target, `${what} target (pass { filename } or { database })`);
  return { target: t, options: Object.freeze(parseWith(sqliteOptionsSchema, options, `${what} options`)) };
}

/** True when data on `target` outlives the process (not `:memory:`). */
export const isPersistent = (target: SqliteTarget): boolean =>
  'filename' in target ? target.filename !== ':memory:' : !target.database.memory;

/** An open database: the client, and whether the store opened it itself. */
export interface SqliteConnection {
  readonly db: SqliteClient;
  readonly owned: boolean;
}

export const isBusy = (err: unknown): boolean =>
  typeof (err as { code?: unknown })?.code === 'string' && (err as { code: string }).code.startsWith('SQLITE_BUSY');

/** A failure of `operation` as `[sqlite] <operation> failed: …`, with a hint when the lock was busy. */
export function sqliteError(operation: string, err: unknown): Error {
  const hint = isBusy(err) ? 'Another connection held the database lock too long; raise busyTimeoutMs or shorten its transactions.' : '';
  return wrapStorageError('sqlite', operation, err, hint);
}

/**
 * Opens the target, sets the pragmas and runs `sets` of migrations. On failure nothing stays open
 * that the store opened. Errors are `StorageError`s (`[sqlite] …`).
 */
export async function openSqlite(target: SqliteTarget, options: ResolvedSqliteOptions, sets: readonly MigrationSet[]): Promise<SqliteConnection> {
  const owned = 'filename' in target;
  const db = 'filename' in target ? await openFile(target.filename, options) : target.database;
  try {
    await migrate(db, options, sets);
    return { db, owned };
  } catch (err) {
    if (owned && db.open) db.close();
    throw sqliteError('init', err);
  }
}

/** Releases what {@link openSqlite} opened (never a database passed in). */
export function closeSqlite(c: SqliteConnection): void {
  if (c.owned && c.db.open) c.db.close();
}

async function openFile(filename: string, options: ResolvedSqliteOptions): Promise<SqliteClient> {
  let Database: new (filename: string, options?: { timeout?: number }) => SqliteClient;
  try {
    Database = (await import('better-sqlite3')).default as unknown as typeof Database;
  } catch (cause) {
    throw storageError('sqlite', 'better-sqlite3 is not installed; run `npm install better-sqlite3` to use multisession/sqlite.', cause);
  }
  try {
    return new Database(filename, { timeout: options.busyTimeoutMs });
  } catch (cause) {
    throw storageError('sqlite', `Cannot open "${filename}": ${(cause as Error).message}. Check that the folder exists and is writable.`, cause);
  }
}

// Ref'd on purpose: a short wait inside an operation the caller awaits (init retry) must keep
// the process alive, or a script awaiting init() would exit mid-way.
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function migrate(db: SqliteClient, options: ResolvedSqliteOptions, sets: readonly MigrationSet[]): Promise<void> {
  // Another process may hold the lock while it migrates or switches to WAL: wait and retry.
  for (let attempt = 1; ; attempt++) {
    try {
      db.pragma(`busy_timeout = ${options.busyTimeoutMs}`);
      db.pragma('foreign_keys = ON');
      if (!db.memory) db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous}`);
      for (const set of sets) {
        // Up to date (the usual case): skip the Migrator, whose BEGIN IMMEDIATE across awaits
        // would block another connection of this process that writes meanwhile.
        if (!hasPendingMigrations(db, set)) continue;
        const { runSqliteMigrations } = await import('./sqlite-kysely.js');
        await serialised(() => runSqliteMigrations(db, set));
      }
      return;
    } catch (err) {
      if (!isBusy(err) || attempt >= 20) throw err;
      await sleep(Math.min(1000, 25 * attempt));
    }
  }
}

/** True unless every migration of `set` this version knows has run on this database. */
function hasPendingMigrations(db: SqliteClient, set: MigrationSet): boolean {
  let done: string[];
  try {
    done = (db.prepare(`SELECT name FROM ${set.table}`).all() as { name: string }[]).map((r) => r.name);
  } catch {
    return true; // no bookkeeping table yet
  }
  return isPending(set, done);
}

/**
 * Migrations of every SQLite store in this process run one at a time: two stores on one file in
 * one thread would otherwise wait on each other's `BEGIN IMMEDIATE` (better-sqlite3 blocks the
 * thread while it waits). Other processes are handled by the busy timeout and a retry.
 */
let migrationQueue: Promise<unknown> = Promise.resolve();
function serialised<T>(fn: () => Promise<T>): Promise<T> {
  const run = migrationQueue.then(fn, fn);
  migrationQueue = run.catch(() => undefined);
  return run;
}
