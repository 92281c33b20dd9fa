import { sql } from 'kysely';
import type { Transaction } from 'kysely';
import { DuplicateCredentialsError, SessionExistsError } from '../../errors.js';
import {
  touchesCredentials,
  type AuditInput,
  type CredentialRewrite,
  type NewSessionRecord,
  type SessionPatch,
  type SessionRecord,
  type SessionStore,
  type StatusUpdate,
  type CreateOptions,
  type WriteOptions,
} from '../contract.js';
import * as check from '../input-checks.js';
import * as reads from '../sql/queries.js';
import { jsonText, mergeStatusUpdates, patchToRow, sessionFromRow, sessionToRow } from '../sql/rows.js';
import type { SessionRow, StorageDatabase } from '../sql/schema.js';
import { changeLock, fenceCtes, FENCES_FIRST } from './postgres-cluster-sql.js';
import type { PostgresSqlScope } from './postgres-kysely.js';

export const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The sessions of the PostgreSQL driver. Writes that read first run in one transaction; the
 * duplicate-credential check and the write it guards are serialised per fingerprint with
 * `pg_advisory_xact_lock`. Status batches are one multi-row statement over `unnest` arrays. A
 * write's audit entry is one more insert in the write's transaction (or statement), and so is its
 * row of the cluster's change feed (the last step, under the feed's ordering lock: `changeLock`).
 * A status update with a fence lands only while the fence is the session's lease (`fenceCtes`).
 */
export class PostgresSessions implements SessionStore {
  readonly #scope: PostgresSqlScope;
  constructor(scope: PostgresSqlScope) {
    this.#scope = scope;
  }

  async create(input: NewSessionRecord, options?: CreateOptions): Promise<SessionRecord> {
    const record = check.checkNewRecord(input);
    const { audit, maxSessions } = check.checkCreateOptions(options);
    const row = sessionToRow('postgres', record);
    return this.#scope.tx('createSession', async (trx) => {
      const fingerprint = record.credentialsFingerprint;
      if (fingerprint) {
        await this.#lockFingerprint(trx, fingerprint);
        if (!record.allowSharedCredentials) await checkDuplicate(trx, record.id, fingerprint);
      }
      if (maxSessions !== undefined) await this.#checkRoom(trx, maxSessions);
      const inserted = await trx
        .insertInto('sessions')
        .values(row)
        .onConflict((oc) => oc.column('id').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!inserted) throw new SessionExistsError(record.id);
      if (audit) await insertAudit(trx, audit);
      await this.#changed(trx, [record.id]);
      return sessionFromRow(inserted as SessionRow);
    });
  }

  async get(id: string): Promise<SessionRecord | null> {
    check.checkId(id);
    return this.#scope.wrap('getSession', reads.getSession(this.#scope.db, id));
  }

  async list(): Promise<SessionRecord[]> {
    return this.#scope.wrap('listSessions', reads.listSessions(this.#scope.db));
  }

  async update(id: string, input: SessionPatch, expectedVersion: number, options?: WriteOptions): Promise<SessionRecord | null> {
    check.checkId(id);
    const patch = check.checkPatch(input);
    check.checkVersion(expectedVersion);
    const audit = check.checkWriteOptions(options);
    const row = patchToRow('postgres', patch);
    return this.#scope.tx('updateSession', async (trx) => {
      const current = (await trx.selectFrom('sessions').selectAll().where('id', '=', id).forUpdate().executeTakeFirst()) as
        | SessionRow
        | undefined;
      if (!current || current.version !== expectedVersion) return null;
      const fingerprint = patch.credentialsFingerprint !== undefined ? patch.credentialsFingerprint : current.credentials_fingerprint;
      const allow = patch.allowSharedCredentials ?? current.allow_shared_credentials === true;
      if (fingerprint && touchesCredentials(patch)) {
        await this.#lockFingerprint(trx, fingerprint);
        if (!allow) await checkDuplicate(trx, id, fingerprint);
      }
      const updated = await trx
        .updateTable('sessions')
        .set({ ...row, version: sql<number>`version + 1` })
        .where('id', '=', id)
        .where('version', '=', expectedVersion)
        .returningAll()
        .executeTakeFirst();
      if (!updated) return null;
      if (audit) await insertAudit(trx, audit);
      await this.#changed(trx, [id]);
      return sessionFromRow(updated as SessionRow);
    });
  }

  async saveStatus(updates: StatusUpdate[]): Promise<void> {
    const merged = mergeStatusUpdates(check.checkStatus(updates));
    if (merged.length === 0) return;
    const t = this.#scope.table('sessions');
    // Rows are locked in id order, so concurrent batches do not deadlock on each other.
    merged.sort((a, b) => byText(a.id, b.id));
    const ids = merged.map((m) => m.id);
    const u = sql`unnest(
          ${ids}::text[], ${merged.map((m) => m.state ?? null)}::text[],
          ${merged.map((m) => m.health ?? null)}::text[], ${merged.map((m) => m.lastError !== undefined)}::boolean[],
          ${merged.map((m) => m.lastError ?? null)}::text[], ${merged.map((m) => m.lastActivityAt !== undefined)}::boolean[],
          ${merged.map((m) => m.lastActivityAt ?? null)}::bigint[], ${merged.map((m) => m.fence ?? null)}::bigint[]
        ) as u(id, state, health, set_error, last_error, set_activity, last_activity_at, fence)`;
    const set = sql`
          state = coalesce(u.state, s.state),
          health = coalesce(u.health, s.health),
          last_error = case when u.set_error then u.last_error else s.last_error end,
          last_activity_at = case when u.set_activity then u.last_activity_at else s.last_activity_at end`;
    const fenced = merged.some((m) => m.fence !== undefined);
    await this.#scope.retry('saveStatus', () =>
      (fenced
        ? // Every row of the batch locked first, then the leases checked (postgres-cluster-sql.ts: fenceCtes).
          sql`
            with u as (select * from ${u}),
            fence_input as (select u.id, u.fence as token from u),
            ${sql.raw(fenceCtes(this.#scope.schema, 'FOR NO KEY UPDATE'))},
            upd as (
              update ${t} as s set ${set}
              from u
              where s.id = u.id and ${sql.raw(FENCES_FIRST)}
                and (u.fence is null or (u.id, u.fence) in (select session_id, token from current_leases))
              returning s.id
            ),
            -- A node's status change is in the feed, so the other nodes show it (after the row locks).
            changed as (
              insert into ${this.#scope.table('session_changes')} (session_id)
              select id from upd where ${sql.raw(changeLock(this.#scope.schema))} is not null
            )
            select id from upd`
        : sql`update ${t} as s set ${set} from ${u} where s.id = u.id`
      ).execute(this.#scope.base),
    );
  }

  async delete(id: string, options?: WriteOptions): Promise<boolean> {
    check.checkId(id);
    const audit = check.checkWriteOptions(options);
    // One statement: the audit entry and the change row are inserted only when a row was deleted
    // (the lease, KV, counters and history go with it by cascade).
    const audited = audit
      ? sql`, audited as (
          insert into ${this.#scope.table('audit_log')} (at, session_id, action, actor, details)
          select ${audit.at}::bigint, ${audit.sessionId}::text, ${audit.action}::text, ${audit.actor}::text, ${jsonText(audit.details)}::text from gone
        )`
      : sql``;
    const { rows } = await this.#scope.retry('deleteSession', () =>
      sql<{ id: string }>`
        with gone as (delete from ${this.#scope.table('sessions')} where id = ${id} returning id)${audited},
        changed as (
          insert into ${this.#scope.table('session_changes')} (session_id)
          select id from gone where ${sql.raw(changeLock(this.#scope.schema))} is not null
        )
        select id from gone`.execute(this.#scope.base),
    );
    return rows.length > 0;
  }

  async replaceCredentials(input: CredentialRewrite[], options?: WriteOptions): Promise<SessionRecord[] | null> {
    const rows = check.checkRewrites(input);
    const audit = check.checkWriteOptions(options);
    if (rows.length === 0 && !audit) return [];
    const t = this.#scope.table('sessions');
    return this.#scope.retry('replaceCredentials', async () => {
      try {
        return await this.#scope.db.transaction().execute(async (trx) => {
          const result = await sql<SessionRow & { ord: string }>`
            update ${t} as s set credentials = u.credentials, credentials_fingerprint = u.fingerprint,
              updated_at = u.updated_at, version = s.version + 1
            from unnest(
              ${rows.map((r) => r.id)}::text[], ${rows.map((r) => r.credentials)}::text[],
              ${rows.map((r) => r.credentialsFingerprint)}::text[], ${rows.map((r) => r.updatedAt)}::bigint[],
              ${rows.map((r) => r.expectedVersion)}::integer[]
            ) with ordinality as u(id, credentials, fingerprint, updated_at, expected, ord)
            where s.id = u.id and s.version = u.expected
            returning s.*, u.ord`.execute(trx);
          if (result.rows.length !== rows.length) throw LOST; // rolls back the rows that did match
          if (audit) await insertAudit(trx, audit);
          const written = result.rows.sort((a, b) => Number(a.ord) - Number(b.ord));
          if (written.length > 0) await this.#changed(trx, written.map((r) => r.id));
          return written.map(({ ord: _ord, ...row }) => sessionFromRow(row));
        });
      } catch (err) {
        if (err === LOST) return null;
        throw err;
      }
    });
  }

  /**
   * Refuses a create past `maxSessions`. Creates that count take one lock (after the fingerprint
   * lock, before the insert and the feed's lock: always in that order), so a count and its insert
   * are not interleaved with another create's; only creates with a limit wait for it.
   */
  async #checkRoom(trx: Transaction<StorageDatabase>, maxSessions: number): Promise<void> {
    const lock = `multisession:${this.#scope.schema}:session-count`;
    await sql`select pg_advisory_xact_lock(hashtext(${lock}), 0)`.execute(trx);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from (select 1 from ${this.#scope.table('sessions')} limit ${maxSessions}) s`.execute(trx);
    if (rows[0]!.n >= maxSessions) throw check.storeFull(maxSessions);
  }

  /** The change rows of `ids`, the last step of a session write's transaction (see `changeLock`). */
  async #changed(trx: Transaction<StorageDatabase>, ids: string[]): Promise<void> {
    await sql`
      insert into ${this.#scope.table('session_changes')} (session_id)
      select u.id from unnest(${ids}::text[]) with ordinality as u(id, n)
      where ${sql.raw(changeLock(this.#scope.schema))} is not null order by u.n`.execute(trx);
  }

  /** Serialises every write that involves this fingerprint (two-key advisory lock, per schema). */
  async #lockFingerprint(trx: Transaction<StorageDatabase>, fingerprint: string): Promise<void> {
    await sql`select pg_advisory_xact_lock(hashtext(${`multisession:${this.#scope.schema}:fingerprint`}), hashtext(${fingerprint}))`.execute(trx);
  }
}

/** Thrown inside a transaction to roll it back when a compare-and-swap is lost. */
const LOST = Symbol('lost compare-and-swap');

/** The audit entry of a session write, inside its transaction. */
async function insertAudit(trx: Transaction<StorageDatabase>, e: AuditInput): Promise<void> {
  await trx
    .insertInto('audit_log')
    .values({ at: e.at, session_id: e.sessionId, action: e.action, actor: e.actor, details: jsonText(e.details) })
    .execute();
}

async function checkDuplicate(trx: Transaction<StorageDatabase>, id: string, fingerprint: string): Promise<void> {
  const other = await trx
    .selectFrom('sessions')
    .select('id')
    .where('credentials_fingerprint', '=', fingerprint)
    .where('id', '<>', id)
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
  if (other) throw new DuplicateCredentialsError(id, other.id);
}
