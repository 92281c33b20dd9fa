/**
 * Group commit for concurrent calls of one kind (claims, completions) on one checkpoint: the calls
 * made in one run of promise callbacks, and those that arrive while a store call is under way, go
 * to the store together in ONE call (one statement, one commit). A lone caller waits for no
 * company (only for the next tick), so one loop pays what it paid before, and eight loops pay one
 * round trip per group instead of one per item.
 *
 * When a group's store call fails with an error the database raised for the statement (it was
 * rolled back, nothing changed), each of its calls is tried again alone, so a call that fails
 * fails only its own items. Any other error (a broken connection: the outcome is unknown) fails
 * every call of the group.
 */
export interface CoalescerOptions<Req, Res> {
  /** Runs a group: resolves with one result per request, in order. */
  run(requests: Req[]): Promise<Res[]>;
  /** How many requests' worth a group may hold (a request's `size`, e.g. its item count). */
  maxGroup: number;
  size(request: Req): number;
}

interface Waiting<Req, Res> {
  request: Req;
  resolve(value: Res): void;
  reject(error: unknown): void;
}

export class Coalescer<Req, Res> {
  readonly #o: CoalescerOptions<Req, Res>;
  #queue: Waiting<Req, Res>[] = [];
  #busy = false;
  #scheduled = false;

  constructor(options: CoalescerOptions<Req, Res>) {
    this.#o = options;
  }

  call(request: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Starts the next group on the next tick, when none is under way: by then every call of the
   * current run of promise callbacks has joined (the loops whose last group just came back call
   * again in the same run), and no event-loop turn is spent. One group at a time: measured on
   * PostgreSQL, two under way at once ran at half the rate (smaller groups contending for the
   * same rows and pages).
   */
  #schedule(): void {
    if (this.#busy || this.#scheduled || !this.#queue.length) return;
    this.#scheduled = true;
    process.nextTick(this.#start);
  }

  readonly #start = (): void => {
    this.#scheduled = false;
    this.#busy = true;
    const group = this.#take();
    let results: Promise<Res[]>;
    try {
      results = this.#o.run(group.map((w) => w.request));
    } catch (error) {
      results = Promise.reject(error);
    }
    // The common case settles in one reaction; a failure goes through #failed.
    results.then(
      (values) => {
        for (let i = 0; i < group.length; i++) group[i]!.resolve(values[i]!);
        this.#done();
      },
      (error: unknown) => void this.#failed(group, error).finally(this.#done),
    );
  };

  readonly #done = (): void => {
    this.#busy = false;
    this.#schedule();
  };

  /** The longest prefix of the queue within `maxGroup` (at least one request). */
  #take(): Waiting<Req, Res>[] {
    const q = this.#queue;
    let n = 0;
    let size = 0;
    while (n < q.length) {
      size += this.#o.size(q[n]!.request);
      if (n > 0 && size > this.#o.maxGroup) break;
      n++;
    }
    if (n === q.length) {
      this.#queue = [];
      return q;
    }
    return q.splice(0, n);
  }

  async #failed(group: Waiting<Req, Res>[], error: unknown): Promise<void> {
    if (group.length === 1 || !refusedStatement(error)) {
      for (const w of group) w.reject(error);
      return;
    }
    // Rolled back: try each call alone, so only the one the database refuses fails.
    for (const w of group) {
      try {
        w.resolve((await this.#o.run([w.request]))[0]!);
      } catch (err) {
        w.reject(err);
      }
    }
  }
}

/**
 * Did the database refuse the statement (so it was rolled back and changed nothing)? Drivers
 * give such errors a string `code` (PostgreSQL's SQLSTATE, SQLite's `SQLITE_…`); the store wraps
 * them, keeping the driver's error as `cause`.
 */
function refusedStatement(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (/^[0-9A-Z]{5}$/.test(code) || code.startsWith('SQLITE_'))) return true;
  }
  return false;
}
