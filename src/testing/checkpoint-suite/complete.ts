import type { Lease } from '../../checkpoint/contract.js';
import { rejectsWithCode } from '../runner.js';
import type { CheckpointSuiteContext } from './context.js';

/** `complete` / `completeMany`: once, with the result; a stale lease raises LeaseLostError per entry. */
export function completeGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open, items } = t;
  it('completes once, stores the result, and refuses a second completion', async () => {
    const cp = open();
    await cp.add([{ key: 'job' }]);
    const [lease] = await cp.claim({ owner: 'w', limit: 1 });
    await cp.complete(lease!, { ok: true, list: [1, 'two', null] });
    const done = await cp.get('job');
    expect(done).toMatchObject({ status: 'done', result: { ok: true, list: [1, 'two', null] }, leaseExpiresAt: null });
    expect(done?.completedAt).toBeGreaterThan(0);
    await rejectsWithCode(expect, cp.complete(lease!), 'LEASE_LOST');
    expect(await cp.get('job')).toEqual(done);
  });

  it('completes a batch in one call; each lost lease gets its own LeaseLostError', async () => {
    const cp = open();
    await cp.add(items(5));
    const leases = await cp.claim({ owner: 'w', limit: 5, leaseMs: 10_000 });
    await cp.release(leases[1]!);
    const forged: Lease = { ...leases[3]!, token: leases[3]!.token + 1000 };
    const outcomes = await cp.completeMany([
      { lease: leases[0]!, result: 0 },
      { lease: leases[1]! },
      { lease: leases[2]!, result: 2 },
      { lease: forged },
      { lease: { ...leases[4]!, owner: 'intruder' } },
    ]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true, false, false]);
    for (const o of outcomes) if (!o.ok) expect(o.error.code).toBe('LEASE_LOST');
    const s = await cp.stats();
    expect(s).toMatchObject({ done: 2, pending: 1, processing: 2 });
    expect((await cp.get(leases[2]!.key))?.result).toBe(2);
    expect((await cp.get(leases[3]!.key))?.status).toBe('processing');
  });
}
