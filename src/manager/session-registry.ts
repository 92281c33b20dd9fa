import { CapacityError, SessionNotFoundError, ValidationError } from '../errors.js';
import type { SessionRuntime } from './runtime/session-runtime.js';
import { sessionIdSchema, type SessionFilter } from './schemas.js';
import type { SessionRecord } from '../storage/contract.js';

type ParsedFilter = Exclude<SessionFilter, undefined>;

const byId = (a: SessionRuntime, b: SessionRuntime): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The runtimes of a manager's sessions by id, with the `maxSessions` limit and the list filter. */
export class SessionRegistry {
  readonly #runtimes = new Map<string, SessionRuntime>();
  readonly #maxSessions: number;
  /** Creates in flight: they count against the limit too, so concurrent creates cannot pass it together. */
  #creating = 0;

  constructor(maxSessions: number) {
    this.#maxSessions = maxSessions;
  }

  get size(): number {
    return this.#runtimes.size;
  }

  all(): SessionRuntime[] {
    return [...this.#runtimes.values()];
  }

  /** The live runtime of `id`; `ValidationError` for a malformed id, `SessionNotFoundError` for an unknown one. */
  get(id: string): SessionRuntime {
    const checked = sessionIdSchema.safeParse(id);
    if (!checked.success) throw new ValidationError('session id', [{ path: ['id'], message: checked.error.issues[0]?.message ?? 'invalid' }]);
    const rt = this.#runtimes.get(id);
    if (!rt || rt.deleted) throw new SessionNotFoundError(id);
    return rt;
  }

  find(id: string): SessionRuntime | undefined {
    return this.#runtimes.get(id);
  }

  add(rt: SessionRuntime): void {
    this.#runtimes.set(rt.id, rt);
  }

  delete(id: string): void {
    this.#runtimes.delete(id);
  }

  clear(): void {
    this.#runtimes.clear();
  }

  /** Holds a place for a session being created (`CapacityError` past `maxSessions`); call the result when done. */
  reserve(): () => void {
    if (this.#runtimes.size + this.#creating >= this.#maxSessions) {
      throw new CapacityError(`The manager holds ${this.#runtimes.size} sessions, its maxSessions; delete one or raise maxSessions.`, {
        context: { maxSessions: this.#maxSessions },
      });
    }
    this.#creating++;
    let released = false;
    return () => {
      if (!released) this.#creating--;
      released = true;
    };
  }

  /** Runtimes ordered by id. */
  sorted(): SessionRuntime[] {
    return this.all().sort(byId);
  }

  /** Runtimes matching every given filter, ordered by id. */
  filter(f: ParsedFilter): SessionRuntime[] {
    const states = f.state === undefined ? null : new Set(Array.isArray(f.state) ? f.state : [f.state]);
    const healths = f.health === undefined ? null : new Set(Array.isArray(f.health) ? f.health : [f.health]);
    const labels = f.labels ? Object.entries(f.labels) : [];
    const matches = (rt: SessionRuntime, r: SessionRecord): boolean =>
      (!states || states.has(rt.state)) &&
      (!healths || healths.has(rt.health)) &&
      (!f.platform || r.platform === f.platform) &&
      (!f.desiredState || r.desiredState === f.desiredState) &&
      !labels.some(([k, v]) => r.labels[k] !== v);
    return this.sorted().filter((rt) => matches(rt, rt.record));
  }
}
