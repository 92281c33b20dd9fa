import { z } from 'zod';
import { guardStore } from '../guarded-storage.js';
import type { CheckpointStore } from '../contract.js';
import { parseWith } from '../../validation.js';
import { systemClock, type Clock, type JsonValue } from '../../types.js';
import type {
  CasResult,
  CheckpointBackend,
  CheckpointItem,
  CheckpointStats,
  CheckpointStatus,
  FailChange,
  Lease,
  LeaseRef,
  ListPage,
  ListQuery,
  NewCheckpointItem,
} from '../../checkpoint/contract.js';

interface Row extends CheckpointItem {
  seq: number;
  /** runAt for pending/failed, lease expiry for processing. */
  availAt: number;
}

interface StreamState {
  fence: number;
  rows: Map<string, Row>;
}

const copy = <T>(value: T): T => (value === null || typeof value !== 'object' ? value : structuredClone(value));

function toItem(row: Row): CheckpointItem {
  return {
    key: row.key,
    status: row.status,
    payload: copy(row.payload),
    priority: row.priority,
    attempts: row.attempts,
    runAt: row.runAt,
    owner: row.owner,
    token: row.token,
    leaseExpiresAt: row.status === 'processing' ? row.availAt : null,
    result: copy(row.result),
    error: row.error,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    completedAt: row.completedAt,
  };
}

/** Options of {@link memoryCheckpoint} (and the `clock` of `memoryStorage`). */
export interface MemoryCheckpointOptions {
  /** Judges lease expiry and retry times; default the system clock (a manual clock in tests). */
  clock?: Clock;
}

export const clockSchema = z.custom<Clock>(
  (v) => !!v && typeof (v as Clock).now === 'function',
  'must be a Clock ({ now(), setTimeout(), clearTimeout() }), e.g. createManualClock() from multisession/testing',
);
const optionsSchema = z.strictObject({ clock: clockSchema.optional() });

/**
 * A stand-alone checkpoint in process memory: one process, many async workers. Judges expiry by
 * its `clock`. Nothing outlives the process; `close()` keeps the items (a later `init()` opens the
 * same store again) and refuses calls in between.
 *
 * @example
 * ```ts
 * import { createCheckpoint, memoryCheckpoint } from 'multisession';
 * const checkpoint = createCheckpoint({ storage: memoryCheckpoint(), stream: 'jobs' });
 * ```
 */
export function memoryCheckpoint(options: MemoryCheckpointOptions = {}): CheckpointStore {
  const { clock } = parseWith(optionsSchema, options, 'memoryCheckpoint options');
  const checkpoint = memoryCheckpointBackend(clock ?? systemClock);
  return guardStore({
    kind: 'memory',
    persistent: false,
    init: async () => {},
    close: async () => {},
    ping: async () => {},
    checkpoint,
  });
}

/** The checkpoint backend on process memory (the `checkpoint` of `memoryStorage` and `memoryCheckpoint`). */
export function memoryCheckpointBackend(clock: Clock): CheckpointBackend {
  const streams = new Map<string, StreamState>();
  let seq = 0;

  const streamOf = (name: string): StreamState => {
    let s = streams.get(name);
    if (!s) {
      s = { fence: 0, rows: new Map() };
      streams.set(name, s);
    }
    return s;
  };

  const claimable = (row: Row, now: number): boolean =>
    (row.status === 'pending' || row.status === 'failed' || row.status === 'processing') && row.availAt <= now;

  /** Leases a claimable row (or kills it when an expired lease used up its attempts). */
  const take = (s: StreamState, row: Row, owner: string, leaseMs: number, maxAttempts: number, now: number): Lease | null => {
    if (row.status === 'processing') {
      row.attempts += 1;
      if (row.attempts >= maxAttempts) {
        row.status = 'dead';
        row.owner = null;
        row.error = `lease expired ${row.attempts} times`;
        row.updatedAt = now;
        return null;
      }
    }
    s.fence += 1;
    row.status = 'processing';
    row.owner = owner;
    row.token = s.fence;
    row.availAt = now + leaseMs;
    row.updatedAt = now;
    return {
      stream: '',
      key: row.key,
      owner,
      token: row.token,
      expiresAt: row.availAt,
      attempts: row.attempts,
      payload: copy(row.payload),
      priority: row.priority,
    };
  };

  const live = (s: StreamState, ref: LeaseRef, now: number): Row | null => {
    const row = s.rows.get(ref.key);
    if (!row || row.status !== 'processing' || row.token !== ref.token || row.owner !== ref.owner) return null;
    return row.availAt > now ? row : null;
  };

  return {
    kind: 'memory',

    async add(stream, items: NewCheckpointItem[]) {
      const s = streamOf(stream);
      const now = clock.now();
      let added = 0;
      for (const item of items) {
        if (s.rows.has(item.key)) continue;
        const runAt = item.runAt === undefined ? now : Number(item.runAt);
        s.rows.set(item.key, {
          seq: ++seq,
          key: item.key,
          status: 'pending',
          payload: item.payload === undefined ? null : copy(item.payload),
          priority: item.priority ?? 0,
          attempts: 0,
          runAt,
          availAt: runAt,
          owner: null,
          token: 0,
          leaseExpiresAt: null,
          result: null,
          error: null,
          createdAt: now,
          updatedAt: now,
          completedAt: null,
        });
        added += 1;
      }
      return added;
    },

    async claim(stream, requests, maxAttempts) {
      const s = streamOf(stream);
      const now = clock.now();
      const total = requests.reduce((n, r) => n + r.limit, 0);
      const candidates = [...s.rows.values()]
        .filter((r) => claimable(r, now))
        .sort((a, b) => b.priority - a.priority || a.availAt - b.availAt || a.seq - b.seq)
        .slice(0, total);
      // In claim order: the first request gets the first `limit` candidates, and so on.
      let next = 0;
      return requests.map(({ owner, limit, leaseMs }) => {
        const leases: Lease[] = [];
        for (const row of candidates.slice(next, (next += limit))) {
          const lease = take(s, row, owner, leaseMs, maxAttempts, now);
          if (lease) leases.push({ ...lease, stream });
        }
        return leases;
      });
    },

    async claimKey(stream, key, { owner, leaseMs, payload, maxAttempts }) {
      const s = streamOf(stream);
      const now = clock.now();
      let row = s.rows.get(key);
      if (!row) {
        row = {
          seq: ++seq,
          key,
          status: 'pending',
          payload: copy(payload),
          priority: 0,
          attempts: 0,
          runAt: now,
          availAt: now,
          owner: null,
          token: 0,
          leaseExpiresAt: null,
          result: null,
          error: null,
          createdAt: now,
          updatedAt: now,
          completedAt: null,
        };
        s.rows.set(key, row);
      }
      if (!claimable(row, now)) return null;
      const lease = take(s, row, owner, leaseMs, maxAttempts, now);
      return lease ? { ...lease, stream } : null;
    },

    async renew(stream, leases: LeaseRef[], leaseMs) {
      const s = streamOf(stream);
      const now = clock.now();
      return leases.map((ref) => {
        const row = live(s, ref, now);
        if (!row) return null;
        row.availAt = now + leaseMs;
        row.updatedAt = now;
        return row.availAt;
      });
    },

    async complete(stream, entries: { lease: LeaseRef; result: JsonValue | null }[]) {
      const s = streamOf(stream);
      const now = clock.now();
      return entries.map(({ lease, result }): CasResult => {
        const row = live(s, lease, now);
        if (!row) return { ok: false };
        row.status = 'done';
        row.result = copy(result);
        row.completedAt = now;
        row.updatedAt = now;
        row.availAt = now;
        return { ok: true };
      });
    },

    async fail(stream, lease: LeaseRef, change: FailChange) {
      const s = streamOf(stream);
      const now = clock.now();
      const row = live(s, lease, now);
      if (!row) return { ok: false };
      row.attempts += 1;
      row.status = change.status;
      row.error = change.error;
      row.runAt = now + change.retryInMs;
      row.availAt = row.runAt;
      row.updatedAt = now;
      if (change.status === 'dead') row.owner = null;
      return { ok: true };
    },

    async release(stream, leases: LeaseRef[]) {
      const s = streamOf(stream);
      const now = clock.now();
      return leases.map((ref): CasResult => {
        const row = live(s, ref, now);
        if (!row) return { ok: false };
        row.status = 'pending';
        row.owner = null;
        row.availAt = row.runAt;
        row.updatedAt = now;
        return { ok: true };
      });
    },

    async get(stream, key) {
      const row = streams.get(stream)?.rows.get(key);
      return row ? toItem(row) : null;
    },

    async list(stream, query: ListQuery): Promise<ListPage> {
      const rows = [...(streams.get(stream)?.rows.values() ?? [])]
        .filter((r) => (query.status ? r.status === query.status : true))
        .filter((r) => (query.cursor ? r.key > query.cursor : true))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const page = rows.slice(0, query.limit);
      const more = rows.length > query.limit;
      return { items: page.map(toItem), cursor: more ? page[page.length - 1]!.key : null };
    },

    async stats(stream): Promise<CheckpointStats> {
      const now = clock.now();
      const out: CheckpointStats = { pending: 0, processing: 0, done: 0, failed: 0, dead: 0, total: 0, oldestPendingAgeMs: null };
      let oldest: number | null = null;
      for (const row of streams.get(stream)?.rows.values() ?? []) {
        out[row.status] += 1;
        out.total += 1;
        if (row.status === 'pending' && (oldest === null || row.createdAt < oldest)) oldest = row.createdAt;
      }
      out.oldestPendingAgeMs = oldest === null ? null : Math.max(0, now - oldest);
      return out;
    },

    async retryDead(stream) {
      const now = clock.now();
      let n = 0;
      for (const row of streams.get(stream)?.rows.values() ?? []) {
        if (row.status !== 'dead') continue;
        row.status = 'pending';
        row.attempts = 0;
        row.owner = null;
        row.runAt = now;
        row.availAt = now;
        row.updatedAt = now;
        n += 1;
      }
      return n;
    },

    async purge(stream, { statuses, olderThanMs }) {
      const s = streams.get(stream);
      if (!s) return 0;
      const cutoff = clock.now() - olderThanMs;
      const wanted = new Set<CheckpointStatus>(statuses);
      let n = 0;
      for (const [key, row] of s.rows) {
        if (wanted.has(row.status) && row.updatedAt <= cutoff) {
          s.rows.delete(key);
          n += 1;
        }
      }
      return n;
    },
  };
}
