import { createCheckpoint, type Checkpoint, type CheckpointOptions } from '../checkpoint/checkpoint.js';
import type { CheckpointHost, Lease } from '../checkpoint/contract.js';
import { rejectsWithCode, type TestRunner } from './runner.js';

/** Groups of {@link checkpointConformanceSuite}; pass names in `skip` to switch groups off. */
export const CHECKPOINT_SUITE_GROUPS = [
  'add',
  'claim',
  'fencing',
  'expiry',
  'claim-key',
  'renew',
  'complete',
  'fail',
  'release',
  'inspect',
  'validation',
  'process',
] as const;
export type CheckpointSuiteGroup = (typeof CHECKPOINT_SUITE_GROUPS)[number];

/** What the suite's factory returns for each test. */
export interface CheckpointSuiteTarget {
  /** A store with the checkpoint: a storage driver (`memoryStorage()` …) or a checkpoint store (`memoryCheckpoint()` …). */
  storage: CheckpointHost;
  /** Called after each test. */
  close?: () => Promise<void>;
}

export interface CheckpointSuiteOptions {
  /** Shown in the suite's title: `checkpoint conformance: <name>`. */
  name?: string;
  /** Groups to leave out (see {@link CHECKPOINT_SUITE_GROUPS}). */
  skip?: readonly CheckpointSuiteGroup[];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let streamCounter = 0;

/**
 * The checkpoint conformance suite: every rule of the checkpoint contract (atomic claims, fencing
 * tokens that only grow, compare-and-swap changes that raise `LeaseLostError` and change nothing,
 * expiry taken back by the claim, attempts and `dead`, `process()`), checked through the public
 * `createCheckpoint` API. Our memory, SQLite and PostgreSQL backends pass it; run it on yours.
 *
 * Every test works in a stream of its own, so the factory may return the same store each time.
 * Expiry is checked with short real leases (tens of milliseconds) and waits; nothing asserts on
 * elapsed time.
 *
 * @example
 * ```ts
 * import { describe, it, expect, beforeEach, afterEach } from 'vitest';
 * import { memoryStorage } from 'multisession';
 * import { checkpointConformanceSuite } from 'multisession/testing';
 *
 * checkpointConformanceSuite({ describe, it, expect, beforeEach, afterEach }, async () => ({ storage: memoryStorage() }), { name: 'memory' });
 * ```
 */
export function checkpointConformanceSuite(
  runner: TestRunner,
  factory: () => Promise<CheckpointSuiteTarget>,
  options: CheckpointSuiteOptions = {},
): void {
  const { describe, it, expect, beforeEach, afterEach } = runner;
  const skip = new Set<string>(options.skip ?? []);
  let target: CheckpointSuiteTarget | undefined;
  let stream = '';

  const group = (name: CheckpointSuiteGroup, body: () => void): void => {
    if (!skip.has(name)) describe(name, body);
  };
  const open = (extra: Partial<Omit<CheckpointOptions, 'storage'>> = {}): Checkpoint =>
    createCheckpoint({ storage: target!.storage, stream, ...extra });
  const keys = (leases: { key: string }[]) => leases.map((l) => l.key).sort();
  const items = (n: number, prefix = 'k') =>
    Array.from({ length: n }, (_, i) => ({ key: `${prefix}${String(i).padStart(4, '0')}`, payload: { i } }));

  describe(`checkpoint conformance: ${options.name ?? 'backend'}`, () => {
    beforeEach(async () => {
      target = await factory();
      stream = `suite-${process.pid}-${Date.now().toString(36)}-${++streamCounter}`;
    });
    afterEach(async () => {
      const t = target;
      target = undefined;
      await t?.close?.();
    });

    group('add', () => {
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
        const other = createCheckpoint({ storage: target!.storage, stream: `${stream}-other` });
        await cp.add([{ key: 'x' }]);
        await other.add([{ key: 'x' }, { key: 'y' }]);
        expect((await cp.stats()).total).toBe(1);
        expect((await other.stats()).total).toBe(2);
        const [lease] = await cp.claim({ owner: 'w', limit: 10 });
        expect(lease?.stream).toBe(stream);
        expect((await other.get('x'))?.status).toBe('pending');
      });

      it('does not hand out items before their runAt', async () => {
        const cp = open();
        await cp.add([{ key: 'later', runAt: Date.now() + 60_000 }, { key: 'now' }]);
        expect(keys(await cp.claim({ owner: 'w', limit: 10 }))).toEqual(['now']);
      });
    });

    group('claim', () => {
      it('claims by priority, then age, up to the limit, with the payload', async () => {
        const cp = open();
        await cp.add([{ key: 'low1' }, { key: 'high', priority: 5, payload: 'h' }]);
        await sleep(3);
        await cp.add([{ key: 'low2' }, { key: 'mid', priority: 1 }]);
        const leases = await cp.claim({ owner: 'w1', limit: 3, leaseMs: 10_000 });
        expect(leases.map((l) => l.key)).toEqual(['high', 'mid', 'low1']);
        expect(leases[0]).toMatchObject({ stream, key: 'high', owner: 'w1', payload: 'h', priority: 5, attempts: 0 });
        expect(leases[0]!.expiresAt).toBeGreaterThan(Date.now() - 60_000);
        const item = await cp.get('high');
        expect(item).toMatchObject({ status: 'processing', owner: 'w1', token: leases[0]!.token });
        expect(keys(await cp.claim({ owner: 'w2', limit: 10 }))).toEqual(['low2']);
        expect(await cp.claim({ owner: 'w3', limit: 10 })).toEqual([]);
      });

      it('never leases one item to two concurrent claimers', async () => {
        const cp = open();
        await cp.add(items(60));
        const batches = await Promise.all(
          Array.from({ length: 6 }, (_, i) => cp.claim({ owner: `w${i}`, limit: 15, leaseMs: 10_000 })),
        );
        const all = batches.flat().map((l) => l.key);
        expect(all).toHaveLength(60);
        expect(new Set(all).size).toBe(60);
        expect((await cp.stats()).processing).toBe(60);
      });
    });

    group('fencing', () => {
      it('raises the fencing token with every claim, reclaim and claimKey', async () => {
        const cp = open();
        await cp.add(items(4));
        const first = await cp.claim({ owner: 'a', limit: 2, leaseMs: 10_000 });
        const second = await cp.claim({ owner: 'b', limit: 1, leaseMs: 10_000 });
        const byKey = await cp.claimKey('k0003', { owner: 'c', leaseMs: 10_000 });
        const created = await cp.claimKey('new-key', { owner: 'c', leaseMs: 10_000 });
        const firstMax = Math.max(...first.map((l) => l.token));
        expect(Math.min(...first.map((l) => l.token))).toBeGreaterThan(0);
        expect(second[0]!.token).toBeGreaterThan(firstMax);
        expect(byKey!.token).toBeGreaterThan(second[0]!.token);
        expect(created!.token).toBeGreaterThan(byKey!.token);
        await cp.release(second[0]!);
        const again = await cp.claim({ owner: 'd', limit: 1, leaseMs: 10_000 });
        expect(again[0]!.key).toBe(second[0]!.key);
        expect(again[0]!.token).toBeGreaterThan(created!.token);
      });
    });

    group('expiry', () => {
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
    });

    group('claim-key', () => {
      it('creates an absent item and locks it; a second worker gets null', async () => {
        const cp = open();
        const lease = await cp.claimKey('msg-100', { owner: 's1', leaseMs: 10_000, payload: { chat: 7 } });
        expect(lease).toMatchObject({ stream, key: 'msg-100', owner: 's1', payload: { chat: 7 }, attempts: 0 });
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
    });

    group('renew', () => {
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
    });

    group('complete', () => {
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
    });

    group('fail', () => {
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
    });

    group('release', () => {
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
    });

    group('inspect', () => {
      it('lists by key a page at a time, filters by status, and counts by status', async () => {
        const cp = open();
        await cp.add(items(7));
        const [l0, l1] = await cp.claim({ owner: 'w', limit: 2, leaseMs: 10_000 });
        await cp.complete(l0!);
        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const page = await cp.list({ limit: 3, cursor });
          expect(page.items.length).toBeGreaterThan(0);
          seen.push(...page.items.map((i) => i.key));
          cursor = page.cursor;
        } while (cursor);
        expect(seen).toEqual(items(7).map((i) => i.key));
        expect((await cp.list({ status: 'processing' })).items.map((i) => i.key)).toEqual([l1!.key]);
        expect(await cp.list({ status: 'dead' })).toEqual({ items: [], cursor: null });
        const stats = await cp.stats();
        expect(stats).toMatchObject({ pending: 5, processing: 1, done: 1, failed: 0, dead: 0, total: 7 });
        expect(stats.oldestPendingAgeMs === null).toBe(false);
      });

      it('purges finished items by status and age', async () => {
        const cp = open();
        await cp.add(items(3));
        const leases = await cp.claim({ owner: 'w', limit: 2 });
        await cp.completeMany(leases.map((lease) => ({ lease })));
        expect(await cp.purge({ status: 'done', olderThanMs: 3_600_000 })).toBe(0);
        expect(await cp.purge({ status: 'done' })).toBe(2);
        expect(await cp.stats()).toMatchObject({ total: 1, pending: 1, done: 0 });
        expect(await cp.get(leases[0]!.key)).toBeNull();
      });
    });

    group('validation', () => {
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
        const elsewhere = createCheckpoint({ storage: target!.storage, stream: `${stream}-b` });
        await rejectsWithCode(expect, elsewhere.complete(lease!), 'VALIDATION');
        await rejectsWithCode(expect, cp.renew(lease!, 0), 'VALIDATION');
        await rejectsWithCode(expect, cp.complete(lease!, { f: () => 1 } as never), 'VALIDATION');
        expect(await cp.stats()).toMatchObject({ total: 1, processing: 1 });
        await rejectsWithCode(expect, (async () => createCheckpoint({ storage: target!.storage, stream: '' }))(), 'VALIDATION');
        await rejectsWithCode(expect, (async () => createCheckpoint({ storage: {} as never, stream: 's' }))(), 'VALIDATION');
      });
    });

    group('process', () => {
      it('drains the stream with concurrency, storing results, and reports a summary and events', async () => {
        const cp = open();
        await cp.add(items(120));
        const completed: string[] = [];
        let claimedEvents = 0;
        cp.on('item.completed', (e) => completed.push(e.key));
        cp.on('batch.claimed', (e) => (claimedEvents += e.leases.length));
        let running = 0;
        let maxRunning = 0;
        const summary = await cp.process(
          async (item, { lease, signal }) => {
            running++;
            maxRunning = Math.max(maxRunning, running);
            expect(signal.aborted).toBe(false);
            expect(lease.key).toBe(item.key);
            await sleep(1);
            running--;
            return { doubled: (item.payload as { i: number }).i * 2 };
          },
          { owner: 'p1', concurrency: 4, batchSize: 10, leaseMs: 10_000 },
        );
        expect(summary).toMatchObject({ reason: 'drained', claimed: 120, completed: 120, failed: 0, lost: 0 });
        expect(maxRunning).toBeGreaterThan(1);
        expect(new Set(completed).size).toBe(120);
        expect(claimedEvents).toBe(120);
        expect(await cp.stats()).toMatchObject({ done: 120, total: 120 });
        expect((await cp.get('k0007'))?.result).toEqual({ doubled: 14 });
      });

      it('fails items whose handler throws, and retries them after the back-off', async () => {
        const cp = open({ maxAttempts: 2, backoff: { minMs: 0, maxMs: 0, factor: 1 } });
        await cp.add([{ key: 'good' }, { key: 'bad' }]);
        const failures: string[] = [];
        cp.on('item.failed', (e) => failures.push(`${e.key}:${e.status}`));
        const summary = await cp.process(
          async (item) => {
            if (item.key === 'bad') throw new Error(`bad attempt ${item.attempts}`);
          },
          { owner: 'p', leaseMs: 10_000 },
        );
        expect(summary).toMatchObject({ completed: 1, failed: 1, dead: 1 });
        expect(failures).toEqual(['bad:failed', 'bad:dead']);
        expect(await cp.get('bad')).toMatchObject({ status: 'dead', attempts: 2, error: 'bad attempt 1' });
      });

      it('aborts the handler and does not complete when its lease is lost', async () => {
        const cp = open();
        await cp.add([{ key: 'job' }]);
        const lost: string[] = [];
        cp.on('lease.lost', (e) => lost.push(`${e.key}:${e.phase}:${e.error.code}`));
        let sawAbort = false;
        let runs = 0;
        const summary = await cp.process(
          async (_item, { lease, signal }) => {
            runs++;
            if (runs > 1) return 'second run';
            // Someone else releases the item under us: the next renewal finds the lease gone.
            await cp.release(lease);
            await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
            sawAbort = signal.aborted;
            return 'first run (lease lost: must not be stored)';
          },
          { owner: 'p', leaseMs: 300 },
        );
        expect(sawAbort).toBe(true);
        // Renewal finds the lease gone (or, on a slow machine, the deadline passes first).
        expect(['job:renew:LEASE_LOST', 'job:deadline:LEASE_LOST']).toContain(lost[0]);
        expect(summary).toMatchObject({ lost: 1, completed: 1, claimed: 2 });
        expect(await cp.get('job')).toMatchObject({ status: 'done', result: 'second run' });
      });

      it('shares one stream between several concurrent workers, each item done once', async () => {
        const cp = open();
        await cp.add(items(200));
        const done = new Map<string, number>();
        cp.on('item.completed', (e) => done.set(e.key, (done.get(e.key) ?? 0) + 1));
        const summaries = await Promise.all(
          ['a', 'b', 'c'].map((owner) =>
            cp.process(async () => sleep(0), { owner, concurrency: 3, batchSize: 7, leaseMs: 10_000 }),
          ),
        );
        expect(summaries.reduce((n, s) => n + s.completed, 0)).toBe(200);
        expect(done.size).toBe(200);
        expect([...done.values()].every((n) => n === 1)).toBe(true);
        expect((await cp.stats()).done).toBe(200);
      });

      it('stops on abort: releases what it had not started and returns reason aborted', async () => {
        const cp = open();
        await cp.add(items(30));
        const ac = new AbortController();
        let started = 0;
        const summary = await cp.process(
          async (_item, { signal }) => {
            started++;
            if (started === 1) ac.abort(new Error('shutdown'));
            if (signal.aborted) throw new Error('aborted');
          },
          { owner: 'p', concurrency: 1, batchSize: 10, leaseMs: 10_000, signal: ac.signal, until: 'aborted' },
        );
        expect(summary.reason).toBe('aborted');
        expect(summary.released).toBeGreaterThan(0);
        const stats = await cp.stats();
        expect(stats.processing).toBe(0);
        expect(stats.done + stats.pending).toBe(30);
      });
    });
  });
}
