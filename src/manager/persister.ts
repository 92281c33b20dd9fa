import { StorageError } from '../errors.js';
import type { AuditInput, StatDelta, StatusUpdate, StorageDriver, TransitionRecord } from '../storage/contract.js';

const BATCH = 1000;

/**
 * Write-behind for high-volume, non-critical writes: runtime status, transition history,
 * counters and audit entries. Changes are merged in memory and written in batches (one driver
 * call per kind per batch), so 10,000 sessions starting at once cost a few dozen writes, not
 * tens of thousands. Writes that must be durable before a call returns (session spec, desired
 * state, KV) do not go through here. `flush()` waits for everything queued so far.
 */
export class Persister {
  readonly #storage: StorageDriver;
  readonly #historySize: number;
  readonly #onError: (error: unknown) => void;
  #status = new Map<string, StatusUpdate>();
  #transitions: TransitionRecord[] = [];
  #stats = new Map<string, StatDelta>();
  #audit: AuditInput[] = [];
  #scheduled: NodeJS.Immediate | null = null;
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(storage: StorageDriver, historySize: number, onError: (error: unknown) => void) {
    this.#storage = storage;
    this.#historySize = historySize;
    this.#onError = onError;
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
    }
    this.#schedule();
  }

  transition(record: TransitionRecord): void {
    this.#transitions.push(record);
    this.#schedule();
  }

  increment(sessionId: string, name: string, delta = 1): void {
    const key = `${sessionId}\u0000${name}`;
    const prev = this.#stats.get(key);
    if (prev) prev.delta += delta;
    else this.#stats.set(key, { sessionId, name, delta });
    this.#schedule();
  }

  audit(entry: AuditInput): void {
    this.#audit.push(entry);
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
      this.#audit = [];
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
    const audit = this.#audit;
    this.#status = new Map();
    this.#transitions = [];
    this.#stats = new Map();
    this.#audit = [];
    const run = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (error) {
        this.#onError(new StorageError(`Writing ${what} to storage failed: ${(error as Error)?.message ?? error}`, { cause: error }));
      }
    };
    // A capability the store lacks is skipped: transitions then stay in memory, counters and audit entries are not kept.
    const { audit: auditStore, history, counters, sessions } = this.#storage;
    if (auditStore) for (let i = 0; i < audit.length; i += BATCH) await run('audit entries', () => auditStore.append(audit.slice(i, i + BATCH)));
    for (let i = 0; i < status.length; i += BATCH) await run('session status', () => sessions.saveStatus(status.slice(i, i + BATCH)));
    if (history) {
      for (let i = 0; i < transitions.length; i += BATCH) {
        await run('transitions', () => history.append(transitions.slice(i, i + BATCH), this.#historySize));
      }
    }
    if (counters) for (let i = 0; i < stats.length; i += BATCH) await run('counters', () => counters.increment(stats.slice(i, i + BATCH)));
  }
}
