export {
  CHECKPOINT_STATUSES,
  type CasResult,
  type CheckpointBackend,
  type CheckpointHost,
  type CheckpointItem,
  type CheckpointStats,
  type CheckpointStatus,
  type ClaimRequest,
  type FailChange,
  type Lease,
  type LeaseRef,
  type ListPage,
  type ListQuery,
  type NewCheckpointItem,
} from './contract.js';
export {
  Checkpoint,
  createCheckpoint,
  type CheckpointEvents,
  type CheckpointOptions,
  type CompleteOutcome,
  type WorkItem,
} from './checkpoint.js';
export type { ProcessOptions, ProcessSummary, WorkContext, WorkHandler } from './process.js';
