import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(`./src/${p}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests and examples import the package by its public name; resolve it to the sources.
    alias: [
      { find: /^multisession$/, replacement: src('index.ts') },
      { find: /^multisession\/testing$/, replacement: src('testing/index.ts') },
      { find: /^multisession\/sqlite$/, replacement: src('storage/sqlite/index.ts') },
      { find: /^multisession\/postgres$/, replacement: src('storage/postgres/index.ts') },
      { find: /^multisession\/webhooks$/, replacement: src('webhooks/index.ts') },
      { find: /^multisession\/adapters\/([a-z0-9_-]+)$/, replacement: src('adapters/$1/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
