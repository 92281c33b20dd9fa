import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { parseUnitSelector, type SessionManager, type StorageDriver, type UnitsMovedEvent } from 'multisession';
import { postgresStorage } from 'multisession/postgres';
import { sqliteStorage } from 'multisession/sqlite';
import { memoryStorage } from 'multisession';
import { PG_URL, postgresForTests } from '../helpers/postgres.js';
import { settle } from '../helpers/scripted-adapter.js';
import { setup } from '../helpers/setup.js';

const { reachable: pgReachable, freshSchema } = await postgresForTests('ms_units');

const drivers: [string, () => StorageDriver][] = [
  ['memory', () => memoryStorage()],
  ['sqlite', () => sqliteStorage({ filename: ':memory:' })],
];
if (pgReachable) drivers.push(['postgres', () => postgresStorage({ connectionString: PG_URL }, { schema: freshSchema(), poolSize: 4 })]);

let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

/** What a caller gets back from a refused call. */
async function refused(p: Promise<unknown>): Promise<{ code: string; message: string; issues?: { path: (string | number)[] }[]; context: Record<string, unknown> }> {
  const error = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).not.toBeNull();
  return error as never;
}

describe.each(drivers)('manager.units on %s', (_name, storage) => {
  async function make(overrides = {}) {
    const env = await setup({ storage: storage(), secretKey: randomBytes(32).toString('base64'), ...overrides });
    open.push(env.manager);
    const moved: UnitsMovedEvent[] = [];
    env.manager.on('units.moved', (e) => void moved.push(e));
    return { ...env, moved };
  }
  type Env = Awaited<ReturnType<typeof make>>;
  async function ready(env: Env, id: string, fields: { priority?: number; capacity?: number | null; labels?: Record<string, string> } = {}) {
    await env.manager.create({ id, platform: 'scripted', ...fields });
    expect((await env.manager.start(id)).state).toBe('ready');
  }
  const where = async (m: SessionManager) => Object.fromEntries((await m.units.list({ limit: 1000 })).items.map((u) => [u.id, u.sessionId]));
  const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

  it('adds, reads and pages units; refuses duplicates and unknown sessions with the field path, writing nothing', async () => {
    const { manager: m } = await make();
    await ready({ manager: m } as Env, 'a');
    const added = await m.units.add([{ id: '1', kind: 'pair', data: { from: -100, to: '99' } }, { id: '2', sessionId: 'a' }]);
    expect(added.map((u) => [u.id, u.kind, u.sessionId, u.group])).toEqual([
      ['1', 'pair', null, null],
      ['2', 'unit', 'a', 0],
    ]);
    expect(await m.units.get('1')).toMatchObject({ id: '1', data: { from: -100, to: '99' }, sessionId: null, assignedAt: null });
    expect(await m.units.get('nope')).toBeNull();
    await m.units.add(ids(3, 7).map((id) => ({ id })));
    const first = await m.units.list({ limit: 4 });
    expect(first.items.map((u) => u.id)).toEqual(['1', '2', '3', '4']);
    expect((await m.units.list({ limit: 4, cursor: first.nextCursor! })).items.map((u) => u.id)).toEqual(['5', '6', '7']);
    expect((await m.units.list({ sessionId: 'a' })).items.map((u) => u.id)).toEqual(['2']);

    const dup = await refused(m.units.add([{ id: '8' }, { id: '8' }]));
    expect(dup).toMatchObject({ code: 'VALIDATION', issues: [{ path: [1, 'id'] }] });
    const taken = await refused(m.units.add([{ id: '8' }, { id: '1' }]));
    expect(taken.code).toBe('VALIDATION');
    const ghost = await refused(m.units.add([{ id: '8' }, { id: '9', sessionId: 'ghost' }]));
    expect(ghost).toMatchObject({ code: 'VALIDATION', issues: [{ path: [1, 'sessionId'] }] });
    expect(await m.units.get('8')).toBeNull();
    expect((await refused(m.units.list({ cursor: 'garbage!' }))).code).toBe('VALIDATION');
  });

  it('pickSession: ready and healthy before degraded, then priority, then spare capacity, then fewest units; null when nothing fits', async () => {
    const env = await make();
    const { manager: m, scripted: s, clock } = env;
    expect(await m.units.pickSession()).toBeNull();
    await ready(env, 'low', { priority: 2, capacity: 10 });
    await ready(env, 'hi-small', { priority: 8, capacity: 3 });
    await ready(env, 'hi-big', { priority: 8, capacity: 5, labels: { region: 'eu' } });
    await m.create({ id: 'stopped', platform: 'scripted', priority: 10, capacity: 50 });
    expect(await m.units.pickSession()).toMatchObject({ id: 'hi-big', priority: 8, capacity: 5, units: 0, spare: 5 });
    await m.units.add(ids(1, 3).map((id) => ({ id, sessionId: 'hi-big' })));
    // hi-big has 2 spare now, hi-small 3: the most spare wins within a priority.
    expect((await m.units.pickSession())!.id).toBe('hi-small');
    expect((await m.units.pickSession({ labels: { region: 'eu' } }))!.id).toBe('hi-big');
    expect(await m.units.pickSession({ platform: 'other' })).toBeNull();
    // A degraded session goes after every ready one, whatever its priority.
    s.behave('hi-small', { health: { status: 'unhealthy' } });
    await clock.advance(2_000);
    expect((await m.get('hi-small')).state).toBe('degraded');
    expect((await m.units.pickSession())!.id).toBe('hi-big');
    await m.units.add(ids(4, 5).map((id) => ({ id, sessionId: 'hi-big' })));
    expect((await m.units.pickSession())!.id).toBe('low');
    await m.units.add(ids(6, 15).map((id) => ({ id, sessionId: 'low' })));
    expect((await m.units.pickSession())!.id).toBe('hi-small');
  });

  it('assign: to a named session, to the best ones, or to none; past capacity a CapacityError naming the session and nothing changes', async () => {
    const env = await make();
    const { manager: m, moved } = env;
    await ready(env, 'a', { priority: 9, capacity: 2 });
    await ready(env, 'b', { priority: 5, capacity: 3 });
    await m.units.add(ids(1, 6).map((id) => ({ id })));
    const full = await refused(m.units.assign(['1', '2', '3'], { to: 'a' }));
    expect(full).toMatchObject({ code: 'CAPACITY', context: { sessionId: 'a', capacity: 2, units: 0, adding: 3 } });
    expect(full.message).toMatch(/Session "a" has capacity 2 and holds 0 units; 3 more do not fit/);
    expect(Object.values(await where(m)).every((s) => s === null)).toBe(true);

    const placed = await m.units.assign(['1', '2', '3', '4'], { actor: 'admin' });
    expect(placed.map((u) => u.sessionId)).toEqual(['a', 'a', 'b', 'b']);
    expect(moved.at(-1)).toMatchObject({ reason: 'assign', actor: 'admin', moves: [{ id: '1', from: null, to: 'a' }, { id: '2', from: null, to: 'a' }, { id: '3', from: null, to: 'b' }, { id: '4', from: null, to: 'b' }] });
    const none = await refused(m.units.assign(['5', '6']));
    expect(none).toMatchObject({ code: 'CAPACITY', context: { units: 2, fits: 1 } });
    expect((await m.units.get('5'))!.sessionId).toBeNull();
    expect((await m.units.assign(['4'], { to: null }))[0]).toMatchObject({ sessionId: null, group: null });
    const unknown = await refused(m.units.assign(['5', 'zz'], { to: 'b' }));
    expect(unknown).toMatchObject({ code: 'VALIDATION', issues: [{ path: ['ids', 1] }] });
    expect((await refused(m.units.assign(['5'], { to: 'ghost' }))).issues?.[0]?.path).toEqual(['to']);
    const audit = await m.audit({ action: 'unit.move' });
    expect(audit.map((e) => [e.details.unit, e.details.to, e.actor])).toEqual([
      ['4', null, null],
      ['4', 'b', 'admin'],
      ['3', 'b', 'admin'],
      ['2', 'a', 'admin'],
      ['1', 'a', 'admin'],
    ]);
  });

  it('reassign by ids, range and session (the seed text forms): pre-flight checks, dryRun, one audit entry per moved unit', async () => {
    const env = await make();
    const { manager: m, moved } = env;
    await ready(env, 'main', { capacity: 20 });
    await ready(env, 'backup', { capacity: 12 });
    await m.create({ id: 'off', platform: 'scripted' });
    await m.units.add(ids(1, 15).map((id) => ({ id, sessionId: 'main' })));

    const plan = await m.units.reassign(parseUnitSelector('1-10'), 'backup', { dryRun: true });
    expect(plan).toMatchObject({ dryRun: true, to: 'backup', capacity: 12, unitsBefore: 0, unitsAfter: 10, unchanged: [] });
    expect(plan.moves.map((mv) => mv.id).sort()).toEqual(ids(1, 10).sort());
    expect((await m.units.list({ sessionId: 'backup' })).items).toEqual([]);
    expect(moved).toEqual([]);

    const done = await m.units.reassign(parseUnitSelector('1,2,3'), 'backup', { reason: 'maintenance', actor: 'root' });
    expect(done).toMatchObject({ dryRun: false, unitsAfter: 3 });
    expect(moved).toHaveLength(1);
    expect(moved[0]).toMatchObject({ reason: 'maintenance', actor: 'root' });
    const entries = await m.audit({ action: 'unit.move' });
    expect(entries.map((e) => e.details.unit).sort()).toEqual(['1', '2', '3']);
    expect(entries[0]).toMatchObject({ actor: 'root', sessionId: 'backup', details: { from: 'main', to: 'backup', reason: 'maintenance' } });

    // Past the capacity (3 + 12 > 12): CapacityError, nothing moves.
    const over = await refused(m.units.reassign(parseUnitSelector('all_from:main'), 'backup'));
    expect(over).toMatchObject({ code: 'CAPACITY', context: { sessionId: 'backup', capacity: 12, units: 3, adding: 12 } });
    // A target that is not ready and healthy: refused at `to`.
    const stopped = await refused(m.units.reassign({ ids: ['4'] }, 'off'));
    expect(stopped).toMatchObject({ code: 'VALIDATION', issues: [{ path: ['to'] }] });
    expect(stopped.message).toMatch(/stopped/);
    expect((await m.units.list({ sessionId: 'main' })).items).toHaveLength(12);

    const back = await m.units.reassign({ fromSession: 'backup' }, 'main');
    expect(back.moves).toHaveLength(3);
    expect((await m.units.list({ sessionId: 'main' })).items).toHaveLength(15);
    expect((await m.audit({ action: 'unit.move' })).length).toBe(6);
  });

  it('bad selectors and targets: ValidationError with the field path, nothing changes', async () => {
    const env = await make();
    const { manager: m } = env;
    await ready(env, 'a');
    await m.units.add([{ id: '1', sessionId: 'a' }]);
    const cases: [string, () => Promise<unknown>, (string | number)[]][] = [
      ['reversed range', () => m.units.reassign({ range: [10, 1] }, 'a'), ['range']],
      ['too wide', () => m.units.reassign({ range: [1, 100_001] }, 'a'), ['range']],
      ['mixed forms', () => m.units.reassign({ ids: ['1'], range: [1, 2] } as never, 'a'), ['selector']],
      ['unknown unit', () => m.units.reassign({ ids: ['1', 'x'] }, 'a'), ['selector', 'ids', 1]],
      ['unknown from', () => m.units.reassign({ fromSession: 'ghost' }, 'a'), ['selector', 'fromSession']],
      ['unknown target', () => m.units.reassign({ ids: ['1'] }, 'ghost'), ['to']],
      ['duplicate ids', () => m.units.reassign({ ids: ['1', '1'] }, 'a'), ['ids', 1]],
    ];
    for (const [what, p, path] of cases) {
      const e = await refused(p());
      expect({ what, code: e.code, path: e.issues?.[0]?.path }).toEqual({ what, code: 'VALIDATION', path });
    }
    expect(() => parseUnitSelector('1-3,5')).toThrow(/mixes a range with a list/);
    expect(() => parseUnitSelector('9-2')).toThrow(/reversed/);
    expect(parseUnitSelector(' all_from:user_2 ')).toEqual({ fromSession: 'user_2' });
    expect(await where(m)).toEqual({ 1: 'a' });
    expect((await refused(m.update('a', { priority: 11 }))).code).toBe('VALIDATION');
  });

  it('delete: a session with units needs force; force moves them first, or changes nothing when they do not fit', async () => {
    const env = await make();
    const { manager: m, moved } = env;
    await ready(env, 'old', { capacity: 10 });
    await ready(env, 'spare', { capacity: 3 });
    await m.units.add(ids(1, 5).map((id) => ({ id, sessionId: 'old' })));
    const conflict = await refused(m.delete('old', { force: false }));
    expect(conflict).toMatchObject({ code: 'CONFLICT', context: { sessionId: 'old', units: 5 } });
    expect(conflict.message).toMatch(/holds 5 units/);
    const tooMany = await refused(m.delete('old', { force: true }));
    expect(tooMany).toMatchObject({ code: 'CAPACITY', context: { units: 5, fits: 3 } });
    expect((await m.get('old')).id).toBe('old');
    expect((await m.units.list({ sessionId: 'old' })).items).toHaveLength(5);

    await ready(env, 'more', { capacity: 2 });
    await m.delete('old', { force: true, actor: 'admin' });
    await expect(m.get('old')).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    const after = await where(m);
    expect(Object.values(after).sort()).toEqual(['more', 'more', 'spare', 'spare', 'spare']);
    expect(moved.at(-1)).toMatchObject({ reason: 'session deleted', actor: 'admin' });
  });

  it('capacity below the units already assigned is a CapacityError at capacity; the session keeps its capacity', async () => {
    const env = await make();
    const { manager: m } = env;
    await ready(env, 'a', { capacity: 5 });
    await m.units.add(ids(1, 4).map((id) => ({ id, sessionId: 'a' })));
    const e = await refused(m.update('a', { capacity: 3 }));
    expect(e).toMatchObject({ code: 'CAPACITY', context: { sessionId: 'a', capacity: 3, units: 4, path: ['capacity'] } });
    expect((await m.get('a')).capacity).toBe(5);
    expect((await m.update('a', { capacity: 4 })).capacity).toBe(4);
  });

  it('ctx.units: the adapter sees its units in groups of at most units.groupSize, and each change', async () => {
    const env = await make({ units: { groupSize: 3 } });
    const { manager: m, scripted: s } = env;
    await m.units.add(ids(1, 4).map((id) => ({ id, sessionId: null, kind: 'pair' })));
    await m.create({ id: 'w', platform: 'scripted' });
    await m.units.assign(['1', '2'], { to: 'w' }); // units may wait on a stopped session
    await m.start('w');
    const units = s.last('w').ctx.units;
    expect(units.list.map((u) => u.id)).toEqual(['1', '2']);
    expect(units.groups.map((g) => g.units.length)).toEqual([2]);
    const changes: { added: string[]; removed: string[]; sizes: number[] }[] = [];
    units.onChange((c) => void changes.push({ added: c.added, removed: c.removed, sizes: c.groups.map((g) => g.units.length) }));
    await m.units.add(ids(5, 8).map((id) => ({ id, sessionId: 'w' })));
    expect(changes.at(-1)).toEqual({ added: ['5', '6', '7', '8'], removed: [], sizes: [3, 3] });
    await m.units.remove(['5', '6', '7']);
    // Three units fit in one group: the groups merge (8 joins 1 and 2).
    expect(changes.at(-1)).toMatchObject({ removed: ['5', '6', '7'], sizes: [3] });
    expect(units.groups.flatMap((g) => g.units.map((u) => u.group))).toEqual(units.groups.flatMap((g) => g.units.map(() => g.index)));
    const status = (await m.workerStatus()).find((w) => w.sessionId === 'w')!;
    expect(status).toMatchObject({ state: 'ready', units: 3, capacity: null });
    expect(status.groups).toEqual([{ index: 0, units: ['1', '2', '8'] }]);
    await m.stop('w');
    await m.units.add([{ id: '9', sessionId: 'w' }]);
    expect(changes).toHaveLength(2); // the stopped connection hears nothing more
  });

  it('failover: a failed or expired session moves its units at once; an unhealthy one after units.failoverAfterMs (manual clock)', async () => {
    const env = await make({ units: { failoverAfterMs: 10_000 } });
    const { manager: m, scripted: s, clock, moved } = env;
    await ready(env, 'sick', { priority: 9 });
    await ready(env, 'ok1', { capacity: 2 });
    await ready(env, 'ok2', { capacity: 2 });
    await m.units.add(ids(1, 3).map((id) => ({ id, sessionId: 'sick' })));
    s.behave('sick', { health: { status: 'unhealthy', detail: 'no access' } });
    await clock.advance(2_000);
    expect((await m.get('sick')).state).toBe('degraded');
    await clock.advance(7_000);
    await settle();
    expect((await m.units.list({ sessionId: 'sick' })).items).toHaveLength(3); // not yet
    await clock.advance(2_000);
    await settle();
    await expect.poll(async () => (await m.units.list({ sessionId: 'sick' })).items.length).toBe(0);
    expect(Object.values(await where(m)).sort()).toEqual(['ok1', 'ok1', 'ok2']);
    expect(moved.at(-1)).toMatchObject({ reason: 'health', actor: null });
    expect((await m.audit({ action: 'unit.move' })).every((e) => e.details.reason === 'health')).toBe(true);

    // Expired: at once, but only what fits (ok2 has one place; 'sick' has failed by now and takes none) …
    expect((await m.get('sick')).state).toBe('failed');
    s.last('ok1').ctx.expired('token revoked');
    await settle();
    await clock.advance(20); // the scheduler's resolution (10 ms)
    await expect.poll(async () => (await m.units.list({ sessionId: 'ok1' })).items.length).toBe(1);
    expect((await m.units.list({ sessionId: 'ok2' })).items).toHaveLength(2);
    // … and the rest once there is room, failoverAfterMs later.
    await ready(env, 'ok3');
    await clock.advance(10_000);
    await expect.poll(async () => (await m.units.list({ sessionId: 'ok1' })).items.length).toBe(0);
    expect((await m.units.list({ sessionId: 'ok3' })).items).toHaveLength(1);
  });
});
