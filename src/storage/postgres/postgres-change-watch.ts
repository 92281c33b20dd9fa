import type { PostgresClientLike, PostgresPoolLike } from './postgres-client.js';

/** The channel every change of a store's feed is announced on; the payload is the store's schema. */
export const CHANGE_CHANNEL = 'multisession_changes';

/** How long a lost listening connection waits before it connects again. */
const RECONNECT_MS = 1_000;

/** The events of a pg client this needs (pg's `Client` is an EventEmitter). */
interface ListeningClient extends PostgresClientLike {
  on(event: 'notification', listener: (n: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error' | 'end', listener: (err?: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
}

const canListen = (c: PostgresClientLike): c is ListeningClient =>
  typeof (c as Partial<ListeningClient>).on === 'function' && typeof (c as Partial<ListeningClient>).removeAllListeners === 'function';

/**
 * LISTEN on one connection of the pool, held for as long as the watch lasts, calling `onChange`
 * for each announced change of `schema` (PostgreSQL delivers a notification when the transaction
 * that made it commits, and folds a transaction's notifications into one). When the connection is
 * lost it connects again every second, and calls `onChange` once it listens again (changes may
 * have come meanwhile). A hint only: the reader still reads the feed from its own position.
 */
export class ChangeWatch {
  readonly #pool: PostgresPoolLike;
  readonly #schema: string;
  readonly #onChange: () => void;
  readonly #onError: (error: unknown) => void;
  #client: ListeningClient | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  constructor(pool: PostgresPoolLike, schema: string, onChange: () => void, onError: (error: unknown) => void) {
    this.#pool = pool;
    this.#schema = schema;
    this.#onChange = onChange;
    this.#onError = onError;
  }

  /** Connects and listens; false when the pool's clients cannot listen (not pg's). */
  async start(): Promise<boolean> {
    const client = await this.#pool.connect();
    if (!canListen(client)) {
      client.release();
      return false;
    }
    await this.#listen(client);
    return true;
  }

  async #listen(client: ListeningClient): Promise<void> {
    if (this.#stopped) return client.release();
    client.on('notification', (n) => {
      if (n.channel === CHANGE_CHANNEL && n.payload === this.#schema) this.#onChange();
    });
    const lost = (err?: Error) => this.#lost(client, err ?? new Error('the listening connection ended'));
    client.on('error', lost);
    client.on('end', lost);
    try {
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (err) {
      this.#lost(client, err as Error);
      return;
    }
    this.#client = client;
    this.#onChange();
  }

  #lost(client: ListeningClient, err: Error): void {
    if (this.#client === client) this.#client = null;
    detach(client);
    client.on('error', () => undefined); // a dead client may still report; never crash on it
    client.release(err);
    this.#retry(err);
  }

  /** Connects again in a second (once: a retry already waiting is enough). */
  #retry(err: unknown): void {
    if (this.#stopped || this.#timer) return;
    this.#onError(err);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#stopped) return;
      this.#pool.connect().then(
        (next) => (canListen(next) ? this.#listen(next) : next.release()),
        (error: unknown) => this.#retry(error),
      );
    }, RECONNECT_MS);
    this.#timer.unref?.();
  }

  /** Stops listening and gives the connection back to the pool. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const client = this.#client;
    this.#client = null;
    if (!client) return;
    detach(client);
    try {
      await client.query(`UNLISTEN ${CHANGE_CHANNEL}`);
      client.release();
    } catch (err) {
      client.on('error', () => undefined);
      client.release(err as Error);
    }
  }
}

function detach(client: ListeningClient): void {
  client.removeAllListeners('notification');
  client.removeAllListeners('end');
  client.removeAllListeners('error');
}
