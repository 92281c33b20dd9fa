import type { JsonValue } from '../../types.js';
import { T0, sampleSessionRecord, type SuiteContext } from './context.js';

/** Create, read, list and delete sessions; records are copies. */
export function sessionsGroup(t: SuiteContext): void {
  const { it, expect, create, must } = t;
  it('creates a session and returns every field as written, with version 1', async () => {
    const input = sampleSessionRecord('s1', {
      lastError: { code: 'ADAPTER', message: 'boom "quoted" \u00e9', at: T0 + 5 },
      lastActivityAt: T0 + 9,
      state: 'ready',
      health: 'healthy',
      desiredState: 'running',
    });
    const created = await t.sessions.create(input);
    const expected = { ...input, version: 1 };
    expect(created).toEqual(expected);
    expect(await t.sessions.get('s1')).toEqual(expected);
    expect(typeof created.createdAt).toBe('number');
    expect(typeof created.version).toBe('number');
    expect(created.readError).toBeUndefined();
  });

  it('keeps nulls, empty maps and null JSON metadata', async () => {
    const input = sampleSessionRecord('s2', {
      config: {},
      labels: {},
      metadata: null,
      capacity: null,
      idleTimeoutMs: null,
      credentials: null,
      credentialsFingerprint: null,
      autoStart: false,
    });
    await t.sessions.create(input);
    expect(await t.sessions.get('s2')).toEqual({ ...input, version: 1 });
  });

  it('returns null for a missing session and false when deleting it', async () => {
    expect(await t.sessions.get('nope')).toBeNull();
    expect(await t.sessions.delete('nope')).toBe(false);
  });

  it('lists every session ordered by id', async () => {
    for (const id of ['c3', 'a1', 'b2']) await create(id);
    const list = await t.sessions.list();
    expect(list.map((r) => r.id)).toEqual(['a1', 'b2', 'c3']);
    expect(list[0]).toEqual({ ...sampleSessionRecord('a1'), version: 1 });
    expect(await t.sessions.list()).toHaveLength(3);
  });

  it('lists nothing in an empty store', async () => {
    expect(await t.sessions.list()).toEqual([]);
  });

  it('deletes a session', async () => {
    await create('a1');
    await create('b2');
    expect(await t.sessions.delete('a1')).toBe(true);
    expect(await t.sessions.get('a1')).toBeNull();
    expect((await t.sessions.list()).map((r) => r.id)).toEqual(['b2']);
    expect(await t.sessions.delete('a1')).toBe(false);
  });

  it('returns copies: mutating a returned record changes nothing stored', async () => {
    const created = await create('s1');
    (created.config as Record<string, JsonValue>).greeting = 'changed';
    created.labels.team = 'red';
    const got = await must('s1');
    expect(got.config).toEqual(sampleSessionRecord('s1').config);
    expect(got.labels).toEqual(sampleSessionRecord('s1').labels);
    ((got.metadata as Record<string, JsonValue>).tags as JsonValue[]).push('z');
    const [listed] = await t.sessions.list();
    (listed!.config as Record<string, JsonValue>).bidLimit = 99;
    const again = await must('s1');
    expect(again.metadata).toEqual(sampleSessionRecord('s1').metadata);
    expect(again.config).toEqual(sampleSessionRecord('s1').config);
  });

  it('copies its input: mutating the written object afterwards changes nothing stored', async () => {
    const input = sampleSessionRecord('s1');
    await t.sessions.create(input);
    (input.config as Record<string, JsonValue>).greeting = 'mutated';
    input.labels.team = 'mutated';
    const patch = { labels: { a: 'b' }, updatedAt: T0 + 1 };
    await t.update('s1', patch, 1);
    patch.labels.a = 'mutated';
    const got = await must('s1');
    expect(got.config).toEqual(sampleSessionRecord('s1').config);
    expect(got.labels).toEqual({ a: 'b' });
  });
}
