import type { AuditInput } from '../../storage/contract.js';
import type { NewUnitRecord, UnitStore } from '../../storage/units-contract.js';
import { rejectsWithCode } from '../runner.js';
import { T0, type SuiteContext } from './context.js';

/**
 * Work units (`units` capability): all-or-nothing writes whose checks (existence, the
 * compare-and-swap on each unit's session, the receiving session's state, health and capacity)
 * run in the same transaction; audit entries with the change; a deleted session's units left
 * unassigned; ranges over integer ids; paging; the change feed of a cluster store.
 */
export function unitsGroup(t: SuiteContext): void {
  const { it, expect } = t;
  const units = (): UnitStore => t.store.units!;
  const unit = (id: string, sessionId: string | null = null, kind = 'pair'): NewUnitRecord => ({ id, kind, data: { id, n: [1, 'x'] }, sessionId, createdAt: T0 });
  const at = T0 + 100;
  const entry = (sessionId: string | null, unitId: string): AuditInput => ({ at, sessionId, action: 'unit.move', actor: 'admin', details: { unit: unitId } });
  const where = async () => Object.fromEntries((await units().list({})).map((u) => [u.id, u.sessionId]));

  it('adds, reads and lists units, unassigned or on a session (capacity 3), as copies', async () => {
    await t.create('s1');
    const added = await units().add([unit('1'), unit('2', 's1'), unit('x', null, 'chat')], { at });
    expect(added.ok).toBe(true);
    expect(await units().get('2')).toEqual({ id: '2', kind: 'pair', data: { id: '2', n: [1, 'x'] }, sessionId: 's1', assignedAt: at, createdAt: T0 });
    expect(await units().get('1')).toMatchObject({ sessionId: null, assignedAt: null });
    expect(await units().get('nope')).toBeNull();
    const got = (await units().get('x'))!;
    (got.data as { id: string }).id = 'changed';
    expect((await units().get('x'))!.data).toEqual({ id: 'x', n: [1, 'x'] });
    expect((await units().list({})).map((u) => u.id)).toEqual(['1', '2', 'x']);
    expect((await units().list({ sessionId: 's1' })).map((u) => u.id)).toEqual(['2']);
    expect((await units().list({ unassigned: true })).map((u) => u.id)).toEqual(['1', 'x']);
    expect((await units().list({ kind: 'chat' })).map((u) => u.id)).toEqual(['x']);
    expect((await units().list({ ids: ['x', '1', 'gone'] })).map((u) => u.id)).toEqual(['1', 'x']);
    expect(await units().counts()).toEqual({ s1: 1 });
  });

  it('a range selects integer ids only; pages follow id order', async () => {
    await units().add(['1', '2', '10', '11', '007', 'a5', '-3', '100'].map((id) => unit(id)), { at });
    expect((await units().list({ range: [-5, 10] })).map((u) => u.id)).toEqual(['-3', '1', '10', '2']);
    expect((await units().list({ range: [11, 11] })).map((u) => u.id)).toEqual(['11']);
    const first = await units().list({ limit: 3 });
    expect(first.map((u) => u.id)).toEqual(['-3', '007', '1']);
    expect((await units().list({ limit: 3, after: '1' })).map((u) => u.id)).toEqual(['10', '100', '11']);
  });

  it('an add with an existing id, an unknown session or past capacity writes nothing', async () => {
    await t.create('s1'); // capacity 3
    await units().add([unit('a', 's1')], { at });
    expect(await units().add([unit('b'), unit('a')], { at })).toEqual({ ok: false, problem: { kind: 'unit-exists', unitId: 'a' } });
    expect(await units().add([unit('b'), unit('c', 'ghost')], { at })).toEqual({ ok: false, problem: { kind: 'session-missing', sessionId: 'ghost' } });
    const over = await units().add([unit('b', 's1'), unit('c', 's1'), unit('d', 's1')], { at });
    expect(over).toEqual({ ok: false, problem: { kind: 'capacity', sessionId: 's1', capacity: 3, units: 1, adding: 3 } });
    expect(await where()).toEqual({ a: 's1' });
  });

  it('moves all or nothing: a unit moved meanwhile, a missing unit, a full or unfit session refuses the whole move', async () => {
    await t.create('s1');
    await t.create('s2', { credentialsFingerprint: 'fp:2', capacity: null });
    await units().add([unit('1', 's1'), unit('2', 's1'), unit('3'), unit('4'), unit('5')], { at });
    const before = await where();
    expect(await units().move([{ id: '3', from: null, to: 's2' }, { id: '1', from: 's2', to: null }], { at })).toEqual({
      ok: false,
      problem: { kind: 'unit-moved', unitId: '1', sessionId: 's1' },
    });
    expect(await units().move([{ id: '3', from: null, to: 's2' }, { id: '9', from: null, to: 's2' }], { at })).toMatchObject({ ok: false, problem: { kind: 'unit-missing', unitId: '9' } });
    const full = await units().move(['3', '4'].map((id) => ({ id, from: null, to: 's1' })), { at });
    expect(full).toEqual({ ok: false, problem: { kind: 'capacity', sessionId: 's1', capacity: 3, units: 2, adding: 2 } });
    const unfit = await units().move([{ id: '3', from: null, to: 's2' }], { at, accept: { states: ['ready', 'degraded'] } });
    expect(unfit).toEqual({ ok: false, problem: { kind: 'session-unfit', sessionId: 's2', state: 'stopped', health: 'unknown' } });
    expect(await where()).toEqual(before);
    // One leaves, two come: the session ends at its capacity.
    const ok = await units().move([{ id: '1', from: 's1', to: 's2' }, { id: '3', from: null, to: 's1' }, { id: '4', from: null, to: 's1' }], { at: at + 1, accept: { health: ['unknown'] } });
    expect(ok.ok && ok.units.map((u) => [u.id, u.sessionId, u.assignedAt])).toEqual([
      ['1', 's2', at + 1],
      ['3', 's1', at + 1],
      ['4', 's1', at + 1],
    ]);
    expect(await units().counts()).toEqual({ s1: 3, s2: 1 });
    const off = await units().move([{ id: '1', from: 's2', to: null }], { at: at + 2 });
    expect(off.ok && off.units[0]).toMatchObject({ sessionId: null, assignedAt: null });
  });

  it('stores the audit entries with the change, and none when it is refused', async () => {
    await t.create('s1');
    await units().add([unit('1'), unit('2')], { at });
    expect((await units().move([{ id: '1', from: 's1', to: null }], { at, audit: [entry(null, '1')] })).ok).toBe(false);
    expect(await t.audit.list({})).toEqual([]);
    const moved = await units().move([{ id: '1', from: null, to: 's1' }, { id: '2', from: null, to: 's1' }], { at, audit: [entry('s1', '1'), entry('s1', '2')] });
    expect(moved.ok).toBe(true);
    expect((await t.audit.list({})).map((e) => e.details.unit)).toEqual(['2', '1']);
  }, ['units', 'audit']);

  it('removes all or nothing; a deleted session leaves its units unassigned', async () => {
    await t.create('s1');
    await units().add([unit('1', 's1'), unit('2', 's1'), unit('3')], { at });
    expect(await units().remove(['3', 'nope'], { at })).toEqual({ ok: false, problem: { kind: 'unit-missing', unitId: 'nope' } });
    expect(await units().get('3')).not.toBeNull();
    const removed = await units().remove(['3', '2'], { at });
    expect(removed.ok && removed.units.map((u) => u.id)).toEqual(['3', '2']);
    expect(await t.sessions.delete('s1')).toBe(true);
    expect(await units().get('1')).toMatchObject({ sessionId: null, assignedAt: null });
    expect(await units().counts()).toEqual({});
  });

  it('refuses bad input with ValidationError before writing anything', async () => {
    await rejectsWithCode(expect, units().add([unit('1'), unit('1')], { at }), 'VALIDATION');
    await rejectsWithCode(expect, units().add([{ ...unit('2'), data: undefined as never }], { at }), 'VALIDATION');
    await rejectsWithCode(expect, units().add([unit('')], { at }), 'VALIDATION');
    await rejectsWithCode(expect, units().move([{ id: '1', from: null, to: 's' }], { at: Number.NaN }), 'VALIDATION');
    await rejectsWithCode(expect, units().list({ range: [5, 1] }), 'VALIDATION');
    await rejectsWithCode(expect, units().remove(['a', 'a'], { at }), 'VALIDATION');
    expect(await units().list({})).toEqual([]);
  });

  it('a cluster store puts every session that gained or lost units in its change feed', async () => {
    await t.create('s1');
    await t.create('s2', { credentialsFingerprint: 'fp:2' });
    await units().add([unit('1', 's1')], { at });
    const { seq } = await t.cluster.changes(0, 1000);
    await units().move([{ id: '1', from: 's1', to: 's2' }], { at });
    expect((await t.cluster.changes(seq, 1000)).ids.sort()).toEqual(['s1', 's2']);
  }, ['units', 'cluster']);
}
