import type { Adapter } from '../adapters/contract.js';
import { AdapterNotFoundError } from '../errors.js';
import type { SessionRecord } from '../storage/contract.js';
import type { ManagerCore } from './manager-core.js';
import { SessionRuntime } from './runtime/session-runtime.js';

/**
 * What `manager.open()` does with the stored sessions: a runtime for each, a failed session for
 * each row or adapter that cannot be used, and a staggered start of those whose desired state is
 * `running` (`restore.concurrency` at a time, so a restart of hundreds of sessions does not
 * stampede the platforms or the machine).
 */

/** Makes a runtime for every stored record; returns them and those to start. */
export async function loadRuntimes(
  core: ManagerCore,
  records: SessionRecord[],
  adapters: ReadonlyMap<string, Adapter>,
  onError: (error: unknown) => void,
): Promise<{ all: SessionRuntime[]; toStart: SessionRuntime[] }> {
  const all: SessionRuntime[] = [];
  const toStart: SessionRuntime[] = [];
  for (const record of records) {
    const adapter = adapters.get(record.platform) ?? null;
    const runtime = new SessionRuntime(core, adapter, record, { fresh: false });
    all.push(runtime);
    if (record.readError || !adapter) await runtime.loadHistory().catch(onError);
    if (record.readError) {
      runtime.markUnusable({ code: 'STORAGE', message: `Stored row could not be read: ${record.readError}`, at: core.clock.now() });
    } else if (!adapter) {
      runtime.markUnusable({ code: 'ADAPTER_NOT_FOUND', message: new AdapterNotFoundError(record.platform, [...adapters.keys()]).message, at: core.clock.now() });
    } else if (record.desiredState === 'running') {
      toStart.push(runtime);
    }
  }
  return { all, toStart };
}

/**
 * Starts `runtimes`, `concurrency` at a time, each waited for until its first attempt settles.
 * Stops taking new ones as soon as `keepGoing()` turns false (the manager is closing).
 */
export async function restoreRuntimes(runtimes: SessionRuntime[], concurrency: number, keepGoing: () => boolean, onError: (error: unknown) => void): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < runtimes.length && keepGoing()) {
      const rt = runtimes[next++]!;
      try {
        const { settled } = await rt.enqueue(async () => rt.start('restore'));
        await settled;
      } catch (error) {
        onError(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, runtimes.length) }, worker));
}
