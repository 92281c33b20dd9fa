import { OwnershipLostError, SessionNotFoundError } from '../../errors.js';
import type { JsonValue } from '../../types.js';
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  AuditStore,
  CounterStore,
  HistoryStore,
  KvEntry,
  KvOperation,
  KvStore,
  StatDelta,
  TransitionRecord,
} from '../contract.js';
import * as check from '../input-checks.js';
import * as reads from '../sql/queries.js';
import { charLength, collapseKvOps, jsonText, kvValueFromText, sumStatDeltas, transitionFromRow, type TransitionRow } from '../sql/rows.js';
import { run, write, wrapAsync, type Open } from './sqlite-open.js';

/**
 * The per-session data of the SQLite driver: KV, counters, history and the audit log. A write
 * that carries an ownership fence lands only while the fence is the session's current lease.
 */

/** The audit entry of a session write, inside its transaction. */
export function addAudit(p: Open, e: AuditInput): void {
  p.s.auditAdd.run(e.at, e.sessionId, e.action, e.actor, jsonText(e.details));
}

/** Whether a write fenced with `fence` (or not fenced) may land on `sessionId` (inside a transaction). */
export function fenceHolds(p: Open, sessionId: string, fence: number | undefined): boolean {
  if (fence === undefined) return true;
  const row = p.s.ownerToken.get(sessionId) as { token: number } | undefined;
  return row !== undefined && row.token === fence;
}

export class SqliteKv implements KvStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async get(sessionId: string, key: string): Promise<JsonValue | undefined> {
    const p = this.#open();
    check.checkId(sessionId);
    check.checkKey(key);
    return run('kvGet', () => {
      const row = p.s.kvGet.get(sessionId, key) as { value: string } | undefined;
      return row ? kvValueFromText(row.value) : undefined;
    });
  }

  async list(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]> {
    const p = this.#open();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV list options');
    return run('kvList', () => {
      const rows = (
        prefix ? p.s.kvListPrefix.all(sessionId, prefix, charLength(prefix), prefix) : p.s.kvListAll.all(sessionId)
      ) as { key: string; value: string }[];
      return rows.map((r) => ({ key: r.key, value: kvValueFromText(r.value) }));
    });
  }

  async write(sessionId: string, ops: KvOperation[], options?: { fence?: number }): Promise<void> {
    const p = this.#open();
    check.checkId(sessionId);
    check.assertKvOperations(ops);
    const fence = check.checkKvWriteOptions(options);
    const { sets, deletes } = collapseKvOps(ops);
    write('kvWrite', p, () => {
      if (!p.s.exists.get(sessionId)) throw new SessionNotFoundError(sessionId);
      if (!fenceHolds(p, sessionId, fence)) throw new OwnershipLostError(sessionId, `its lease token is no longer ${fence}`);
      for (const [key, value] of sets) p.s.kvSet.run(sessionId, key, value);
      for (const key of deletes) p.s.kvDelete.run(sessionId, key);
    });
  }

  async clear(sessionId: string, options?: { prefix?: string }): Promise<number> {
    const p = this.#open();
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV clear options');
    return write('kvClear', p, () =>
      Number(prefix ? p.s.kvClearPrefix.run(sessionId, prefix, charLength(prefix), prefix).changes : p.s.kvClearAll.run(sessionId).changes),
    );
  }
}

export class SqliteCounters implements CounterStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async increment(deltas: StatDelta[]): Promise<void> {
    const p = this.#open();
    const sums = sumStatDeltas(check.checkDeltas(deltas));
    if (sums.length === 0) return;
    write('incrementStats', p, () => {
      for (const d of sums) if (fenceHolds(p, d.sessionId, d.fence)) p.s.statAdd.run(d.sessionId, d.name, d.delta, d.sessionId);
    });
  }

  async get(sessionId: string): Promise<Record<string, number>> {
    const p = this.#open();
    check.checkId(sessionId);
    return run('getStats', () => {
      const out: Record<string, number> = {};
      for (const r of p.s.stats.all(sessionId) as { name: string; value: number }[]) out[r.name] = r.value;
      return out;
    });
  }
}

export class SqliteHistory implements HistoryStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async append(entries: TransitionRecord[], keepPerSession: number): Promise<void> {
    const p = this.#open();
    check.checkTransitions(entries);
    const keep = check.checkPositive(keepPerSession, 'keepPerSession');
    if (entries.length === 0) return;
    write('appendTransitions', p, () => {
      const touched = new Set<string>();
      for (const e of entries) {
        if (!fenceHolds(p, e.sessionId, e.fence)) continue;
        if (Number(p.s.transitionAdd.run(e.sessionId, e.from, e.to, e.reason, e.at, e.sessionId).changes) > 0) touched.add(e.sessionId);
      }
      for (const id of touched) p.s.transitionTrim.run(id, id, keep);
    });
  }

  async list(sessionId: string, limit: number): Promise<TransitionRecord[]> {
    const p = this.#open();
    check.checkId(sessionId);
    check.checkPositive(limit, 'transition limit');
    return run('listTransitions', () => (p.s.transitions.all(sessionId, Math.floor(limit)) as TransitionRow[]).reverse().map(transitionFromRow));
  }
}

export class SqliteAudit implements AuditStore {
  readonly #open: () => Open;
  constructor(open: () => Open) {
    this.#open = open;
  }

  async append(entries: AuditInput[]): Promise<void> {
    const p = this.#open();
    check.checkAuditInputs(entries);
    if (entries.length === 0) return;
    write('appendAudit', p, () => {
      for (const e of entries) addAudit(p, e);
    });
  }

  async list(query: AuditQuery): Promise<AuditEntry[]> {
    const p = this.#open();
    return wrapAsync('listAudit', reads.listAudit(p.kysely, check.checkAuditQuery(query)));
  }

  async prune(before: number): Promise<number> {
    const p = this.#open();
    check.checkTime(before, 'before');
    return write('pruneAudit', p, () => Number(p.s.auditPrune.run(before).changes));
  }
}
