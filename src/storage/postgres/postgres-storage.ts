import { sql } from 'kysely';
import { OwnershipLostError, SessionNotFoundError } from '../../errors.js';
import type { CheckpointBackend } from '../../checkpoint/contract.js';
import type { ClusterStore } from '../cluster-contract.js';
import type { WebhookStore } from '../webhook-contract.js';
import { SqlWebhooks } from '../sql/webhook-store.js';
import type { JsonValue } from '../../types.js';
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  AuditStore,
  CounterStore,
  KvEntry,
  KvOperation,
  KvStore,
  StatDelta,
  StorageDriver,
} from '../contract.js';
import { guardStore } from '../guarded-storage.js';
import * as check from '../input-checks.js';
import { STORAGE_MIGRATION_SETS } from '../sql/migration-sets.js';
import * as reads from '../sql/queries.js';
import { charLength, collapseKvOps, jsonText, sumStatDeltas } from '../sql/rows.js';
import { postgresCheckpointBackend } from './postgres-checkpoint.js';
import { PostgresCluster } from './postgres-cluster.js';
import { fenceCtes, FENCES_FIRST } from './postgres-cluster-sql.js';
import {
  closePostgres,
  openPostgres,
  parsePostgresConfig,
  type PostgresConnection,
  type PostgresOptions,
  type PostgresTarget,
  type ResolvedPostgresOptions,
} from './postgres-connection.js';
import { postgresKysely, PostgresSqlScope, type PostgresKysely } from './postgres-kysely.js';
import { PostgresHistory } from './postgres-history.js';
import { byText, PostgresSessions } from './postgres-sessions.js';
import { PostgresUnits } from './postgres-units.js';
import type { UnitStore } from '../units-contract.js';

/**
 * `multisession/postgres`: the storage driver for PostgreSQL, on pg 8 through Kysely, with every
 * capability (sessions, KV, counters, history, audit, the checkpoint and the cluster in the same
 * schema).
 *
 * - Every table lives in one schema (default `multisession`, created if missing), so several apps
 *   (and test runs) can share a database.
 * - Writes that read first run in one transaction; the duplicate-credential check and the write
 *   it guards are serialised per fingerprint with `pg_advisory_xact_lock`. Batches (status,
 *   counters, history, audit) are single multi-row statements over `unnest` arrays.
 * - Schema migrations (the session tables, then the checkpoint tables) run through Kysely's
 *   `Migrator` in `init()`, under an advisory lock: several processes may call `init()` on the
 *   same schema at once.
 *
 * pg is an optional peer dependency, loaded only by this module (and only when a
 * `connectionString` is given; pass your own `pool` to share one). A pool you pass is not ended
 * by `close()`. Nothing connects until `init()` (the manager's `open()`) or the first call.
 *
 * @example
 * ```ts
 * import { postgresStorage } from 'multisession/postgres';
 * const storage = postgresStorage({ connectionString: process.env.DATABASE_URL! }, { schema: 'bots' });
 * ```
 */
export function postgresStorage(target: PostgresTarget, options?: PostgresOptions): StorageDriver {
  const config = parsePostgresConfig(target, options, 'postgresStorage');
  return guardStore(new PostgresStorage(config.target, config.options));
}

class PostgresStorage implements StorageDriver {
  readonly kind = 'postgres';
  readonly persistent = true;
  readonly sessions: PostgresSessions;
  readonly kv: KvStore;
  readonly counters: CounterStore;
  readonly history: PostgresHistory;
  readonly audit: AuditStore;
  /** The distributed-lock checkpoint in this same schema, on this driver's pool (see docs/checkpoint.md). */
  readonly checkpoint: CheckpointBackend;
  /** Nodes and session ownership leases: several machines on this schema run each session once. */
  readonly cluster: ClusterStore;
  /** Webhook endpoints and deliveries (`multisession/webhooks`). */
  readonly webhooks: WebhookStore;
  /** Work units (`manager.units`). */
  readonly units: UnitStore;
  readonly #target: PostgresTarget;
  readonly #options: ResolvedPostgresOptions;
  readonly #scope: PostgresSqlScope;
  readonly #cluster: PostgresCluster;
  #open: { c: PostgresConnection; k: PostgresKysely } | null = null;

  constructor(target: PostgresTarget, options: ResolvedPostgresOptions) {
    this.#target = target;
    this.#options = options;
    const scope = (this.#scope = new PostgresSqlScope(target, options.schema, () => this.#open?.c ?? null, () => this.#open?.k ?? null));
    this.sessions = new PostgresSessions(scope);
    this.kv = new PostgresKv(scope);
    this.counters = new PostgresCounters(scope);
    this.history = new PostgresHistory(scope);
    this.audit = new PostgresAudit(scope);
    this.checkpoint = postgresCheckpointBackend(scope);
    this.cluster = this.#cluster = new PostgresCluster(scope);
    this.webhooks = new SqlWebhooks({ dialect: 'postgres', db: () => scope.db, wrap: (op, p) => scope.wrap(op, p) });
    this.cluster = new PostgresCluster(scope);
    this.units = new PostgresUnits(scope);
  }

  async init(): Promise<void> {
    const c = await openPostgres(this.#target, this.#options, STORAGE_MIGRATION_SETS);
    this.#open = { c, k: postgresKysely(c.pool, this.#options.schema) };
  }

  async close(): Promise<void> {
    const open = this.#open;
    this.#open = null;
    if (!open) return;
    await this.#cluster.stopWatches();
    await open.k.base.destroy();
    await closePostgres(open.c);
  }

  async ping(): Promise<void> {
    await this.#scope.wrap('ping', sql`select 1`.execute(this.#scope.base));
  }
}

class PostgresKv implements KvStore {
  readonly #scope: PostgresSqlScope;
  constructor(scope: PostgresSqlScope) {
    this.#scope = scope;
  }

  async get(sessionId: string, key: string): Promise<JsonValue | undefined> {
    check.checkId(sessionId);
    check.checkKey(key);
    return this.#scope.wrap('kvGet', reads.kvGet(this.#scope.db, sessionId, key));
  }

  async list(sessionId: string, options?: { prefix?: string }): Promise<KvEntry[]> {
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV list options');
    return this.#scope.wrap('kvList', reads.kvList(this.#scope.db, sessionId, prefix));
  }

  async write(sessionId: string, ops: KvOperation[], options?: { fence?: number }): Promise<void> {
    check.checkId(sessionId);
    check.assertKvOperations(ops);
    const fence = check.checkKvWriteOptions(options);
    const { sets, deletes } = collapseKvOps(ops);
    const kv = this.#scope.table('session_kv');
    await this.#scope.tx('kvWrite', async (trx) => {
      // KEY SHARE keeps the session from being deleted meanwhile without blocking its updates.
      const exists = await trx.selectFrom('sessions').select('id').where('id', '=', sessionId).forKeyShare().executeTakeFirst();
      if (!exists) throw new SessionNotFoundError(sessionId);
      if (fence !== undefined) {
        // SHARE: a takeover (which updates the lease) waits for this write, or this write sees its token.
        const { rows } = await sql`select 1 from ${this.#scope.table('session_owners')} where session_id = ${sessionId} and token = ${fence} for share`.execute(trx);
        if (rows.length === 0) throw new OwnershipLostError(sessionId, `its lease token is no longer ${fence}`);
      }
      if (sets.length > 0) {
        await sql`
          insert into ${kv} (session_id, key, value)
          select ${sessionId}, u.key, u.value from unnest(${sets.map((s) => s[0])}::text[], ${sets.map((s) => s[1])}::text[]) as u(key, value)
          on conflict (session_id, key) do update set value = excluded.value`.execute(trx);
      }
      if (deletes.length > 0) {
        await sql`delete from ${kv} where session_id = ${sessionId} and key = any(${deletes}::text[])`.execute(trx);
      }
    });
  }

  async clear(sessionId: string, options?: { prefix?: string }): Promise<number> {
    check.checkId(sessionId);
    const prefix = check.checkPrefix(options, 'KV clear options');
    const result = await this.#scope.retry('kvClear', () => {
      let q = this.#scope.db.deleteFrom('session_kv').where('session_id', '=', sessionId);
      if (prefix) q = q.where('key', '>=', prefix).where(sql<string>`substr(key, 1, ${charLength(prefix)})`, '=', prefix);
      return q.executeTakeFirst();
    });
    return Number(result.numDeletedRows);
  }
}

class PostgresCounters implements CounterStore {
  readonly #scope: PostgresSqlScope;
  constructor(scope: PostgresSqlScope) {
    this.#scope = scope;
  }

  async increment(deltas: StatDelta[]): Promise<void> {
    const sums = sumStatDeltas(check.checkDeltas(deltas));
    if (sums.length === 0) return;
    sums.sort((a, b) => byText(a.sessionId, b.sessionId) || byText(a.name, b.name)); // lock order
    const stats = this.#scope.table('session_stats');
    const sessions = this.#scope.table('sessions');
    const fenced = sums.filter((d) => d.fence !== undefined);
    if (fenced.length === 0) {
      await this.#scope.retry('incrementStats', () =>
        sql`
          insert into ${stats} as st (session_id, name, value)
          select u.session_id, u.name, u.delta
          from unnest(${sums.map((d) => d.sessionId)}::text[], ${sums.map((d) => d.name)}::text[], ${sums.map((d) => d.delta)}::float8[])
            as u(session_id, name, delta)
          where exists (select 1 from ${sessions} s where s.id = u.session_id)
          on conflict (session_id, name) do update set value = st.value + excluded.value`.execute(this.#scope.base),
      );
      return;
    }
    // Deltas whose fence is stale are left out (postgres-cluster-sql.ts: fenceCtes); the rest are
    // summed per counter again (one counter may come with two fences).
    await this.#scope.retry('incrementStats', () =>
      sql`
        with fence_input as (select * from unnest(${fenced.map((d) => d.sessionId)}::text[], ${fenced.map((d) => d.fence!)}::bigint[]) as f(id, token)),
        ${sql.raw(fenceCtes(this.#scope.schema, 'FOR KEY SHARE'))}
        insert into ${stats} as st (session_id, name, value)
        select u.session_id, u.name, sum(u.delta)
        from unnest(
          ${sums.map((d) => d.sessionId)}::text[], ${sums.map((d) => d.name)}::text[], ${sums.map((d) => d.delta)}::float8[],
          ${sums.map((d) => d.fence ?? null)}::bigint[]
        ) as u(session_id, name, delta, fence)
        where exists (select 1 from ${sessions} s where s.id = u.session_id) and ${sql.raw(FENCES_FIRST)}
          and (u.fence is null or (u.session_id, u.fence) in (select session_id, token from current_leases))
        group by u.session_id, u.name
        order by u.session_id, u.name
        on conflict (session_id, name) do update set value = st.value + excluded.value`.execute(this.#scope.base),
    );
  }

  async get(sessionId: string): Promise<Record<string, number>> {
    check.checkId(sessionId);
    return this.#scope.wrap('getStats', reads.getStats(this.#scope.db, sessionId));
  }
}

class PostgresAudit implements AuditStore {
  readonly #scope: PostgresSqlScope;
  constructor(scope: PostgresSqlScope) {
    this.#scope = scope;
  }

  async append(entries: AuditInput[]): Promise<void> {
    check.checkAuditInputs(entries);
    if (entries.length === 0) return;
    const t = this.#scope.table('audit_log');
    await this.#scope.wrap(
      'appendAudit',
      sql`
        insert into ${t} (at, session_id, action, actor, details)
        select u.at, u.session_id, u.action, u.actor, u.details
        from unnest(
          ${entries.map((e) => e.at)}::bigint[], ${entries.map((e) => e.sessionId)}::text[], ${entries.map((e) => e.action)}::text[],
          ${entries.map((e) => e.actor)}::text[], ${entries.map((e) => jsonText(e.details))}::text[]
        ) with ordinality as u(at, session_id, action, actor, details, ord)
        order by u.ord`.execute(this.#scope.base),
    );
  }

  async list(query: AuditQuery): Promise<AuditEntry[]> {
    return this.#scope.wrap('listAudit', reads.listAudit(this.#scope.db, check.checkAuditQuery(query)));
  }

  async prune(before: number): Promise<number> {
    check.checkTime(before, 'before');
    const result = await this.#scope.wrap('pruneAudit', this.#scope.db.deleteFrom('audit_log').where('at', '<', before).executeTakeFirst());
    return Number(result.numDeletedRows);
  }
}
