import type { LeaseLostError } from '../../errors.js';
import type { Clock, JsonValue } from '../../types.js';
import type { CheckpointEvents } from '../checkpoint.js';
import type { CasResult, CheckpointBackend, ClaimRequest, Lease, LeaseRef } from '../contract.js';

/** What a checkpoint hands its `process()` runner: never part of the public class. */
export interface ProcessHost {
  readonly stream: string;
  readonly maxAttempts: number;
  /** Every timer and time read of the run. */
  readonly clock: Clock;
  /** The backend, once it is ready. */
  backend(): Promise<CheckpointBackend>;
  /** A claim, coalesced with the checkpoint's other concurrent claims. */
  claim(request: ClaimRequest): Promise<Lease[]>;
  /** Completions, coalesced with the checkpoint's other concurrent completions. */
  complete(rows: { lease: LeaseRef; result: JsonValue | null }[]): Promise<CasResult[]>;
  /** Retry delay after a lease that had `attempts` earlier failures fails again. */
  retryDelay(attempts: number): number;
  /** The error of a lease lost during `operation`. */
  lost(ref: LeaseRef, operation: string): LeaseLostError;
  emit<E extends keyof CheckpointEvents>(event: E, payload: Parameters<CheckpointEvents[E]>[0]): void;
  /** Whether anyone listens (spares building payloads nobody reads). */
  listens(event: keyof CheckpointEvents): boolean;
}

/** Where a lease was lost (the `lease.lost` event's `phase`). */
export type LossPhase = Parameters<CheckpointEvents['lease.lost']>[0]['phase'];
