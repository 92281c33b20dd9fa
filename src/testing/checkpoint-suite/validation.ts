import { createCheckpoint } from '../../checkpoint/checkpoint.js';
import { rejectsWithCode } from '../runner.js';
import type { CheckpointSuiteContext } from './context.js';

/** Bad input is refused with ValidationError and changes nothing. */
export function validationGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open } = t;
  it('refuses bad input with ValidationError and changes nothing', async () => {
    const cp = open();
    await cp.add([{ key: 'ok' }]);
    await rejectsWithCode(expect, cp.add([{ key: '' }]), 'VALIDATION');
    await rejectsWithCode(expect, cp.add([{ key: 'x', payload: (() => 1) as never }]), 'VALIDATION');
    await rejectsWithCode(expect, cp.add([{ key: 'y', priority: 1.5 }]), 'VALIDATION');
    await rejectsWithCode(expect, cp.add('nope' as never), 'VALIDATION');
    await rejectsWithCode(expect, cp.claim({ owner: '', limit: 1 }), 'VALIDATION');
    await rejectsWithCode(expect, cp.claim({ owner: 'w', limit: 0 }), 'VALIDATION');
    await rejectsWithCode(expect, cp.claim({ owner: 'w', leaseMs: -5 }), 'VALIDATION');
    await rejectsWithCode(expect, cp.claimKey('', { owner: 'w' }), 'VALIDATION');
    await rejectsWithCode(expect, cp.complete({ key: 'ok' } as never), 'VALIDATION');
    await rejectsWithCode(expect, cp.purge({ status: 'processing' as never }), 'VALIDATION');
    await rejectsWithCode(expect, cp.list({ limit: -1 }), 'VALIDATION');
    await rejectsWithCode(expect, cp.process('not a function' as never, { owner: 'w' }), 'VALIDATION');
    await rejectsWithCode(expect, cp.process(async () => {}, { owner: 'w', concurrency: 0 }), 'VALIDATION');
    const [lease] = await cp.claim({ owner: 'w', limit: 1 });
    const elsewhere = createCheckpoint({ storage: t.storage, stream: `${t.stream}-b` });
    await rejectsWithCode(expect, elsewhere.complete(lease!), 'VALIDATION');
    await rejectsWithCode(expect, cp.renew(lease!, 0), 'VALIDATION');
    await rejectsWithCode(expect, cp.complete(lease!, { f: () => 1 } as never), 'VALIDATION');
    expect(await cp.stats()).toMatchObject({ total: 1, processing: 1 });
    await rejectsWithCode(expect, (async () => createCheckpoint({ storage: t.storage, stream: '' }))(), 'VALIDATION');
    await rejectsWithCode(expect, (async () => createCheckpoint({ storage: {} as never, stream: 's' }))(), 'VALIDATION');
  });
}
