import { describe, expectTypeOf, it } from 'vitest';
import {
  createCheckpoint,
  memoryCheckpoint,
  systemClock,
  type Checkpoint,
  type CheckpointOptions,
  type Clock,
  type Lease,
  type LeaseLostError,
  type ProcessOptions,
  type ProcessSummary,
  type WorkContext,
  type WorkItem,
} from 'multisession';
import { createManualClock } from 'multisession/testing';

declare const cp: Checkpoint;

describe('Checkpoint public surface', () => {
  it('takes a clock (any Clock, the manual one included)', () => {
    expectTypeOf<CheckpointOptions['clock']>().toEqualTypeOf<Clock | undefined>();
    createCheckpoint({ storage: memoryCheckpoint(), stream: 's', clock: createManualClock() });
    createCheckpoint({ storage: memoryCheckpoint(), stream: 's', clock: systemClock });
  });

  it('keeps its backend and its lost-lease factory to itself', () => {
    // @ts-expect-error private: the process() runner gets the backend through an internal host
    void cp.backend;
    // @ts-expect-error private
    void cp.lost;
  });

  it('process() takes a typed handler and options and resolves with the summary', () => {
    expectTypeOf(cp.process).parameter(0).parameters.toEqualTypeOf<[WorkItem, WorkContext]>();
    expectTypeOf(cp.process).parameter(1).toEqualTypeOf<ProcessOptions>();
    expectTypeOf(cp.process).returns.resolves.toEqualTypeOf<ProcessSummary>();
    expectTypeOf<WorkContext>().toEqualTypeOf<{ lease: Lease; signal: AbortSignal }>();
    expectTypeOf<ProcessSummary['reason']>().toEqualTypeOf<'drained' | 'aborted'>();
  });

  it('process() events are typed', () => {
    cp.on('lease.lost', (e) => {
      expectTypeOf(e.phase).toEqualTypeOf<'renew' | 'deadline' | 'complete' | 'fail' | 'release'>();
      expectTypeOf(e.error).toEqualTypeOf<LeaseLostError>();
    });
    cp.on('process.progress', (e) => {
      expectTypeOf(e.inFlight).toEqualTypeOf<number>();
      expectTypeOf(e.completed).toEqualTypeOf<number>();
    });
  });
});
