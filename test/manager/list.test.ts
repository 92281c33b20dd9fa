import { describe, expect, it } from 'vitest';
import { ValidationError } from 'multisession';
import { setup } from '../helpers/setup.js';

/** `list()` a page at a time: order, filters, cursors, and sessions that come and go between pages. */
describe('list() pages', () => {
  it('reads every session once, in id order, a page of `limit` at a time', async () => {
    const { manager: m } = await setup({ maxSessions: 1_000 });
    const ids = Array.from({ length: 250 }, (_, i) => `s${i}`);
    for (const id of [...ids].reverse()) await m.create({ id, platform: 'scripted', labels: { parity: Number(id.slice(1)) % 2 ? 'odd' : 'even' } });
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await m.list({ limit: 100, ...(cursor ? { cursor } : {}) });
      sizes.push(page.items.length);
      seen.push(...page.items.map((s) => s.id));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(sizes).toEqual([100, 100, 50]);
    expect(seen).toEqual([...ids].sort());
    // Without a limit, everything at once.
    const all = await m.list();
    expect(all.items.map((s) => s.id)).toEqual(seen);
    expect(all.nextCursor).toBeNull();
    await m.close();
  });

  it('filters before it pages, and a page that ends exactly at the last match has no next cursor', async () => {
    const { manager: m } = await setup();
    for (let i = 0; i < 30; i++) await m.create({ id: `s${String(i).padStart(2, '0')}`, platform: 'scripted', labels: { parity: i % 2 ? 'odd' : 'even' } });
    const first = await m.list({ labels: { parity: 'odd' }, limit: 10 });
    expect(first.items.map((s) => s.id)).toEqual(['s01', 's03', 's05', 's07', 's09', 's11', 's13', 's15', 's17', 's19']);
    const second = await m.list({ labels: { parity: 'odd' }, limit: 5, cursor: first.nextCursor! });
    expect(second.items.map((s) => s.id)).toEqual(['s21', 's23', 's25', 's27', 's29']);
    expect(second.nextCursor).toBeNull();
    await m.close();
  });

  it('sees sessions created and deleted between pages, and a deleted then re-created id only once', async () => {
    const { manager: m } = await setup();
    for (const id of ['a', 'b', 'c', 'd']) await m.create({ id, platform: 'scripted' });
    const first = await m.list({ limit: 2 });
    expect(first.items.map((s) => s.id)).toEqual(['a', 'b']);
    await m.delete('c');
    await m.create({ id: 'bb', platform: 'scripted' }); // after the cursor: on the next page
    await m.create({ id: 'aa', platform: 'scripted' }); // before it: not on the next page
    await m.delete('d');
    await m.create({ id: 'd', platform: 'scripted' });
    const second = await m.list({ limit: 10, cursor: first.nextCursor! });
    expect(second.items.map((s) => s.id)).toEqual(['bb', 'd']);
    expect((await m.list()).items.map((s) => s.id)).toEqual(['a', 'aa', 'b', 'bb', 'd']);
    // Many deletions are compacted away without changing what is listed.
    for (let i = 0; i < 200; i++) await m.create({ id: `x${i}`, platform: 'scripted' });
    await m.list({ limit: 1 });
    for (let i = 0; i < 200; i++) await m.delete(`x${i}`);
    expect((await m.list()).items.map((s) => s.id)).toEqual(['a', 'aa', 'b', 'bb', 'd']);
    await m.close();
  });

  it('restricts to given ids (duplicates and unknown ids changing nothing), with filters and pages', async () => {
    const { manager: m } = await setup();
    for (let i = 0; i < 20; i++) await m.create({ id: `s${String(i).padStart(2, '0')}`, platform: 'scripted', labels: { parity: i % 2 ? 'odd' : 'even' } });
    const ids = ['s15', 's03', 's04', 's03', 'nope', 's11', 's19'];
    const first = await m.list({ ids, limit: 2 });
    expect(first.items.map((s) => s.id)).toEqual(['s03', 's04']);
    const rest = await m.list({ ids, limit: 10, cursor: first.nextCursor! });
    expect(rest.items.map((s) => s.id)).toEqual(['s11', 's15', 's19']);
    expect((await m.list({ ids, labels: { parity: 'odd' } })).items.map((s) => s.id)).toEqual(['s03', 's11', 's15', 's19']);
    expect((await m.list({ ids: [] })).items).toEqual([]);
    await m.close();
  });

  it('refuses a cursor it did not make and a page size out of range, changing nothing', async () => {
    const { manager: m } = await setup();
    await m.create({ id: 'a', platform: 'scripted' });
    for (const [query, path] of [
      [{ cursor: 'not-a-cursor' }, ['cursor']],
      [{ cursor: Buffer.from('s:bad id!').toString('base64url') }, ['cursor']],
      [{ limit: 0 }, ['limit']],
      [{ limit: 10_001 }, ['limit']],
      [{ limit: 1.5 }, ['limit']],
    ] as const) {
      const error = await m.list(query as never).then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).issues[0]!.path).toEqual(path);
    }
    expect((await m.list()).items).toHaveLength(1);
    await m.close();
  });
});
