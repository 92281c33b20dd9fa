import type { SessionKv } from 'multisession';

/**
 * A session's uploaded files, kept in the session's own context data (`manager.kv(id)`), one KV
 * entry per file under `files:<name>`.
 *
 * Why the session KV and not a folder per session (as seed 002 does): the KV view is bound to one
 * session id by the library, so there is no path to build, sanitise or escape — no request can
 * name another session's file, whatever name it sends. The values are encrypted at rest with the
 * rest of the session's context data, they go away with `manager.delete(id)` (idle expiry
 * included), and they work unchanged on the memory, SQLite and PostgreSQL stores and in a cluster.
 * The price is size: blobs are base64 JSON values, so this suits the small documents a chat
 * works with (the limits below), not media libraries.
 */

export const FILE_PREFIX = 'files:';

/** Limits of one session's files. */
export interface FileLimits {
  /** Largest file, in bytes. */
  maxFileBytes: number;
  /** Most files a session keeps. */
  maxFiles: number;
}

export const DEFAULT_FILE_LIMITS: FileLimits = { maxFileBytes: 256 * 1024, maxFiles: 20 };

/** What a listing shows of a file. */
export type FileInfo = { name: string; size: number; type: string; uploadedAt: number };
type StoredFile = FileInfo & { data: string };

/** A file name: 1-128 of letters, digits, space, `_ . -`, not starting with a dot. */
const FILE_NAME = /^(?!\.)[A-Za-z0-9 _.-]{1,128}$/;

export class FileError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** One session's files. */
export class SessionFiles {
  readonly #kv: SessionKv;
  readonly #limits: FileLimits;

  constructor(kv: SessionKv, limits: FileLimits = DEFAULT_FILE_LIMITS) {
    this.#kv = kv;
    this.#limits = limits;
  }

  static checkName(name: unknown): string {
    if (typeof name !== 'string' || !FILE_NAME.test(name)) {
      throw new FileError(400, 'BAD_FILE_NAME', 'name must be 1-128 of A-Z a-z 0-9, space, _ . - and must not start with a dot');
    }
    return name;
  }

  async list(): Promise<FileInfo[]> {
    const entries = await this.#kv.list({ prefix: FILE_PREFIX });
    return entries.map((e) => {
      const { data: _data, ...info } = e.value as StoredFile;
      return info;
    });
  }

  async save(name: string, type: string, bytes: Buffer, now: number): Promise<FileInfo> {
    SessionFiles.checkName(name);
    if (bytes.length === 0) throw new FileError(400, 'EMPTY_FILE', 'the file is empty');
    if (bytes.length > this.#limits.maxFileBytes) throw new FileError(413, 'FILE_TOO_LARGE', `a file may have at most ${this.#limits.maxFileBytes} bytes`);
    const existing = await this.#kv.get(FILE_PREFIX + name);
    if (existing === undefined && (await this.list()).length >= this.#limits.maxFiles) {
      throw new FileError(409, 'TOO_MANY_FILES', `a session keeps at most ${this.#limits.maxFiles} files; delete one first`);
    }
    const info: FileInfo = { name, size: bytes.length, type: type.slice(0, 100) || 'application/octet-stream', uploadedAt: now };
    await this.#kv.set(FILE_PREFIX + name, { ...info, data: bytes.toString('base64') });
    return info;
  }

  /** The file, or null when this session has none of that name. */
  async read(name: string): Promise<(FileInfo & { bytes: Buffer }) | null> {
    const stored = (await this.#kv.get(FILE_PREFIX + SessionFiles.checkName(name))) as StoredFile | undefined;
    if (!stored) return null;
    const { data, ...info } = stored;
    return { ...info, bytes: Buffer.from(data, 'base64') };
  }

  async delete(name: string): Promise<boolean> {
    const key = FILE_PREFIX + SessionFiles.checkName(name);
    if ((await this.#kv.get(key)) === undefined) return false;
    await this.#kv.delete(key);
    return true;
  }

  /**
   * The text files as context for the assistant (a system prompt section), each cut to `maxChars`;
   * binary files are named only.
   */
  async asContext(maxChars = 8_000): Promise<string | null> {
    const files = await this.#kv.list({ prefix: FILE_PREFIX });
    if (files.length === 0) return null;
    const parts = files.map((e) => {
      const f = e.value as StoredFile;
      const text = /^text\/|json|xml|csv|markdown/.test(f.type) ? Buffer.from(f.data, 'base64').toString('utf8') : null;
      return text === null ? `--- ${f.name} (${f.type}, ${f.size} bytes, not text) ---` : `--- ${f.name} ---\n${text.slice(0, maxChars)}`;
    });
    return `Files the user uploaded:\n${parts.join('\n')}`;
  }
}
