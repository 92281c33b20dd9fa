import { z } from 'zod';
import { findJsonProblem } from '../../json.js';
import { type SuiteHarness } from './harness.js';

/** The `definition` group of the adapter conformance suite. */
export function definitionGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { adapter, connect } = h;
  it('is a valid, frozen adapter definition', async () => {
    expect(typeof adapter.name).toBe('string');
    expect(/^[a-z0-9][a-z0-9_-]{0,63}$/.test(adapter.name)).toBe(true);
    expect(adapter.credentials instanceof z.ZodType).toBe(true);
    expect(adapter.config instanceof z.ZodType).toBe(true);
    expect(adapter.action instanceof z.ZodType).toBe(true);
    expect(typeof adapter.connect).toBe('function');
    expect(Object.isFrozen(adapter)).toBe(true);
  });

  it('has schemas that convert to JSON Schema (for adapterInfo and forms)', async () => {
    for (const schema of [adapter.credentials, adapter.config]) {
      const json = z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown>;
      expect(typeof json).toBe('object');
      expect(findJsonProblem(json)).toBeNull();
    }
  });

  it('returns a connection with start, stop, health and send', async () => {
    const t = connect();
    for (const method of ['start', 'stop', 'health', 'send'] as const) expect(typeof t.connection[method]).toBe('function');
    if (t.connection.submitAuth !== undefined) expect(typeof t.connection.submitAuth).toBe('function');
    await t.stop();
  });
}
