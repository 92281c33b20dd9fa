import { rejectsWithCode } from '../runner.js';
import type { CheckpointSuiteContext } from './context.js';

/** `fail`: attempts, back-off, dead; `retryDead`. */
export function failGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open, keys } = t;
  it('counts attempts, backs off, and goes dead after maxAttempts; retryDead brings it back', async () => {
    const cp = open({ maxAttempts: 3, backoff: { minMs: 60_000, maxMs: 120_000, factor: 2 } });
    await cp.add([{ key: 'job' }]);
    let [lease] = await cp.claim({ owner: 'w', limit: 1 });
    const first = await cp.fail(lease!, new Error('boom 1'));
    expect(first).toMatchObject({ status: 'failed', attempts: 1, retryInMs: 60_000 });
    expect(await cp.get('job')).toMatchObject({ status: 'failed', attempts: 1, error: 'boom 1' });
    expect(await cp.claim({ owner: 'w', limit: 1 })).toEqual([]);
    await rejectsWithCode(expect, cp.fail(lease!, 'again'), 'LEASE_LOST');

    // retryDead leaves failed (not dead) items alone; retryInMs overrides the back-off.
    expect(await cp.retryDead()).toBe(0);
    expect((await cp.get('job'))?.status).toBe('failed');
    const db = open({ maxAttempts: 3 });
    await db.purge({ status: 'failed' });
    await db.add([{ key: 'job' }]);
    [lease] = await db.claim({ owner: 'w', limit: 1 });
    await db.fail(lease!, 'e1', { retryInMs: 0 });
    [lease] = await db.claim({ owner: 'w', limit: 1 });
    expect(lease?.attempts).toBe(1);
    expect((await db.fail(lease!, 'e2', { retryInMs: 0 })).status).toBe('failed');
    [lease] = await db.claim({ owner: 'w', limit: 1 });
    expect((await db.fail(lease!, { reason: 'e3' }, { retryInMs: 0 })).status).toBe('dead');
    expect(await db.get('job')).toMatchObject({ status: 'dead', attempts: 3, error: '{"reason":"e3"}' });
    expect(await db.claim({ owner: 'w', limit: 1 })).toEqual([]);
    expect(await db.retryDead()).toBe(1);
    expect(await db.get('job')).toMatchObject({ status: 'pending', attempts: 0 });
    expect(keys(await db.claim({ owner: 'w', limit: 1 }))).toEqual(['job']);
  });
}
