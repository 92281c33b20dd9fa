import { StorageError } from '../errors.js';
import type { StatDelta, StatusUpdate, StorageDriver, TransitionRecord } from '../storage/contract.js';
import type { Clock } from '../types.js';

const BATCH = 1000;

/**
 * Write-behind for high-volume, non-critical writes: runtime status, transition history and
 * counters. Changes are merged in memory and written in batches (one driver call per kind per
 * batch), so 10,000 sessions starting at once cost a few dozen writes, not tens of thousands.
 * Writes that must be durable before a call returns (session spec, desired state, KV, audit
 * entries) do not go through here. `flush()` waits for everything queued so far.
 *
 * When a batch is written: on the next turn of the event loop (`setImmediate`), and at the latest
 * `flushMs` after its first change by the manager's clock. The second matters because the first
 * may never come: a burst of awaited calls on a synchronous store (SQLite, memory) and an adapter
 * that answers at once runs entirely in promise jobs, and the event loop (timers included) does
 * not turn until the burst ends. So the deadline is checked where the changes come in, and a
 * batch that is due is written from there, inside the burst.
 */
export class Persister {
  readonly #storage: StorageDriver;
  readonly #historySize: number;
  readonly #onError: (error: unknown) => void;
  readonly #clock: Clock;
  readonly #flushMs: number;
  #status = new Map<string, StatusUpdate>();
  #transitions: TransitionRecord[] = [];
  #stats = new Map<string, StatDelta>();
  #scheduled: NodeJS.Immediate | null = null;
  /** When the first change not yet taken by a write came in (null: none waiting). */
  #since: number | null = null;
  /** A write is chained and has not yet taken the queue: later changes go with it. */
  #pending = false;
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(storage: StorageDriver, options: { historySize: number; flushMs: number; clock: Clock; onError: (error: unknown) => void }) {
    this.#storage = storage;
    this.#historySize = options.historySize;
    this.#flushMs = options.flushMs;
    this.#clock = options.clock;
    this.#onError = options.onError;
  }

  status(update: StatusUpdate): void {
    const prev = this.#status.get(update.id);
    if (!prev) this.#status.set(update.id, update);
    else {
      // Merged field by field (a spread would make a new, slower object on every state change).
      if (update.state !== undefined) prev.state = update.state;
      if (update.health !== undefined) prev.health = update.health;
      if (update.lastError !== undefined) prev.lastError = update.lastError;
      if (update.lastActivityAt !== undefined) prev.lastActivityAt = update.lastActivityAt;
      if (update.fence !== undefined) prev.fence = update.fence;
    }
    this.#schedule();
  }

  transition(record: TransitionRecord): void {
    this.#transitions.push(record);
    this.#schedule();
  }

  increment(sessionId: string, name: string, delta = 1, fence?: number): void {
    const key = fence === undefined ? `${sessionId}\u0000${name}` : `${sessionId}\u0000${name}\u0000${fence}`;
    const prev = this.#stats.get(key);
    if (prev) prev.delta += delta;
    else this.#stats.set(key, fence === undefined ? { sessionId, name, delta } : { sessionId, name, delta, fence });
    this.#schedule();
  }

  /** Drops queued writes of a session that is being deleted. */
  forget(sessionId: string): void {
    this.#status.delete(sessionId);
    this.#transitions = this.#transitions.filter((t) => t.sessionId !== sessionId);
    for (const [k, d] of this.#stats) if (d.sessionId === sessionId) this.#stats.delete(k);
  }

  /** Resolves once everything queued before the call is written (errors go to onError). */
  flush(): Promise<void> {
    if (this.#scheduled) {
      clearImmediate(this.#scheduled);
      this.#scheduled = null;
    }
    this.#pending = true;
    this.#running = this.#running.then(() => this.#write());
    return this.#running;
  }

  /** Writes what is queued, then ignores everything (late calls after the manager closed). */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }

  #schedule(): void {
    if (this.#closed) {
      this.#status.clear();
      this.#transitions = [];
      this.#stats.clear();
      return;
    }
    if (this.#pending) return; // the chained write takes this change too
    if (this.#since === null) this.#since = this.#clock.now();
    else if (this.#clock.now() - this.#since >= this.#flushMs) {
      void this.flush(); // due: written now, whether or not the event loop gets to turn
      return;
    }
    if (this.#scheduled) return;
    this.#scheduled = setImmediate(() => {
      this.#scheduled = null;
      void this.flush();
    });
    this.#scheduled.unref();
  }

  async #write(): Promise<void> {
    const status = [...this.#status.values()];
    const transitions = this.#transitions;
    const stats = [...this.#stats.values()];
    this.#status = new Map();
    this.#transitions = [];
    this.#stats = new Map();
    this.#since = null;
    this.#pending = false;
    const run = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (error) {
        this.#onError(new StorageError(`Writing ${what} to storage failed: ${(error as Error)?.message ?? error}`, { cause: error }));
      }
    };
    // A capability the store lacks is skipped: transitions then stay in memory, counters are not kept.
    const { history, counters, sessions } = this.#storage;
    for (let i = 0; i < status.length; i += BATCH) await run('session status', () => sessions.saveStatus(status.slice(i, i + BATCH)));
    if (history) {
      for (let i = 0; i < transitions.length; i += BATCH) {
        await run('transitions', () => history.append(transitions.slice(i, i + BATCH), this.#historySize));
      }
    }
    if (counters) for (let i = 0; i < stats.length; i += BATCH) await run('counters', () => counters.increment(stats.slice(i, i + BATCH)));
  }
}
