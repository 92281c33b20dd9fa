import { afterEach, expect, it } from 'vitest';
import { SessionManager, UnsupportedError, ValidationError, memoryStorage, type StorageDriver } from 'multisession';
import { setup } from '../helpers/setup.js';

const DAY = 24 * 60 * 60_000;
let open: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(open.map((m) => m.close()));
  open = [];
});

it('audit.retentionMs deletes older entries at open and every hour after, by the manager clock', async () => {
  const env = await setup({ audit: { retentionMs: DAY } });
  open.push(env.manager);
  const m = env.manager;
  await m.create({ id: 'old', platform: 'scripted' }, { actor: 'a' });
  await env.clock.advance(DAY / 2);
  await m.create({ id: 'newer', platform: 'scripted' }, { actor: 'a' });
  expect((await m.audit()).map((e) => e.sessionId)).toEqual(['newer', 'old']);

  // Past a day the first entry goes on the next hourly run; the second stays until its own day is over.
  await env.clock.advance(DAY / 2 + 60 * 60_000);
  expect((await m.audit()).map((e) => e.sessionId)).toEqual(['newer']);
  await env.clock.advance(DAY / 2);
  expect(await m.audit()).toEqual([]);
});

it('keeps everything by default, and refuses a retention its store cannot honour', async () => {
  const env = await setup();
  open.push(env.manager);
  await env.manager.create({ id: 'a', platform: 'scripted' });
  await env.clock.advance(400 * DAY);
  expect(await env.manager.audit()).toHaveLength(1);

  const base = memoryStorage();
  const noPrune: StorageDriver = { ...base, audit: { append: (e) => base.audit!.append(e), list: (q) => base.audit!.list(q) } };
  expect(() => new SessionManager({ storage: noPrune, audit: { retentionMs: DAY } })).toThrow(UnsupportedError);
  expect(() => new SessionManager({ audit: { retentionMs: 0 } })).toThrow(ValidationError);
});
