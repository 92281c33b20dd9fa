import type { HealthStatus, SessionState } from '../lifecycle.js';
import type { StorageDriver } from '../storage/contract.js';
import type { Clock } from '../types.js';
import type { UnitBoard } from './board.js';
import type { UnitsMovedEvent } from './types.js';

/** A session as the units see it (the manager's view of it, local or run by another node). */
export interface UnitSession {
  id: string;
  platform: string;
  labels: Record<string, string>;
  priority: number;
  capacity: number | null;
  state: SessionState;
  health: HealthStatus;
  lastActivityAt: number | null;
  /** The node that runs it, when one does. */
  node: string | null;
}

/** What `manager.units` needs from its manager (implemented in src/manager). */
export interface UnitsHost {
  readonly storage: StorageDriver;
  readonly clock: Clock;
  readonly board: UnitBoard;
  /** Every session this manager knows, by id order. */
  sessions(): UnitSession[];
  session(id: string): UnitSession | undefined;
  /** Throws unless the manager is open. */
  assertOpen(): void;
  emitMoved(event: UnitsMovedEvent): void;
  /** Runs `fn` after `ms` on the manager's clock; returns a cancel function. */
  schedule(ms: number, fn: () => void): () => void;
  onError(error: unknown): void;
  /** Writes the sessions' pending status, so a store's checks of state and health see it. */
  flush(): Promise<void>;
}
