import { T0, sampleSessionRecord, type SuiteContext } from './context.js';

/** `sessions.saveStatus`: runtime status in batches, last writer wins, `version` untouched. */
export function statusGroup(t: SuiteContext): void {
  const { it, expect, create, must } = t;
  it('writes runtime status for many sessions without touching version', async () => {
    await create('a1');
    await create('b2');
    await t.sessions.saveStatus([
      { id: 'a1', state: 'ready', health: 'healthy', lastActivityAt: T0 + 50 },
      { id: 'b2', state: 'failed', lastError: { code: 'ADAPTER', message: 'no route', at: T0 + 60 } },
    ]);
    const a = await must('a1');
    const b = await must('b2');
    expect(a).toEqual({ ...sampleSessionRecord('a1'), state: 'ready', health: 'healthy', lastActivityAt: T0 + 50, version: 1 });
    expect(b.state).toBe('failed');
    expect(b.health).toBe('unknown');
    expect(b.lastError).toEqual({ code: 'ADAPTER', message: 'no route', at: T0 + 60 });
    expect(b.version).toBe(1);
    // the version is untouched, so an update with version 1 still succeeds
    expect((await t.update('a1', { priority: 1, updatedAt: T0 + 70 }, 1)).state).toBe('ready');
  });

  it('keeps fields a status update leaves out, and clears lastError with null', async () => {
    await create('a1', { lastError: { code: 'X', message: 'old', at: T0 } });
    await t.sessions.saveStatus([{ id: 'a1', state: 'ready' }]);
    expect((await must('a1')).lastError).toEqual({ code: 'X', message: 'old', at: T0 });
    await t.sessions.saveStatus([{ id: 'a1', lastError: null, lastActivityAt: null }]);
    const a = await must('a1');
    expect(a.lastError).toBeNull();
    expect(a.state).toBe('ready');
    expect(a.lastActivityAt).toBeNull();
  });

  it('skips ids that no longer exist and still applies the rest', async () => {
    await create('a1');
    await t.sessions.saveStatus([
      { id: 'gone', state: 'ready' },
      { id: 'a1', state: 'degraded', health: 'unhealthy' },
    ]);
    expect(await t.sessions.get('gone')).toBeNull();
    const a = await must('a1');
    expect(a.state).toBe('degraded');
    expect(a.health).toBe('unhealthy');
    await t.sessions.saveStatus([]);
  });

  it('lets the last status written win', async () => {
    await create('a1');
    await t.sessions.saveStatus([{ id: 'a1', state: 'starting' }, { id: 'a1', state: 'ready' }]);
    await t.sessions.saveStatus([{ id: 'a1', health: 'healthy' }]);
    const a = await must('a1');
    expect(a.state).toBe('ready');
    expect(a.health).toBe('healthy');
  });
}
