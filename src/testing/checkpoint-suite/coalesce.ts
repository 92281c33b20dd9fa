import { createCheckpoint } from '../../checkpoint/checkpoint.js';
import type { CheckpointBackend, CheckpointHost } from '../../checkpoint/contract.js';
import { StorageError } from '../../errors.js';
import type { CheckpointSuiteContext } from './context.js';

const METHODS = ['add', 'claim', 'claimKey', 'renew', 'complete', 'fail', 'release', 'get', 'list', 'stats', 'retryDead', 'purge'] as const;

/** The store, with its backend's calls counted and, where asked, replaced. */
function spy(storage: CheckpointHost, replace: Partial<CheckpointBackend> = {}) {
  const backend = storage.checkpoint!;
  const calls: { method: string; size: number }[] = [];
  const checkpoint = {} as Record<string, unknown>;
  for (const m of METHODS) {
    checkpoint[m] = (...args: unknown[]) => {
      calls.push({ method: m, size: Array.isArray(args[1]) ? args[1].length : 1 });
      const own = replace[m] as ((...a: unknown[]) => unknown) | undefined;
      return own ? own(...args) : (backend[m] as (...a: unknown[]) => unknown)(...args);
    };
  }
  const host: CheckpointHost = { kind: storage.kind, init: () => storage.init(), checkpoint: { kind: backend.kind, ...checkpoint } as CheckpointBackend };
  return { host, calls: (method: string) => calls.filter((c) => c.method === method) };
}

/** Group commit: concurrent claims and completions of one checkpoint share a store call. */
export function coalesceGroup(t: CheckpointSuiteContext): void {
  const { it, expect, items } = t;

  it('sends concurrent claims and completions to the store together; each caller gets its own items under its own name', async () => {
    const { host, calls } = spy(t.storage);
    const cp = createCheckpoint({ storage: host, stream: t.stream });
    await cp.add(items(8));
    const owners = Array.from({ length: 8 }, (_, i) => `w${i}`);
    const leases = await Promise.all(owners.map((owner) => cp.claim({ owner, limit: 1 })));
    expect(leases.map((l) => l.length)).toEqual(owners.map(() => 1));
    expect(leases.map((l) => l[0]!.owner)).toEqual(owners);
    expect(new Set(leases.map((l) => l[0]!.key)).size).toBe(8);
    const claims = calls('claim');
    expect(claims.length < 8).toBe(true);
    expect(claims.reduce((n, c) => n + c.size, 0)).toBe(8);

    await Promise.all(leases.map(([lease], i) => cp.complete(lease!, { by: i })));
    const completes = calls('complete');
    expect(completes.length < 8).toBe(true);
    expect(completes.reduce((n, c) => n + c.size, 0)).toBe(8);
    for (const [i, [lease]] of leases.entries()) expect(await cp.get(lease!.key)).toMatchObject({ status: 'done', result: { by: i }, owner: `w${i}` });
  });

  it('fails only the calls whose items the database refuses when a shared statement is rolled back', async () => {
    const backend = t.storage.checkpoint!;
    // A store that refuses any statement carrying the result "poison", as a database refuses a value.
    const { host } = spy(t.storage, {
      complete: async (stream, entries) => {
        if (entries.some((e) => e.result === 'poison')) {
          throw new StorageError('[test] checkpoint complete failed: invalid input', { cause: Object.assign(new Error('invalid input'), { code: '22P05' }) });
        }
        return backend.complete(stream, entries);
      },
    });
    const cp = createCheckpoint({ storage: host, stream: t.stream });
    await cp.add(items(4));
    const leases = await Promise.all(['a', 'b', 'c', 'd'].map((owner) => cp.claim({ owner, limit: 1 })));
    const outcomes = await Promise.allSettled(leases.map(([lease], i) => cp.complete(lease!, i === 2 ? 'poison' : i)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'STORAGE' });
    expect(await cp.get(leases[2]![0]!.key)).toMatchObject({ status: 'processing' });
    for (const i of [0, 1, 3]) expect(await cp.get(leases[i]![0]!.key)).toMatchObject({ status: 'done', result: i });
  });
}
