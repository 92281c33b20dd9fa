import type { LogEntry } from '../snapshot.js';

const LEVEL_RANK = { debug: 10, info: 20, warn: 30, error: 40 } as const;

/** A fixed-size ring of a session's newest log lines, allocated on the first line. */
export class LogRing {
  readonly #size: number;
  #items: (LogEntry | undefined)[] = [];
  #next = 0;
  #count = 0;

  constructor(size: number) {
    this.#size = size;
  }

  push(entry: LogEntry): void {
    if (this.#size === 0) return;
    // Grow by exact copies until full (a pushed-to array reserves 16 slots), then overwrite.
    if (this.#items.length < this.#size) this.#items = this.#items.concat([entry]);
    else this.#items[this.#next] = entry;
    this.#next = (this.#next + 1) % this.#size;
    if (this.#count < this.#size) this.#count++;
  }

  /** The newest `limit` lines at or above `level`, oldest first. */
  read(limit: number, level?: LogEntry['level']): LogEntry[] {
    const min = level ? LEVEL_RANK[level] : 0;
    const out: LogEntry[] = [];
    for (let i = 1; i <= this.#count && out.length < limit; i++) {
      const e = this.#items[(this.#next - i + this.#size) % this.#size]!;
      if (LEVEL_RANK[e.level] >= min) out.push(e);
    }
    return out.reverse();
  }
}
