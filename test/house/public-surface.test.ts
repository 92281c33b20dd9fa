import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as root from 'multisession';
import { AdapterError, SessionManager, ValidationError, defineAdapter } from 'multisession';
import { connectForTest, createManualClock } from 'multisession/testing';

/** What the public API lets a caller do, and what it no longer lets them do by accident. */
describe('the public surface', () => {
  it('events come only from the manager: it has no emit(), so a forged session.state cannot end a waitFor', async () => {
    const manager = new SessionManager({ adapters: [], clock: createManualClock() });
    await manager.open();
    expect((manager as unknown as { emit?: unknown }).emit).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.getPrototypeOf(manager))).not.toContain('emit');
    await manager.close();
  });

  it('a wait whose signal aborts without a reason rejects with AbortedError (not a TimeoutError)', async () => {
    const manager = new SessionManager({ adapters: [], clock: createManualClock() });
    await manager.open();
    const keeper = defineAdapter({
      name: 'keeper',
      credentials: z.undefined(),
      config: z.object({}),
      connect: () => ({ async start() {}, async stop() {}, async health() { return { status: 'healthy' as const }; }, async send() {} }),
    });
    const m = new SessionManager({ adapters: [keeper], clock: createManualClock() });
    await m.open();
    await m.create({ id: 'a', platform: 'keeper' });
    const ac = new AbortController();
    const waiting = m.waitFor('a', 'ready', { signal: ac.signal });
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED', name: 'AbortedError' });
    const before = new AbortController();
    before.abort();
    await expect(m.waitFor('a', 'ready', { signal: before.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    await m.close();
    await manager.close();
  });

  it('the store is not a public field (a write behind the manager would break its versions); its kind is', async () => {
    const manager = new SessionManager({ adapters: [] });
    expect('storage' in manager).toBe(false);
    expect(manager.storageKind).toBe('memory');
  });

  it('the root exports no internals', () => {
    for (const name of ['CredentialCodec', 'CredentialVault', 'parseWith', 'fromZodError', 'SessionRuntime', 'EventHub', 'createMemoryCheckpointBackend']) {
      expect(Object.keys(root)).not.toContain(name);
    }
  });

  it('what the runtime refuses of an adapter, the test kit refuses too (one AdapterContext)', async () => {
    const counting = defineAdapter({
      name: 'counting',
      credentials: z.undefined(),
      config: z.object({ counter: z.string() }),
      connect(ctx) {
        return {
          async start() {
            ctx.stats.increment(ctx.config.counter);
          },
          async stop() {},
          async health() {
            return { status: 'healthy' as const };
          },
          async send() {},
        };
      },
    });
    for (const counter of ['bad name!', '', 'x'.repeat(65)]) {
      const kit = connectForTest(counting, { config: { counter } });
      const inKit = await kit.connection.start().then(() => null, (e: unknown) => e);
      await kit.stop();
      expect(inKit).toBeInstanceOf(ValidationError);

      const manager = new SessionManager({ adapters: [counting], clock: createManualClock(), restart: { retries: 0, minDelayMs: 0, maxDelayMs: 0, factor: 1 } });
      await manager.open();
      const errors: Error[] = [];
      manager.on('session.error', (e) => errors.push(e.error));
      await manager.create({ id: 'a', platform: 'counting', config: { counter } });
      const snapshot = await manager.start('a');
      expect(snapshot.state).toBe('failed');
      expect(errors[0]).toBeInstanceOf(AdapterError);
      expect((errors[0]!.cause as Error).message).toBe((inKit as Error).message);
      await manager.close();
    }
    // And what both accept, both count.
    const kit = connectForTest(counting, { config: { counter: 'bids' } });
    await kit.connection.start();
    expect(kit.stats).toEqual({ bids: 1 });
    await kit.stop();
  });

  it('a connection that was shut down can no longer reach the session KV, in the kit as under a manager', async () => {
    const keeper = defineAdapter({
      name: 'keeper',
      credentials: z.undefined(),
      config: z.object({}),
      connect: () => ({ async start() {}, async stop() {}, async health() { return { status: 'healthy' as const }; }, async send() {} }),
    });
    const kit = connectForTest(keeper);
    await kit.connection.start();
    await kit.ctx.kv.set('a', 1);
    await kit.stop();
    await expect(kit.ctx.kv.get('a')).rejects.toMatchObject({ code: 'ABORTED' });
    expect(kit.kv.get('a')).toBe(1);
  });
});
