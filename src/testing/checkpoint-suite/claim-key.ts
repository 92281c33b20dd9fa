import { rejectsWithCode } from '../runner.js';
import { sleep, type CheckpointSuiteContext } from './context.js';

/** `claimKey`: a lease on one known item, created when absent. */
export function claimKeyGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open } = t;
  it('creates an absent item and locks it; a second worker gets null', async () => {
    const cp = open();
    const lease = await cp.claimKey('msg-100', { owner: 's1', leaseMs: 10_000, payload: { chat: 7 } });
    expect(lease).toMatchObject({ stream: t.stream, key: 'msg-100', owner: 's1', payload: { chat: 7 }, attempts: 0 });
    expect(await cp.claimKey('msg-100', { owner: 's2', leaseMs: 10_000 })).toBeNull();
    expect((await cp.get('msg-100'))?.status).toBe('processing');
    await cp.complete(lease!);
    expect(await cp.claimKey('msg-100', { owner: 's2', leaseMs: 10_000 })).toBeNull();
    expect((await cp.get('msg-100'))?.status).toBe('done');
  });

  it('locks an existing pending item and takes over an expired lease', async () => {
    const cp = open();
    await cp.add([{ key: 'm1', payload: 'p' }]);
    const first = await cp.claimKey('m1', { owner: 's1', leaseMs: 20 });
    expect(first).toMatchObject({ key: 'm1', payload: 'p' });
    await sleep(60);
    const second = await cp.claimKey('m1', { owner: 's2', leaseMs: 10_000 });
    expect(second?.owner).toBe('s2');
    expect(second!.token).toBeGreaterThan(first!.token);
    await rejectsWithCode(expect, cp.complete(first!), 'LEASE_LOST');
  });

  it('races: exactly one of many concurrent claimKey calls wins', async () => {
    const cp = open();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => cp.claimKey('hot', { owner: `s${i}`, leaseMs: 10_000 })),
    );
    expect(results.filter((r) => r !== null)).toHaveLength(1);
  });
}
