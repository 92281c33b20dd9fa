import { randomBytes } from 'node:crypto';
import { SessionNotFoundError, type SessionManager, type SessionSnapshot } from 'multisession';
import { OPENAI_HISTORY_PREFIX } from 'multisession/adapters/openai-chat';
import { SessionFiles, type FileLimits } from './files.js';

/**
 * One `multisession` session per chat client: made on the client's first request, found again by
 * its id (the `x-session-id` header or the `sid` cookie), stopped by the manager after an idle
 * hour and then deleted with everything it kept.
 */

/** What a new client's session is made with. */
export interface BackendSettings {
  baseUrl: string;
  model: string;
  /** The back-end's key, shared by every client's session; undefined for a back-end without keys. */
  apiKey?: string;
  systemPrompt: string;
  temperature?: number;
}

/** Session ids this server hands out: `c_` and 22 random base64url characters (128 bits). */
const CLIENT_ID = /^c_[A-Za-z0-9_-]{22}$/;

export class ChatSessions {
  readonly #manager: SessionManager;
  readonly #backend: BackendSettings;
  readonly #idleTimeoutMs: number;
  readonly #fileLimits: FileLimits | undefined;
  /** Deletions of idle sessions under way (tests and close() wait for them). */
  readonly #cleanups = new Set<Promise<void>>();

  constructor(manager: SessionManager, options: { backend: BackendSettings; idleTimeoutMs: number; fileLimits?: FileLimits; onExpired?: (id: string) => void }) {
    this.#manager = manager;
    this.#backend = options.backend;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#fileLimits = options.fileLimits;
    // The manager stops a session nobody used for idleTimeoutMs (reason "idle"): it is then
    // deleted, history, files and counters with it — seed 002's "expired sessions are cleaned up".
    manager.on('session.state', (e) => {
      if (e.to !== 'stopped' || e.reason !== 'idle') return;
      const cleanup = manager.delete(e.id).then(
        () => options.onExpired?.(e.id),
        () => undefined, // already deleted by its client
      );
      this.#cleanups.add(cleanup);
      void cleanup.finally(() => this.#cleanups.delete(cleanup));
    });
  }

  /** Resolves once the idle sessions being deleted are gone. */
  async settled(): Promise<void> {
    await Promise.all([...this.#cleanups]);
  }

  /** The running session of `id` (restarted if it was stopped), or null when there is none. */
  async find(id: string | undefined): Promise<SessionSnapshot | null> {
    if (!id || !CLIENT_ID.test(id)) return null;
    try {
      const s = await this.#manager.get(id);
      if (s.state === 'ready' || s.state === 'degraded') return s;
      return await this.#manager.start(id);
    } catch (error) {
      if (error instanceof SessionNotFoundError) return null;
      throw error;
    }
  }

  /**
   * The client's session: the one `id` names if it still exists, else a new one. The server picks
   * new ids itself (never the client), so an id cannot be guessed or chosen to reach a session.
   */
  async resolve(id: string | undefined): Promise<{ session: SessionSnapshot; created: boolean }> {
    const found = await this.find(id);
    if (found) return { session: found, created: false };
    const newId = `c_${randomBytes(16).toString('base64url')}`;
    const { apiKey, ...config } = this.#backend;
    await this.#manager.create({
      id: newId,
      platform: 'openai-chat',
      ...(apiKey ? { credentials: { apiKey } } : {}),
      config,
      idleTimeoutMs: this.#idleTimeoutMs,
      allowSharedCredentials: true, // one back-end key serves every client
      labels: { app: 'ai-chat-server' },
    });
    return { session: await this.#manager.start(newId), created: true };
  }

  files(id: string): SessionFiles {
    return new SessionFiles(this.#manager.kv(id), this.#fileLimits);
  }

  /** Forgets the conversation, keeps the session and its files. Returns the messages dropped. */
  async clearHistory(id: string): Promise<number> {
    const kv = this.#manager.kv(id);
    const history = await kv.list({ prefix: OPENAI_HISTORY_PREFIX });
    const messages = history.reduce((n, e) => n + (Array.isArray(e.value) ? e.value.length : 0), 0);
    await kv.clear({ prefix: OPENAI_HISTORY_PREFIX });
    return messages;
  }

  async delete(id: string): Promise<void> {
    await this.#manager.delete(id, { force: true });
  }

  /** What `GET /api/session` shows: the session, its statistics, files and history length. */
  async details(id: string): Promise<Record<string, unknown>> {
    const [s, stats, files, history] = await Promise.all([
      this.#manager.get(id),
      this.#manager.stats(id),
      this.files(id).list(),
      this.#manager.kv(id).get(`${OPENAI_HISTORY_PREFIX}default`),
    ]);
    return {
      sessionId: s.id,
      state: s.state,
      createdAt: s.createdAt,
      lastActivityAt: s.lastActivityAt,
      idleTimeoutMs: s.idleTimeoutMs,
      expiresAt: s.lastActivityAt === null ? null : s.lastActivityAt + this.#idleTimeoutMs,
      model: this.#backend.model,
      historyMessages: Array.isArray(history) ? history.length : 0,
      files: files.length,
      stats: {
        messages: stats.messagesOut,
        replies: stats.custom.replies ?? 0,
        promptTokens: stats.custom.promptTokens ?? 0,
        completionTokens: stats.custom.completionTokens ?? 0,
        errors: stats.errors,
      },
    };
  }
}
