import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CapacityError, SessionManager } from 'multisession';
import { idleAdapter as idle } from '../helpers/idle-adapter.js';
import { sqliteStorage } from 'multisession/sqlite';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe('maxSessions with several nodes on one store', () => {
  it('counts the sessions of the whole store: creates on two nodes at once stop at the limit together', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-max-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const node = async () => {
      const m = new SessionManager({
        storage: sqliteStorage({ filename: join(dir, 'store.db') }),
        secretKey: Buffer.alloc(32, 3).toString('base64'),
        adapters: [idle],
        maxSessions: 4,
      });
      await m.open();
      cleanup.push(() => m.close());
      return m;
    };
    const [a, b] = [await node(), await node()];
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => [a.create({ id: `a${i}`, platform: 'idle' }), b.create({ id: `b${i}`, platform: 'idle' })]).flat(),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(4);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(CapacityError);
    // Both nodes see the same four (the other node's through the change feed, on real timers), and neither can add a fifth.
    const seen = async (m: SessionManager) => {
      for (let end = Date.now() + 5_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
        const list = (await m.list()).items.map((s) => s.id);
        if (list.length >= 4) return list;
      }
      return (await m.list()).items.map((s) => s.id);
    };
    const ids = await seen(a);
    expect(ids).toHaveLength(4);
    expect(await seen(b)).toEqual(ids);
    await expect(b.create({ id: 'late', platform: 'idle' })).rejects.toMatchObject({ code: 'CAPACITY', context: { maxSessions: 4 } });
    await a.delete(ids[0]!);
    expect((await b.create({ id: 'late', platform: 'idle' })).id).toBe('late');
  });
});
