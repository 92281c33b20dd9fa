import { AbortedError } from '../errors.js';

/**
 * What a wait rejects with when its signal aborts: the reason the caller gave, or an
 * `AbortedError` (with the platform's `AbortError` as cause) when they gave none.
 */
export function abortReason(signal: AbortSignal, what = 'The wait was aborted.'): unknown {
  const reason: unknown = signal.reason;
  if (reason === undefined || (reason instanceof Error && reason.name === 'AbortError')) {
    return new AbortedError(what, reason === undefined ? {} : { cause: reason });
  }
  return reason;
}

/** Waits for `work` unless `signal` aborts first (the work itself goes on). */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => undefined);
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
