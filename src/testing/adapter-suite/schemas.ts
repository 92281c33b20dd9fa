import { findJsonProblem } from '../../json.js';
import { type SuiteHarness } from './harness.js';

/** The `schemas` group of the adapter conformance suite. */
export function schemasGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { adapter, options, action, badCredentials, badConfig, connect } = h;
  it('accepts the given credentials and config', async () => {
    expect(adapter.credentials.safeParse(options.credentials).success).toBe(true);
    expect(adapter.config.safeParse(options.config ?? {}).success).toBe(true);
  });

  it('applies config defaults into a JSON object that parses again to itself', async () => {
    const parsed = adapter.config.parse(options.config ?? {}) as unknown;
    expect(parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)).toBe(true);
    expect(findJsonProblem(parsed)).toBeNull();
    if (options.config && typeof options.config === 'object') {
      expect(parsed).toMatchObject(options.config as object);
    }
    // stored configs are parsed again on restore: defaults must be stable
    expect(adapter.config.parse(parsed)).toEqual(parsed);
  });

  it('refuses bad credentials', async () => {
    for (const bad of badCredentials) expect(adapter.credentials.safeParse(bad).success).toBe(false);
    let error: unknown;
    try {
      connect({ credentials: badCredentials[0] });
    } catch (e) {
      error = e;
    }
    if (badCredentials.length) expect(error).toMatchObject({ code: 'VALIDATION' });
  });

  it('refuses bad config', async () => {
    for (const bad of badConfig) expect(adapter.config.safeParse(bad).success).toBe(false);
  });

  it('parses actions it accepts', async () => {
    const result = adapter.action.safeParse(action);
    expect(result.success ? 'ok' : `options.action is refused by the adapter's action schema`).toBe('ok');
  });
}
