/**
 * The "Telegram server" of the example: a SOURCE chat and a TARGET chat in one SQLite file.
 *
 * The target chat is append-only, like a real chat: nothing in its schema stops the same message
 * from being posted twice. What keeps it exactly-once is the fencing token. The target remembers,
 * per source message, the highest lease token that wrote it (`target_fence`), and a forward is one
 * `BEGIN IMMEDIATE` transaction that:
 *
 * - refuses the write when a token at least as large already wrote that message (a worker whose
 *   lease was taken over cannot write any more);
 * - edits the message already posted when a smaller token posted it (a worker that posted and then
 *   died or stalled before completing: its successor takes the post over instead of repeating it);
 * - otherwise posts it.
 */
import Database from 'better-sqlite3';

export type ChatsDatabase = Database.Database;

export interface SourceMessage {
  id: number;
  text: string;
}

export interface ForwardOutcome {
  /** `posted`: new message in the target; `edited`: took over an earlier post; `refused`: stale token. */
  outcome: 'posted' | 'edited' | 'refused';
  /** Id of the target message holding this source message. */
  targetId: number;
  /** The highest token that has written this source message (after this call). */
  fence: number;
}

export interface TargetRow {
  id: number;
  source_id: number;
  text: string;
  session_id: string;
  token: number;
  edits: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS source_messages (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    sent_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS target_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    session_id TEXT NOT NULL,
    token INTEGER NOT NULL,
    edits INTEGER NOT NULL DEFAULT 0,
    posted_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS target_messages_source ON target_messages (source_id);
  CREATE TABLE IF NOT EXISTS target_fence (
    source_id INTEGER PRIMARY KEY,
    token INTEGER NOT NULL,
    target_id INTEGER NOT NULL
  );`;

/** Opens (and creates) the chats file in WAL mode, so both workers and the runner can share it. */
export function openChats(filename: string, options: { busyTimeoutMs?: number } = {}): ChatsDatabase {
  const db = new Database(filename, { timeout: options.busyTimeoutMs ?? 10_000 });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(SCHEMA);
  return db;
}

/** Fills the source chat with `count` messages (ids 1..count). */
export function seedSource(db: ChatsDatabase, count: number): void {
  const insert = db.prepare('INSERT INTO source_messages (id, text, sent_at) VALUES (?, ?, ?)');
  const now = Date.now();
  db.transaction(() => {
    for (let id = 1; id <= count; id++) insert.run(id, `message #${id}: ${(id * 2654435761) % 1_000_003}`, now + id);
  }).immediate();
}

/** Prepared statements of one connection: read the source, forward to the target under a fence. */
export function chatStatements(db: ChatsDatabase) {
  const history = db.prepare('SELECT id, text FROM source_messages WHERE id > ? ORDER BY id LIMIT ?');
  const fence = db.prepare('SELECT token, target_id FROM target_fence WHERE source_id = ?');
  const post = db.prepare(
    'INSERT INTO target_messages (source_id, text, session_id, token, posted_at) VALUES (?, ?, ?, ?, ?) RETURNING id',
  );
  const edit = db.prepare('UPDATE target_messages SET text = ?, session_id = ?, token = ?, edits = edits + 1 WHERE id = ?');
  const setFence = db.prepare(
    'INSERT INTO target_fence (source_id, token, target_id) VALUES (?, ?, ?) ON CONFLICT (source_id) DO UPDATE SET token = excluded.token',
  );

  const forward = db.transaction((sourceId: number, text: string, sessionId: string, token: number): ForwardOutcome => {
    const seen = fence.get(sourceId) as { token: number; target_id: number } | undefined;
    if (seen && seen.token >= token) return { outcome: 'refused', targetId: seen.target_id, fence: seen.token };
    if (seen) {
      edit.run(text, sessionId, token, seen.target_id);
      setFence.run(sourceId, token, seen.target_id);
      return { outcome: 'edited', targetId: seen.target_id, fence: token };
    }
    const { id } = post.get(sourceId, text, sessionId, token, Date.now()) as { id: number };
    setFence.run(sourceId, token, id);
    return { outcome: 'posted', targetId: id, fence: token };
  });

  return {
    history: (afterId: number, limit: number) => history.all(afterId, limit) as SourceMessage[],
    /** One write transaction (`BEGIN IMMEDIATE`, no await inside). */
    forward: (sourceId: number, text: string, sessionId: string, token: number) => forward.immediate(sourceId, text, sessionId, token),
  };
}

/** Everything the checks need from the chats file. */
export function readChats(filename: string): { source: SourceMessage[]; target: TargetRow[] } {
  const db = new Database(filename, { readonly: true, timeout: 10_000 });
  try {
    return {
      source: db.prepare('SELECT id, text FROM source_messages ORDER BY id').all() as SourceMessage[],
      target: db.prepare('SELECT id, source_id, text, session_id, token, edits FROM target_messages ORDER BY id').all() as TargetRow[],
    };
  } finally {
    db.close();
  }
}
