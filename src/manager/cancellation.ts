/**
 * A cancellation token for the manager's own use: a flag, a reason and a few callbacks.
 * An AbortController is an EventTarget with maps and sets behind it; a running session holds one
 * of these for its whole life, so at ten thousand sessions the difference is worth it.
 * (Adapters still get a real `AbortSignal` as `ctx.signal`.)
 */
export class Cancellation {
  aborted = false;
  reason: unknown = undefined;
  #listeners: (() => void)[] | null = null;

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.#listeners;
    this.#listeners = null;
    if (listeners) for (const fn of listeners) fn();
  }

  /** Calls `fn` once on abort; returns a function that removes it. */
  onAbort(fn: () => void): () => void {
    if (this.aborted) {
      fn();
      return () => {};
    }
    (this.#listeners ??= []).push(fn);
    return () => {
      const i = this.#listeners?.indexOf(fn) ?? -1;
      if (i >= 0) this.#listeners!.splice(i, 1);
    };
  }
}
