import { rejectsWithCode } from '../runner.js';
import { sleep, type CheckpointSuiteContext } from './context.js';

/** Expired leases are taken back by the claim itself; attempts count; poison items end dead. */
export function expiryGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open } = t;
  it('takes an expired lease back in the claim itself; the old holder gets LeaseLostError and changes nothing', async () => {
    const cp = open();
    await cp.add([{ key: 'job', payload: 1 }]);
    const [old] = await cp.claim({ owner: 'slow', limit: 1, leaseMs: 30 });
    expect(await cp.claim({ owner: 'fast', limit: 1, leaseMs: 10_000 })).toEqual([]);
    await sleep(80);
    const [fresh] = await cp.claim({ owner: 'fast', limit: 1, leaseMs: 10_000 });
    expect(fresh?.key).toBe('job');
    expect(fresh!.token).toBeGreaterThan(old!.token);
    expect(fresh!.attempts).toBe(1);
    const before = await cp.get('job');
    await rejectsWithCode(expect, cp.complete(old!, { by: 'slow' }), 'LEASE_LOST');
    await rejectsWithCode(expect, cp.renew(old!, 10_000), 'LEASE_LOST');
    await rejectsWithCode(expect, cp.fail(old!, new Error('late')), 'LEASE_LOST');
    await rejectsWithCode(expect, cp.release(old!), 'LEASE_LOST');
    expect(await cp.get('job')).toEqual(before);
    await cp.complete(fresh!, { by: 'fast' });
    expect(await cp.get('job')).toMatchObject({ status: 'done', result: { by: 'fast' }, owner: 'fast' });
  });

  it('refuses to complete an expired lease even before anyone took it over', async () => {
    const cp = open();
    await cp.add([{ key: 'job' }]);
    const [lease] = await cp.claim({ owner: 'w', limit: 1, leaseMs: 20 });
    await sleep(60);
    const error = await rejectsWithCode(expect, cp.complete(lease!), 'LEASE_LOST');
    expect(error.message).toContain('job');
    expect((await cp.get('job'))?.status).toBe('processing');
  });

  it('counts expired leases as attempts and ends a poison item dead', async () => {
    const cp = open({ maxAttempts: 2 });
    await cp.add([{ key: 'poison' }]);
    await cp.claim({ owner: 'w', limit: 1, leaseMs: 20 });
    await sleep(50);
    const [second] = await cp.claim({ owner: 'w', limit: 1, leaseMs: 20 });
    expect(second?.attempts).toBe(1);
    await sleep(50);
    expect(await cp.claim({ owner: 'w', limit: 1, leaseMs: 20 })).toEqual([]);
    const item = await cp.get('poison');
    expect(item).toMatchObject({ status: 'dead', attempts: 2, owner: null });
    expect((await cp.stats()).dead).toBe(1);
  });
}
