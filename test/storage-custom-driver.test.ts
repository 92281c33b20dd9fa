import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager, type StorageDriver } from 'multisession';
import { simulatedAdapter, storageConformanceSuite } from 'multisession/testing';

/**
 * The minimal driver of docs/storage/custom-driver.md, taken from the page as it is: a sessions-only
 * custom driver passes the conformance suite (the capability groups skipped) and runs a manager,
 * whose calls that need a missing capability throw UnsupportedError.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const page = readFileSync(join(ROOT, 'docs', 'storage', 'custom-driver.md'), 'utf8').split('\n');
const marker = page.findIndex((l) => l.trim() === '<!-- test: sessions-only-storage.ts -->');
if (marker < 0) throw new Error('docs/storage/custom-driver.md lost its runnable driver block');
const start = marker + 2;
const end = page.indexOf('```', start);
const dir = join(ROOT, '.artifacts', 'custom-driver');
mkdirSync(dir, { recursive: true });
const file = join(dir, 'sessions-only-storage.ts');
writeFileSync(file, page.slice(start, end).join('\n') + '\n');
const { sessionsOnlyStorage } = (await import(/* @vite-ignore */ file)) as { sessionsOnlyStorage: () => StorageDriver };

storageConformanceSuite({ describe, it, expect, beforeEach, afterEach }, async () => sessionsOnlyStorage(), { name: 'sessions-only (docs)' });

describe('a sessions-only custom driver', () => {
  it('has no optional capability', () => {
    const store = sessionsOnlyStorage();
    for (const capability of ['kv', 'counters', 'history', 'audit', 'checkpoint'] as const) expect(store[capability]).toBeUndefined();
  });

  it('runs a manager: sessions start and stop, transitions stay in memory, and the calls that need a capability throw UnsupportedError', async () => {
    const manager = new SessionManager({ storage: sessionsOnlyStorage(), adapters: [simulatedAdapter()] });
    await manager.open();
    try {
      await manager.create({ id: 'a', platform: 'simulated', credentials: { token: 't-a' } });
      expect((await manager.start('a')).state).toBe('ready');
      await manager.update('a', { labels: { team: 'blue' } });
      expect((await manager.stop('a')).state).toBe('stopped');
      expect((await manager.get('a')).transitions.length).toBeGreaterThan(1);
      const unsupported = (capability: string) =>
        expect.objectContaining({ code: 'UNSUPPORTED', context: { capability, storage: 'sessions-only' } });
      expect(() => manager.kv('a')).toThrow(unsupported('kv'));
      await expect(manager.stats('a')).rejects.toThrow(unsupported('counters'));
      await expect(manager.audit()).rejects.toThrow(unsupported('audit'));
      expect(() => manager.checkpoint('jobs')).toThrow(unsupported('checkpoint'));
      expect(await manager.clear('a')).toBe(0); // no context data to drop
      await manager.delete('a');
      expect((await manager.list()).items).toEqual([]);
    } finally {
      await manager.close();
    }
  });

  it('a lost update reaches the caller as ConflictError from the manager', async () => {
    const storage = sessionsOnlyStorage();
    const manager = new SessionManager({ storage, adapters: [simulatedAdapter()] });
    await manager.open();
    try {
      await manager.create({ id: 'a', platform: 'simulated', credentials: { token: 't-a' } });
      const stored = (await storage.sessions.get('a'))!;
      expect(await storage.sessions.update('a', { priority: 9, updatedAt: Date.now() }, stored.version)).not.toBeNull(); // someone else
      await expect(manager.update('a', { labels: { v: '1' } })).rejects.toMatchObject({
        code: 'CONFLICT',
        context: { sessionId: 'a', expectedVersion: 1, actualVersion: 2 },
      });
      expect((await manager.update('a', { labels: { v: '1' } })).labels).toEqual({ v: '1' }); // re-read: the retry wins
    } finally {
      await manager.close();
    }
  });
});
