import type { CheckpointBackend } from '../../checkpoint/contract.js';

/**
 * The `checkpoint()` capability of the SQL drivers: a checkpoint backend on the driver's own
 * connection, made once the driver is open. `checkpoint()` is synchronous, so the backend is
 * created (and its tables made) on first use; the driver keeps ownership of the connection, so
 * the backend's `close()` releases nothing.
 */
export function lazyCheckpointBackend(kind: string, make: () => Promise<CheckpointBackend>): CheckpointBackend {
  let backend: Promise<CheckpointBackend> | null = null;
  const get = (): Promise<CheckpointBackend> => {
    if (!backend) {
      const attempt = make().catch((err: unknown) => {
        if (backend === attempt) backend = null; // a failed init may be retried
        throw err;
      });
      backend = attempt;
    }
    return backend;
  };
  return {
    kind,
    init: async () => {
      await get();
    },
    add: async (...a) => (await get()).add(...a),
    claim: async (...a) => (await get()).claim(...a),
    claimKey: async (...a) => (await get()).claimKey(...a),
    renew: async (...a) => (await get()).renew(...a),
    complete: async (...a) => (await get()).complete(...a),
    fail: async (...a) => (await get()).fail(...a),
    release: async (...a) => (await get()).release(...a),
    get: async (...a) => (await get()).get(...a),
    list: async (...a) => (await get()).list(...a),
    stats: async (...a) => (await get()).stats(...a),
    retryDead: async (...a) => (await get()).retryDead(...a),
    purge: async (...a) => (await get()).purge(...a),
    close: async () => {},
  };
}
