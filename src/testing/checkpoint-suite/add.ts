import { createCheckpoint } from '../../checkpoint/checkpoint.js';
import type { CheckpointSuiteContext } from './context.js';

/** `add`: idempotent by key, streams kept apart. */
export function addGroup(t: CheckpointSuiteContext): void {
  const { it, expect, open, keys } = t;
  it('adds items idempotently by key and returns how many were new', async () => {
    const cp = open();
    expect(await cp.add([{ key: 'a', payload: { n: 1 } }, { key: 'b' }, { key: 'a', payload: { n: 2 } }])).toBe(2);
    expect(await cp.add([{ key: 'b' }, { key: 'c', priority: 3 }])).toBe(1);
    expect(await cp.add([])).toBe(0);
    const a = await cp.get('a');
    expect(a).toMatchObject({ key: 'a', status: 'pending', payload: { n: 1 }, priority: 0, attempts: 0, token: 0, owner: null });
    expect((await cp.get('c'))?.priority).toBe(3);
    expect(await cp.get('missing')).toBeNull();
    expect((await cp.stats()).total).toBe(3);
  });

  it('keeps streams apart', async () => {
    const cp = open();
    const other = createCheckpoint({ storage: t.storage, stream: `${t.stream}-other` });
    await cp.add([{ key: 'x' }]);
    await other.add([{ key: 'x' }, { key: 'y' }]);
    expect((await cp.stats()).total).toBe(1);
    expect((await other.stats()).total).toBe(2);
    const [lease] = await cp.claim({ owner: 'w', limit: 10 });
    expect(lease?.stream).toBe(t.stream);
    expect((await other.get('x'))?.status).toBe('pending');
  });

  it('does not hand out items before their runAt', async () => {
    const cp = open();
    await cp.add([{ key: 'later', runAt: Date.now() + 60_000 }, { key: 'now' }]);
    expect(keys(await cp.claim({ owner: 'w', limit: 10 }))).toEqual(['now']);
  });
}
