import { rejectsWithCode } from '../runner.js';
import type { CheckpointSuiteContext } from './context.js';

/** `release`: back to pending without an attempt. */
export function releaseGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open } = t;
  it('puts the item back without counting an attempt', async () => {
    const cp = open();
    await cp.add([{ key: 'job' }]);
    const [lease] = await cp.claim({ owner: 'w', limit: 1 });
    await cp.release(lease!);
    expect(await cp.get('job')).toMatchObject({ status: 'pending', attempts: 0, owner: null });
    await rejectsWithCode(expect, cp.release(lease!), 'LEASE_LOST');
    const [again] = await cp.claim({ owner: 'w2', limit: 1 });
    expect(again).toMatchObject({ key: 'job', attempts: 0, owner: 'w2' });
  });
}
