import { sql } from 'kysely';
import type { HistoryStore, TransitionRecord } from '../contract.js';
import * as check from '../input-checks.js';
import { transitionFromRow, type TransitionRow } from '../sql/rows.js';
import { fenceCtes, FENCES_FIRST } from './postgres-cluster-sql.js';
import type { PostgresSqlScope } from './postgres-kysely.js';
import { byText } from './postgres-sessions.js';

interface HistoryRequest {
  sessionId: string;
  limit: number;
  resolve(records: TransitionRecord[]): void;
  reject(error: unknown): void;
}

/**
 * Each session's newest transitions on PostgreSQL: appends are one statement (insert and trim);
 * an entry with a fence is kept only while the fence is its session's lease (`fenceCtes`); reads
 * are batched (see {@link PostgresHistory.list}).
 */
export class PostgresHistory implements HistoryStore {
  readonly #scope: PostgresSqlScope;
  #queue: HistoryRequest[] = [];
  #inFlight = 0;

  constructor(scope: PostgresSqlScope) {
    this.#scope = scope;
  }

  async append(entries: TransitionRecord[], keepPerSession: number): Promise<void> {
    check.checkTransitions(entries);
    const keep = check.checkPositive(keepPerSession, 'keepPerSession');
    if (entries.length === 0) return;
    // Grouped by session (a stable sort keeps each session's order), so locks come in id order.
    entries = [...entries].sort((a, b) => byText(a.sessionId, b.sessionId));
    const t = this.#scope.table('session_transitions');
    const sessions = this.#scope.table('sessions');
    // One statement: insert the newest `keep` entries per session (in the order given) and trim
    // older stored rows so at most `keep` remain. The trim sees the rows as they were before this
    // statement, so it keeps `keep - new` of them. Entries whose fence is stale are left out first.
    const fenced = entries.filter((e) => e.fence !== undefined);
    const fences = fenced.length
      ? sql`fence_input as (select * from unnest(${fenced.map((e) => e.sessionId)}::text[], ${fenced.map((e) => e.fence!)}::bigint[]) as f(id, token)),
          ${sql.raw(fenceCtes(this.#scope.schema, 'FOR KEY SHARE'))},`
      : sql``;
    const current = fenced.length
      ? sql`and ${sql.raw(FENCES_FIRST)} and (u.fence is null or (u.session_id, u.fence) in (select session_id, token from current_leases))`
      : sql``;
    await this.#scope.retry('appendTransitions', () =>
      sql`
        with ${fences} given as (
          select u.*, row_number() over (partition by u.session_id order by u.ord desc) as rn
          from unnest(
            ${entries.map((e) => e.sessionId)}::text[], ${entries.map((e) => e.from)}::text[], ${entries.map((e) => e.to)}::text[],
            ${entries.map((e) => e.reason)}::text[], ${entries.map((e) => e.at)}::bigint[], ${entries.map((e) => e.fence ?? null)}::bigint[]
          ) with ordinality as u(session_id, from_state, to_state, reason, at, fence, ord)
          where exists (select 1 from ${sessions} s where s.id = u.session_id) ${current}
        ),
        inserted as (
          insert into ${t} (session_id, from_state, to_state, reason, at)
          select session_id, from_state, to_state, reason, at from given where rn <= ${keep} order by ord
        ),
        cutoffs as (
          select c.session_id, (
            select old.id from ${t} old where old.session_id = c.session_id
            order by old.id desc offset greatest(${keep} - c.added, 0) limit 1
          ) as cutoff
          from (select session_id, least(count(*), ${keep}) as added from given group by session_id) c
        )
        delete from ${t} d using cutoffs
        where d.session_id = cutoffs.session_id and cutoffs.cutoff is not null and d.id <= cutoffs.cutoff`.execute(this.#scope.base),
    );
  }

  /**
   * History reads are batched: a manager restoring many sessions asks for each one's history, and
   * one round trip per session would dominate. While up to two batch queries are in flight, new
   * requests wait and go out together in the next one (one `LATERAL` index scan per session).
   */
  async list(sessionId: string, limit: number): Promise<TransitionRecord[]> {
    check.checkId(sessionId);
    check.checkPositive(limit, 'transition limit');
    return new Promise<TransitionRecord[]>((resolve, reject) => {
      this.#queue.push({ sessionId, limit: Math.floor(limit), resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight < 2 && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, 1000);
      this.#inFlight++;
      void this.#read(batch).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #read(batch: HistoryRequest[]): Promise<void> {
    try {
      const ids = [...new Set(batch.map((r) => r.sessionId))];
      const limit = Math.max(...batch.map((r) => r.limit));
      const t = this.#scope.table('session_transitions');
      const { rows } = await sql<TransitionRow>`
        select u.session_id, x.from_state, x.to_state, x.reason, x.at
        from unnest(${ids}::text[]) as u(session_id)
        cross join lateral (
          select id, from_state, to_state, reason, at from ${t} h
          where h.session_id = u.session_id order by h.id desc limit ${limit}
        ) x
        order by u.session_id, x.id desc`.execute(this.#scope.base);
      const bySession = new Map<string, TransitionRecord[]>();
      for (const row of rows) {
        let list = bySession.get(row.session_id);
        if (!list) bySession.set(row.session_id, (list = []));
        list.push(transitionFromRow(row));
      }
      for (const r of batch) r.resolve((bySession.get(r.sessionId) ?? []).slice(0, r.limit).reverse());
    } catch (err) {
      const error = this.#scope.error('listTransitions', err);
      for (const r of batch) r.reject(error);
    }
  }
}
