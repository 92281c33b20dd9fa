import { existsSync, readdirSync } from 'node:fs';
import { defineConfig } from 'tsup';

// One entry per subpath export. Built-in adapters follow one pattern: the folder
// src/adapters/<name>/ with an index.ts is the subpath multisession/adapters/<name>
// (the `./adapters/*` entry of package.json), with nothing else to register.
const adapters = Object.fromEntries(
  readdirSync('src/adapters', { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(`src/adapters/${d.name}/index.ts`))
    .map((d) => [`adapters/${d.name}/index`, `src/adapters/${d.name}/index.ts`]),
);
const entry = {
  index: 'src/index.ts',
  'testing/index': 'src/testing/index.ts',
  'sqlite/index': 'src/storage/sqlite/index.ts',
  'postgres/index': 'src/storage/postgres/index.ts',
  'webhooks/index': 'src/webhooks/index.ts',
  ...adapters,
};
// Database clients and platform SDKs are the app's (optional peers), loaded only by their subpath.
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
  },
]);
