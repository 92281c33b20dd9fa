import { afterEach, describe, expect, it } from 'vitest';
import { type SessionManager } from 'multisession';
import { setup } from '../helpers/setup.js';

let open: SessionManager[] = [];
async function make(overrides = {}) {
  const env = await setup({ idleTimeoutMs: 10_000, ...overrides });
  open.push(env.manager);
  return env;
}
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

async function started(env: Awaited<ReturnType<typeof make>>, id: string, input: Record<string, unknown> = {}) {
  await env.manager.create({ id, platform: 'scripted', ...input });
  expect((await env.manager.start(id)).state).toBe('ready');
}

describe('idle expiry', () => {
  it('stops a quiet session with reason idle and desired state stopped', async () => {
    const env = await make();
    const { manager: m, clock, scripted: s, reasons } = env;
    await started(env, 'a');
    const startedAt = clock.now();
    expect((await m.get('a')).lastActivityAt).toBe(startedAt);
    await clock.advance(9_999); // health checks run meanwhile; they are not activity
    expect((await m.get('a')).state).toBe('ready');
    await clock.advance(1);
    const snap = await m.waitFor('a', 'stopped', { timeoutMs: 1 });
    expect(snap.desiredState).toBe('stopped');
    expect(reasons.filter((r) => r.id === 'a').slice(-2)).toEqual([
      { id: 'a', from: 'ready', to: 'stopping', reason: 'idle' },
      { id: 'a', from: 'stopping', to: 'stopped', reason: 'idle' },
    ]);
    expect(s.last('a').stopped).toBe(true);
    expect(s.last('a').ctx.signal.aborted).toBe(true);
    const audit = await m.audit({ sessionId: 'a', action: 'stop' });
    expect(audit).toHaveLength(1);
    expect(audit[0]!.details).toEqual({ reason: 'idle' });
    // Stays stopped: no restart, no second stop.
    await clock.advance(100_000);
    expect((await m.get('a')).state).toBe('stopped');
    expect(s.connections('a')).toHaveLength(1);
    expect(reasons.filter((r) => r.id === 'a' && r.to === 'stopped')).toHaveLength(1);
  });

  it('touch() postpones it', async () => {
    const env = await make();
    const { manager: m, clock } = env;
    await started(env, 'a');
    await clock.advance(6_000);
    await m.touch('a');
    expect((await m.get('a')).lastActivityAt).toBe(clock.now());
    await clock.advance(9_999); // 15,999 since start, 9,999 since the touch
    expect((await m.get('a')).state).toBe('ready');
    await clock.advance(1);
    expect((await m.get('a')).state).toBe('stopped');
  });

  it('send() postpones it', async () => {
    const env = await make();
    const { manager: m, clock } = env;
    await started(env, 'a');
    await clock.advance(8_000);
    await m.send('a', { text: 'hi' });
    await clock.advance(9_000);
    expect((await m.get('a')).state).toBe('ready');
    await clock.advance(1_000);
    expect((await m.get('a')).state).toBe('stopped');
  });

  it('inbound messages (ctx.emitMessage) and ctx.touch() postpone it', async () => {
    const env = await make();
    const { manager: m, clock, scripted: s } = env;
    await started(env, 'a');
    await clock.advance(7_000);
    s.last('a').ctx.emitMessage({ text: 'incoming' });
    expect((await m.get('a')).lastActivityAt).toBe(clock.now());
    await clock.advance(7_000);
    s.last('a').ctx.touch();
    await clock.advance(9_999);
    expect((await m.get('a')).state).toBe('ready');
    expect((await m.stats('a')).messagesIn).toBe(1);
    await clock.advance(1);
    expect((await m.get('a')).state).toBe('stopped');
  });

  it("a session's idleTimeoutMs overrides the manager's", async () => {
    const env = await make();
    const { manager: m, clock } = env;
    await started(env, 'short', { idleTimeoutMs: 2_000 });
    await started(env, 'long', { idleTimeoutMs: 30_000 });
    await started(env, 'default');
    await clock.advance(2_000);
    expect((await m.get('short')).state).toBe('stopped');
    expect((await m.get('default')).state).toBe('ready');
    await clock.advance(8_000);
    expect((await m.get('default')).state).toBe('stopped');
    expect((await m.get('long')).state).toBe('ready');
    await clock.advance(20_000);
    expect((await m.get('long')).state).toBe('stopped');
  });

  it('works per session when the manager has no idle timeout', async () => {
    const env = await make({ idleTimeoutMs: null });
    const { manager: m, clock } = env;
    await started(env, 'quick', { idleTimeoutMs: 3_000 });
    await started(env, 'forever');
    await clock.advance(3_000);
    expect((await m.get('quick')).state).toBe('stopped');
    await clock.advance(1_000_000);
    expect((await m.get('forever')).state).toBe('ready');
  });

  it('a session started again gets a fresh idle period', async () => {
    const env = await make();
    const { manager: m, clock } = env;
    await started(env, 'a');
    await clock.advance(10_000);
    expect((await m.get('a')).state).toBe('stopped');
    await clock.advance(50_000);
    expect((await m.start('a')).state).toBe('ready');
    await clock.advance(9_000);
    expect((await m.get('a')).state).toBe('ready');
    await clock.advance(1_000);
    expect((await m.get('a')).state).toBe('stopped');
  });

  it('changing idleTimeoutMs of a running session applies to that session at once', async () => {
    const env = await make();
    const { manager: m, clock } = env;
    await started(env, 'lowered');
    await started(env, 'raised');
    await clock.advance(5_000);
    await m.update('lowered', { idleTimeoutMs: 1_000 });
    await m.update('raised', { idleTimeoutMs: 60_000 });
    await clock.advance(1_000);
    expect((await m.get('lowered')).state).toBe('stopped'); // quiet for 6 s, allowed 1 s
    await clock.advance(9_000);
    expect((await m.get('raised')).state).toBe('ready'); // quiet for 15 s, allowed 60 s
    await clock.advance(45_000);
    expect((await m.get('raised')).state).toBe('stopped');
  });

  it('clearing a running session\'s idleTimeoutMs (null) falls back to the manager\'s, or to none', async () => {
    const env = await make({ idleTimeoutMs: null });
    const { manager: m, clock } = env;
    await started(env, 'a', { idleTimeoutMs: 2_000 });
    await clock.advance(1_000);
    await m.update('a', { idleTimeoutMs: null });
    await clock.advance(100_000);
    expect((await m.get('a')).state).toBe('ready');
  });
});

