import { expect } from 'vitest';
import type { TestRunner } from 'multisession/testing';

/**
 * A tiny in-process test runner for the conformance suites: collects what a suite registers,
 * runs it, and says which tests passed and failed, so a test can check that a suite fails on an
 * implementation that breaks one invariant.
 */
type Fn = () => Promise<void>;
export interface Collected {
  name: string;
  fn: Fn;
  before: Fn[][];
  after: Fn[][];
}

export function collect(register: (runner: TestRunner) => void): Collected[] {
  const tests: Collected[] = [];
  const names: string[] = [];
  const befores: Fn[][] = [];
  const afters: Fn[][] = [];
  const runner: TestRunner = {
    describe(name, body) {
      names.push(name);
      befores.push([]);
      afters.push([]);
      body();
      names.pop();
      befores.pop();
      afters.pop();
    },
    it(name, fn) {
      tests.push({ name: [...names.slice(1), name].join(' > '), fn, before: befores.slice(), after: afters.slice() });
    },
    expect,
    beforeEach(fn) {
      befores.at(-1)!.push(fn);
    },
    afterEach(fn) {
      afters.at(-1)!.push(fn);
    },
  };
  register(runner);
  return tests;
}

export async function run(tests: Collected[]): Promise<{ passed: string[]; failed: string[]; errors: Map<string, unknown> }> {
  const passed: string[] = [];
  const failed: string[] = [];
  const errors = new Map<string, unknown>();
  for (const t of tests) {
    let ok = true;
    try {
      for (const fn of t.before.flat()) await fn();
      await t.fn();
    } catch (error) {
      ok = false;
      errors.set(t.name, error);
    } finally {
      for (const fn of t.after.flat().reverse()) await fn().catch(() => (ok = false));
    }
    (ok ? passed : failed).push(t.name);
  }
  return { passed, failed, errors };
}

