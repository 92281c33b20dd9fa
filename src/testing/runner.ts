/**
 * The slice of a test runner the conformance suites use, typed structurally so `src/` never
 * imports a test framework. vitest's `{ describe, it, expect, beforeEach, afterEach }` fits, and
 * so does anything Jest-like.
 *
 * @example
 * ```ts
 * import { describe, it, expect, beforeEach, afterEach } from 'vitest';
 * const runner: TestRunner = { describe, it, expect, beforeEach, afterEach };
 * ```
 */
export interface TestRunner {
  describe(name: string, fn: () => void): unknown;
  it(name: string, fn: () => Promise<void>): unknown;
  expect: (actual: unknown) => SuiteAssertion;
  beforeEach(fn: () => Promise<void>): unknown;
  afterEach(fn: () => Promise<void>): unknown;
}

/** The matchers the suites call (a subset of Jest's and vitest's `expect`). */
export interface SuiteAssertion {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toMatchObject(expected: object): void;
  toBeNull(): void;
  toBeUndefined(): void;
  toBeDefined(): void;
  toBeInstanceOf(expected: unknown): void;
  toHaveLength(length: number): void;
  toBeGreaterThan(n: number): void;
  toContain(item: unknown): void;
  not: SuiteAssertion;
}

/** Awaits `work` and returns what it threw, or fails the test when it resolved. */
export async function caught(expect: TestRunner['expect'], work: Promise<unknown>): Promise<Error & { code?: string }> {
  let error: unknown;
  let resolved = false;
  try {
    await work;
    resolved = true;
  } catch (e) {
    error = e;
  }
  expect(resolved ? 'resolved' : 'rejected').toBe('rejected');
  expect(error).toBeInstanceOf(Error);
  return error as Error & { code?: string };
}

/**
 * Asserts that `work` rejects with a multisession error of the given `code` (checked by code, not
 * by class, so it holds when the suite and the implementation load different builds).
 */
export async function rejectsWithCode(
  expect: TestRunner['expect'],
  work: Promise<unknown>,
  code: string,
): Promise<Error & { code?: string }> {
  const error = await caught(expect, work);
  expect({ code: error.code, message: error.message }).toMatchObject({ code });
  return error;
}
