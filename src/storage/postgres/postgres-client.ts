/**
 * The part of a pg `Pool` that `multisession/postgres` uses: one structural interface for the
 * storage driver and the checkpoint alike, so the core never imports pg and any compatible pool
 * will do.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * const pool: PostgresPoolLike = new pg.Pool({ connectionString: process.env.DATABASE_URL }); // fits as it is
 * ```
 */
export interface PostgresPoolLike {
  connect(): Promise<PostgresClientLike>;
  end(): Promise<void>;
}

/** A client checked out of the pool; `release(err)` with an error discards it. */
export interface PostgresClientLike {
  query(text: string, values?: unknown[]): Promise<PostgresResult>;
  /** A named statement: parsed and planned once per connection (pg's prepared statements). */
  query(config: { name: string; text: string; values?: unknown[] }): Promise<PostgresResult>;
  release(err?: Error | boolean): void;
}

export interface PostgresResult {
  rows: any[];
  rowCount: number | null;
  command?: string;
}

/** The SQLSTATE of a PostgreSQL error, if it has one. */
export const pgCode = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
};

/**
 * One statement on a client of the pool (a client whose connection broke is discarded). With a
 * `name`, the statement is prepared once per connection and then only executed: the hot
 * statements of the checkpoint skip the parse and plan of every call.
 */
export async function poolQuery(pool: PostgresPoolLike, text: string, values?: unknown[], name?: string): Promise<PostgresResult> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await (name ? client.query({ name, text, values }) : client.query(text, values));
  } catch (err) {
    // A statement PostgreSQL refused (it has a SQLSTATE) leaves the connection usable.
    if (!pgCode(err)) broken = err as Error;
    throw err;
  } finally {
    client.release(broken);
  }
}
