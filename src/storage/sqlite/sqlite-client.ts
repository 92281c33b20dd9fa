/**
 * The part of a better-sqlite3 `Database` that `multisession/sqlite` uses: one structural
 * interface for the storage driver, the checkpoint and Kysely's `SqliteDialect` alike, so the core
 * never imports better-sqlite3 and any compatible client will do.
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3';
 * const client: SqliteClient = new Database('sessions.db'); // fits as it is
 * ```
 */
export interface SqliteClient {
  /** True for a `:memory:` database (nothing outlives the process). */
  readonly memory: boolean;
  /** False once closed. */
  readonly open: boolean;
  prepare(source: string): SqliteStatement;
  /** A function that runs `fn` in a transaction; `.immediate` takes the write lock up front. */
  transaction<F extends (...params: any[]) => unknown>(fn: F): SqliteTransaction<F>;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  exec(source: string): unknown;
  close(): unknown;
}

/** The part of a better-sqlite3 `Statement` the drivers use. */
export interface SqliteStatement {
  /** True when the statement returns rows. */
  readonly reader: boolean;
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): IterableIterator<unknown>;
  /** Rows as arrays instead of objects (cheaper on hot paths). */
  raw(toggle?: boolean): SqliteStatement;
}

/** better-sqlite3's transaction function: `deferred` or `immediate` (takes the write lock up front). */
export interface SqliteTransaction<F extends (...params: any[]) => unknown> {
  deferred(...params: ArgumentTypes<F>): ReturnType<F>;
  immediate(...params: ArgumentTypes<F>): ReturnType<F>;
}

type ArgumentTypes<F extends (...params: any[]) => unknown> = F extends (...args: infer A) => unknown ? A : never;
