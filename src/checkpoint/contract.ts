/**
 * The checkpoint backend contract (distributed-lock work claiming with fencing tokens).
 * Filled in by the checkpoint work; storage drivers expose it through `StorageDriver.checkpoint()`.
 */
export interface CheckpointBackend {
  /** Short name for logs: `memory`, `sqlite`, `postgres`. */
  readonly kind: string;
}
