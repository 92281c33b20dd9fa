import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError, type SessionManager } from 'multisession';
import { setup } from '../helpers/setup.js';
import { settle } from '../helpers/scripted-adapter.js';

let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});
async function make() {
  const env = await setup();
  open.push(env.manager);
  return env;
}

describe('control calls take an AbortSignal for the wait', () => {
  it('start(): an abort releases the caller; the start goes on and ends ready', async () => {
    const { manager: m, scripted: s } = await make();
    await m.create({ id: 'g', platform: 'scripted', config: { mode: 'gate' } });
    const ac = new AbortController();
    const waiting = m.start('g', { signal: ac.signal }).then(
      () => 'resolved',
      (e: unknown) => e,
    );
    await settle();
    ac.abort(new Error('the user closed the page'));
    expect(((await waiting) as Error).message).toBe('the user closed the page');
    expect((await m.get('g')).state).toBe('starting');
    s.last('g').gate.resolve();
    expect((await m.waitFor('g', 'ready')).state).toBe('ready');
  });

  it('an already-aborted signal rejects at once; the operation still happens', async () => {
    const { manager: m } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    await expect(m.start('a', { signal: ac.signal })).rejects.toThrow('gone');
    expect((await m.waitFor('a', 'ready')).desiredState).toBe('running');
    await expect(m.stop('a', { signal: ac.signal })).rejects.toThrow('gone');
    expect((await m.waitFor('a', 'stopped')).desiredState).toBe('stopped');
  });

  it('a signal that never fires changes nothing, and a bad one is a ValidationError', async () => {
    const { manager: m } = await make();
    await m.create({ id: 'a', platform: 'scripted' });
    expect((await m.start('a', { signal: new AbortController().signal })).state).toBe('ready');
    await expect(m.restart('a', { signal: 'soon' as never })).rejects.toBeInstanceOf(ValidationError);
    expect((await m.get('a')).state).toBe('ready');
  });
});
