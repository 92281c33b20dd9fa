import type { Adapter } from '../adapters/contract.js';
import { ManagerClosedError, ManagerNotOpenError, MultisessionError, StorageError } from '../errors.js';
import type { ManagerCore } from './manager-core.js';
import type { Ownership } from './cluster/ownership.js';
import { loadRuntimes } from './restore.js';
import type { SessionRegistry } from './session-registry.js';
import type { Waits } from './wait-for.js';

type Phase = 'new' | 'opening' | 'open' | 'closing' | 'closed';

/**
 * The manager's own lifecycle: `open()` (storage, then every stored session, then the restore),
 * `close()` (stop every session, write what is pending, release the store) and the phase every
 * public call checks first.
 */
export class ManagerLifecycle {
  #phase: Phase = 'new';
  #opening: Promise<void> | null = null;
  #closing: Promise<void> | null = null;
  readonly #core: ManagerCore;
  readonly #sessions: SessionRegistry;
  readonly #adapters: ReadonlyMap<string, Adapter>;
  readonly #waits: Waits;
  readonly #ownership: Ownership;
  readonly #onError: (error: unknown) => void;
  readonly #opened: () => void;
  readonly #loaded: () => Promise<void>;

  constructor(deps: { core: ManagerCore; sessions: SessionRegistry; adapters: ReadonlyMap<string, Adapter>; waits: Waits; ownership: Ownership; onError: (error: unknown) => void; opened?: () => void; loaded?: () => Promise<void> }) {
    this.#ownership = deps.ownership;
    this.#core = deps.core;
    this.#sessions = deps.sessions;
    this.#adapters = deps.adapters;
    this.#waits = deps.waits;
    this.#onError = deps.onError;
    this.#opened = deps.opened ?? (() => undefined);
    this.#loaded = deps.loaded ?? (() => Promise.resolve());
  }

  get isOpen(): boolean {
    return this.#phase === 'open';
  }

  /** Throws unless open: `ManagerNotOpenError` before `open()`, `ManagerClosedError` after `close()`. */
  assertOpen(): void {
    if (this.#phase === 'open') return;
    if (this.#phase === 'closing' || this.#phase === 'closed') throw new ManagerClosedError();
    throw new ManagerNotOpenError();
  }

  open(): Promise<void> {
    if (this.#phase === 'closing' || this.#phase === 'closed') return Promise.reject(new ManagerClosedError());
    this.#opening ??= this.#open();
    return this.#opening;
  }

  async #open(): Promise<void> {
    this.#phase = 'opening';
    const { storage } = this.#core;
    try {
      await storage.init();
      await this.#ownership.join();
      const { all, toStart } = await loadRuntimes(this.#core, await storage.sessions.list(), this.#adapters, this.#onError);
      for (const rt of all) this.#sessions.add(rt);
      await this.#loaded(); // what the sessions' adapters read before they start (their units)
      if (this.#phase !== 'opening') return; // closed meanwhile
      this.#phase = 'open';
      this.#opened();
      await this.#ownership.begin(toStart);
    } catch (error) {
      if (this.#phase !== 'opening') return;
      this.#phase = 'new';
      this.#opening = null;
      throw error instanceof MultisessionError ? error : new StorageError(`Opening storage (${storage.kind}) failed: ${(error as Error)?.message ?? error}`, { cause: error });
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Closing first: a restore in progress starts no further session, and the sessions it has
    // started are stopped now instead of after the whole restore queue.
    this.#phase = 'closing';
    const stopAll = () =>
      Promise.all(this.#sessions.all().map((rt) => rt.enqueue(() => rt.stop('manager closing')).catch(this.#onError)));
    if (this.#opening) {
      await stopAll();
      await this.#opening.catch(() => undefined);
    }
    await stopAll();
    await this.#ownership.close();
    await this.#core.persister.close();
    this.#waits.closeAll();
    this.#core.scheduler.close();
    this.#sessions.clear();
    this.#phase = 'closed';
    await this.#core.storage.close();
  }
}
