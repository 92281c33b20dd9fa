import { defineConfig } from 'tsup';

// One entry per subpath export. p-retry is ESM-only, so the CJS build bundles it;
// the ESM build keeps every dependency external.
const entry = {
  index: 'src/index.ts',
  'testing/index': 'src/testing/index.ts',
  'sqlite/index': 'src/storage/sqlite/index.ts',
  'postgres/index': 'src/storage/postgres/index.ts',
};
// Database clients are the app's (optional peers), loaded only by their driver subpath.
const external = ['better-sqlite3', 'pg', 'kysely'];

export default defineConfig([
  {
    entry,
    format: ['esm'],
    external,
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    splitting: true,
    treeshake: true,
  },
  {
    entry,
    format: ['cjs'],
    external,
    dts: true,
    sourcemap: true,
    target: 'node20',
    noExternal: ['p-retry', 'is-network-error'],
  },
]);
