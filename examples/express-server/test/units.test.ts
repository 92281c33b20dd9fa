import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers.js';

/** The work-unit endpoints: admin keys only; a session-scoped key reads its own sessions' units. */
describe('work units over HTTP', () => {
  let t: TestServer;
  let scopedKey: string;

  beforeAll(async () => {
    t = await startTestServer({ demo: { auth: 'none' } });
    for (const [id, priority, capacity] of [['main', 8, 5], ['backup', 3, 10]] as const) {
      expect((await t.call('POST', '/api/v1/sessions', { body: { id, platform: 'demo', credentials: { token: `${id}-token` }, priority, capacity } })).status).toBe(201);
      expect((await t.call('POST', `/api/v1/sessions/${id}/start`)).status).toBe(200);
    }
    scopedKey = (await t.call('POST', '/api/v1/keys', { body: { name: 'main-only', role: 'session', sessions: ['main'] } })).json.key;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('adds units, assigns them to the best sessions, reads and pages them', async () => {
    const added = await t.call('POST', '/api/v1/units', { body: { units: Array.from({ length: 8 }, (_, i) => ({ id: String(i + 1), kind: 'pair', data: { n: i } })) } });
    expect(added.status).toBe(201);
    expect(added.json).toHaveLength(8);
    const assigned = await t.call('POST', '/api/v1/units/assign', { body: { ids: ['1', '2', '3', '4', '5', '6', '7', '8'] } });
    expect(assigned.status).toBe(200);
    expect(assigned.json.map((u: { sessionId: string }) => u.sessionId)).toEqual(['main', 'main', 'main', 'main', 'main', 'backup', 'backup', 'backup']);
    const page = await t.call('GET', '/api/v1/units?limit=5');
    expect(page.json.items.map((u: { id: string }) => u.id)).toEqual(['1', '2', '3', '4', '5']);
    const next = await t.call('GET', `/api/v1/units?limit=5&cursor=${page.json.nextCursor}`);
    expect(next.json).toMatchObject({ items: [{ id: '6' }, { id: '7' }, { id: '8' }], nextCursor: null });
    expect((await t.call('GET', '/api/v1/units/6')).json).toMatchObject({ id: '6', sessionId: 'backup', group: expect.any(Number) });
    expect((await t.call('GET', '/api/v1/sessions/optimal')).json).toMatchObject({ id: 'backup', spare: 7 });
    const workers = (await t.call('GET', '/api/v1/workers')).json as { sessionId: string; units: number }[];
    expect(workers.map((w) => [w.sessionId, w.units])).toEqual([
      ['backup', 3],
      ['main', 5],
    ]);
  });

  it('reassigns with a dry-run preview first; refuses past capacity (409) and bad selectors (400 with the field)', async () => {
    const preview = await t.call('POST', '/api/v1/units/reassign', { body: { selector: 'all_from:backup', to: 'main', dryRun: true } });
    expect(preview.status).toBe(409);
    expect(preview.json).toMatchObject({ code: 'CAPACITY' });
    const dry = await t.call('POST', '/api/v1/units/reassign', { body: { selector: '1-3', to: 'backup', dryRun: true } });
    expect(dry.json).toMatchObject({ dryRun: true, unitsBefore: 3, unitsAfter: 6, capacity: 10 });
    expect((await t.call('GET', '/api/v1/units/1')).json.sessionId).toBe('main');
    const done = await t.call('POST', '/api/v1/units/reassign', { body: { selector: { ids: ['1', '2', '3'] }, to: 'backup', reason: 'maintenance' } });
    expect(done.status).toBe(200);
    expect((await t.call('GET', '/api/v1/units/1')).json.sessionId).toBe('backup');
    const audit = await t.call('GET', '/api/v1/audit?action=unit.move&limit=3');
    expect(audit.json.map((e: { details: { reason: string } }) => e.details.reason)).toEqual(['maintenance', 'maintenance', 'maintenance']);
    const reversed = await t.call('POST', '/api/v1/units/reassign', { body: { selector: { range: [9, 2] }, to: 'main' } });
    expect(reversed.status).toBe(400);
    expect(reversed.json.code).toBe('VALIDATION');
    expect(JSON.stringify(reversed.json)).toContain('range');
  });

  it('session-scoped keys read only their own sessions\' units and may change none', async () => {
    await t.call('POST', '/api/v1/units/assign', { body: { ids: ['4'], to: 'main' } });
    expect((await t.call('GET', '/api/v1/units?sessionId=main', { key: scopedKey })).json.items.map((u: { id: string }) => u.id)).toEqual(['4', '5']);
    expect((await t.call('GET', '/api/v1/units/4', { key: scopedKey })).status).toBe(200);
    expect((await t.call('GET', '/api/v1/units/1', { key: scopedKey })).status).toBe(404);
    for (const [method, path] of [
      ['GET', '/api/v1/units'],
      ['GET', '/api/v1/units?sessionId=backup'],
      ['POST', '/api/v1/units'],
      ['POST', '/api/v1/units/assign'],
      ['POST', '/api/v1/units/reassign'],
      ['DELETE', '/api/v1/units/4'],
      ['GET', '/api/v1/sessions/optimal'],
      ['GET', '/api/v1/workers'],
    ] as const) {
      const r = await t.call(method, path, { key: scopedKey, body: method === 'GET' ? undefined : {} });
      expect({ path, status: r.status }).toEqual({ path, status: 403 });
    }
    expect((await t.call('DELETE', '/api/v1/units/4')).status).toBe(204);
    expect((await t.call('GET', '/api/v1/units/4')).status).toBe(404);
  });
});
