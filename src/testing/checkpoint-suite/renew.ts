import { sleep, type CheckpointSuiteContext } from './context.js';

/** `renew`: extends a live lease. */
export function renewGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open } = t;
  it('extends a live lease and keeps it from being taken', async () => {
    const cp = open();
    await cp.add([{ key: 'job' }]);
    const [lease] = await cp.claim({ owner: 'w', limit: 1, leaseMs: 60 });
    const renewed = await cp.renew(lease!, 10_000);
    expect(renewed.token).toBe(lease!.token);
    expect(renewed.expiresAt).toBeGreaterThan(lease!.expiresAt);
    await sleep(100);
    expect(await cp.claim({ owner: 'other', limit: 1 })).toEqual([]);
    await cp.complete(renewed);
    expect((await cp.get('job'))?.status).toBe('done');
  });
}
