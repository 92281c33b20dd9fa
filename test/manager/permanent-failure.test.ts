import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PermanentFailureError, defineAdapter, type AdapterContext, type SessionManager } from 'multisession';
import { setup } from '../helpers/setup.js';

/** Fails the way each session's config says: at start, or once live (through ctx.fail), permanently or not. */
function failingAdapter() {
  const live = new Map<string, AdapterContext<{ when: 'start' | 'live'; permanent: boolean }, unknown>>();
  const adapter = defineAdapter({
    name: 'failing',
    credentials: z.unknown(),
    config: z.object({ when: z.enum(['start', 'live']), permanent: z.boolean() }),
    connect(ctx) {
      const problem = () =>
        ctx.config.permanent ? new PermanentFailureError('the platform refuses this configuration: remove the intent') : new Error('socket closed');
      return {
        async start() {
          if (ctx.config.when === 'start') throw problem();
          live.set(ctx.id, ctx);
        },
        async stop() {},
        async health() {
          return { status: 'healthy' as const };
        },
        async send() {
          ctx.fail(problem());
          return null;
        },
      };
    },
  });
  return { adapter, live };
}

let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

describe('PermanentFailureError: failed at once, no back-off restarts', () => {
  it('a start rejected with it ends failed after one attempt; an ordinary failure is retried', async () => {
    const { adapter } = failingAdapter();
    const { manager, reasons } = await setup({}, [adapter]);
    open.push(manager);
    await manager.create({ id: 'perm', platform: 'failing', config: { when: 'start', permanent: true } });
    const snap = await manager.start('perm');
    expect(snap.state).toBe('failed');
    expect(snap.lastError).toMatchObject({ message: expect.stringContaining('remove the intent') });
    expect(reasons.filter((r) => r.id === 'perm').map((r) => r.to)).toEqual(['starting', 'failed']);
    expect((await manager.stats('perm')).starts).toBe(1);
    // The same failure, not permanent, goes through back-off (the retry budget is 2).
    await manager.create({ id: 'temp', platform: 'failing', config: { when: 'start', permanent: false } });
    expect((await manager.start('temp')).state).toBe('backoff');
  });

  it('a live connection failed with it through ctx.fail ends failed without a restart', async () => {
    const { adapter } = failingAdapter();
    const { manager, clock, reasons } = await setup({}, [adapter]);
    open.push(manager);
    await manager.create({ id: 'live', platform: 'failing', config: { when: 'live', permanent: true } });
    expect((await manager.start('live')).state).toBe('ready');
    await manager.send('live', { go: true });
    await manager.waitFor('live', 'failed', { timeoutMs: 1_000 });
    await clock.advance(5_000); // past any back-off step: nothing restarts it
    expect(reasons.filter((r) => r.id === 'live').map((r) => r.to)).toEqual(['starting', 'ready', 'failed']);
    expect((await manager.get('live')).state).toBe('failed');
    expect((await manager.stats('live')).starts).toBe(1);
  });
});
