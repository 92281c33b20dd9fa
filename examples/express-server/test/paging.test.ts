import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers.js';

/**
 * `GET /api/v1/sessions` a page at a time: whole reads through the cursors, filters with paging,
 * a session-scoped key's pages, and bad `limit`/`cursor` values. A server of its own, so the
 * set of sessions is exactly the one made here.
 */
let t: TestServer;
const N = 300;
const ids = Array.from({ length: N }, (_, i) => `p${String(i).padStart(3, '0')}`);
/** Started (so `authenticating`, waiting for the demo's QR): every 15th session. */
const started = ids.filter((_, i) => i % 15 === 0);

beforeAll(async () => {
  t = await startTestServer({ manager: { health: { intervalMs: 60_000 } } });
  // Created in reverse so the id order of the pages is not merely the order of creation.
  for (const id of [...ids].reverse()) {
    await t.server.manager.create({ id, platform: 'demo', credentials: { token: `token-${id}` }, labels: { parity: Number(id.slice(1)) % 2 ? 'odd' : 'even' } });
  }
  for (const id of started) await t.server.manager.start(id);
});

afterAll(async () => {
  await t?.close();
});

interface Page {
  items: Array<{ id: string; state: string; labels: Record<string, string> }>;
  nextCursor: string | null;
}

/** Follows nextCursor from the first page to the last; returns each page. */
async function readAll(query: string, key?: string): Promise<Page[]> {
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const sep = query ? '&' : '';
    const r = await t.call('GET', `/api/v1/sessions?${query}${cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ''}`, key ? { key } : {});
    expect(r.status, r.text).toBe(200);
    expect(Object.keys(r.json).sort()).toEqual(['items', 'nextCursor']);
    pages.push(r.json as Page);
    cursor = (r.json as Page).nextCursor;
    expect(pages.length).toBeLessThan(1_000); // a cursor that never ends would loop here
  } while (cursor);
  return pages;
}

const idsOf = (pages: Page[]) => pages.flatMap((p) => p.items.map((s) => s.id));
const sizesOf = (pages: Page[]) => pages.map((p) => p.items.length);

function expectValidation(r: { status: number; headers: Headers; json: any }, field: string) {
  expect(r.status).toBe(400);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.json).toMatchObject({ code: 'VALIDATION', type: 'urn:multisession:problem:validation', instance: '/api/v1/sessions' });
  expect(r.json.errors.map((e: any) => e.path)).toEqual([field]);
  expect(r.json.detail).toContain(field.replace(/^query\./, ''));
}

describe('GET /api/v1/sessions pages', () => {
  it('reads every session once, in id order, at the default page size and at others', async () => {
    const byDefault = await readAll('');
    expect(sizesOf(byDefault)).toEqual([100, 100, 100]); // the last page ends exactly at the last session
    expect(idsOf(byDefault)).toEqual(ids);
    const bySeven = await readAll('limit=7');
    expect(sizesOf(bySeven)).toEqual([...Array<number>(42).fill(7), 6]);
    expect(idsOf(bySeven)).toEqual(ids);
    const whole = await readAll('limit=1000');
    expect(sizesOf(whole)).toEqual([N]);
  });

  it('filters before it pages', async () => {
    const odd = await readAll('label=parity=odd&limit=40');
    expect(sizesOf(odd)).toEqual([40, 40, 40, 30]);
    expect(idsOf(odd)).toEqual(ids.filter((id) => Number(id.slice(1)) % 2));
    const authenticating = await readAll('state=authenticating&platform=demo&limit=5');
    expect(sizesOf(authenticating)).toEqual([5, 5, 5, 5]);
    expect(idsOf(authenticating)).toEqual(started);
    const startedEven = await readAll('state=authenticating&label=parity=even&limit=2');
    expect(idsOf(startedEven)).toEqual(started.filter((id) => Number(id.slice(1)) % 2 === 0));
    expect((await readAll('platform=other&limit=3')).map((p) => p.items)).toEqual([[]]);
  });

  it('sees sessions created and deleted between pages', async () => {
    const first = await t.call('GET', '/api/v1/sessions?limit=2');
    expect(first.json.items.map((s: any) => s.id)).toEqual(['p000', 'p001']);
    await t.call('POST', '/api/v1/sessions', { body: { id: 'p001a', platform: 'demo', credentials: { token: 'token-p001a' } } }); // after the cursor
    await t.call('DELETE', '/api/v1/sessions/p002');
    const second = await t.call('GET', `/api/v1/sessions?limit=2&cursor=${first.json.nextCursor}`);
    expect(second.json.items.map((s: any) => s.id)).toEqual(['p001a', 'p003']);
    await t.call('DELETE', '/api/v1/sessions/p001a');
    await t.call('POST', '/api/v1/sessions', { body: { id: 'p002', platform: 'demo', credentials: { token: 'token-p002' }, labels: { parity: 'even' } } });
  });
});

describe('a session-scoped key pages through its own sessions only', () => {
  // Every 7th session, listed out of order, plus ids that do not exist (yet).
  const mine = ids.filter((_, i) => i % 7 === 3);
  let key: string;

  beforeAll(async () => {
    const made = await t.call('POST', '/api/v1/keys', { body: { name: 'pager', sessions: [...mine].reverse().concat(['zz-not-made', 'a-not-made']) } });
    expect(made.status).toBe(201);
    key = made.json.key;
  });

  it('holds up to `limit` of its sessions per page, and its cursors name only its own', async () => {
    const pages = await readAll('limit=10', key);
    expect(sizesOf(pages)).toEqual([10, 10, 10, 10, 3]);
    expect(idsOf(pages)).toEqual(mine);
    const others = ids.filter((id) => !mine.includes(id));
    for (const page of pages.slice(0, -1)) {
      const cursor = page.nextCursor!;
      const text = Buffer.from(cursor, 'base64url').toString('utf8');
      expect(text).toContain(page.items.at(-1)!.id);
      for (const other of others) expect(text).not.toContain(other);
    }
    expect(idsOf(await readAll('', key))).toEqual(mine); // default limit: one page
  });

  it('filters its pages like an admin key, over its sessions', async () => {
    const odd = await readAll('label=parity=odd&limit=4', key);
    expect(idsOf(odd)).toEqual(mine.filter((id) => Number(id.slice(1)) % 2));
    expect(odd.every((p) => p.items.length <= 4)).toBe(true);
    const startedMine = started.filter((id) => mine.includes(id));
    expect(startedMine.length).toBeGreaterThan(1);
    const authenticating = await readAll('state=authenticating&limit=1', key);
    expect(idsOf(authenticating)).toEqual(startedMine);
    expect(sizesOf(authenticating)).toEqual(startedMine.map(() => 1));
  });

  it('a cursor is only a position: any cursor gives a scoped key its own sessions after it, never others', async () => {
    const adminPage = await t.call('GET', '/api/v1/sessions?limit=1');
    const after = adminPage.json.items[0].id as string;
    const scoped = await t.call('GET', `/api/v1/sessions?limit=1000&cursor=${adminPage.json.nextCursor}`, { key });
    expect(scoped.status).toBe(200);
    expect(scoped.json.items.map((x: { id: string }) => x.id)).toEqual(mine.filter((id) => id > after));
  });
});

describe('bad paging parameters are 400 problem documents naming the field', () => {
  it.each(['0', '1001', '-5', '2.5', 'ten', ''])('limit=%j', async (limit) => {
    expectValidation(await t.call('GET', `/api/v1/sessions?limit=${limit}`), 'query.limit');
  });

  it('a repeated limit', async () => {
    expectValidation(await t.call('GET', '/api/v1/sessions?limit=5&limit=6'), 'query.limit');
  });

  it.each(['', 'not-a-cursor', Buffer.from('s:bad id!').toString('base64url'), 'x'.repeat(401)])('cursor=%j', async (cursor) => {
    expectValidation(await t.call('GET', `/api/v1/sessions?cursor=${cursor}`), 'query.cursor');
    const scoped = await t.call('POST', '/api/v1/keys', { body: { name: 'bad-cursor', sessions: ['p000'] } });
    expectValidation(await t.call('GET', `/api/v1/sessions?cursor=${cursor}`, { key: scoped.json.key }), 'query.cursor');
  });
});
