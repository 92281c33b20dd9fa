// Stamps dist/ with a hash of what the build is made from (src/, package.json, tsup and
// TypeScript config), so the package test can tell a fresh build from an old one.
// `npm run build` runs it after tsup; `node scripts/build-stamp.mjs --check` exits 1 when stale.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function listFiles(dir) {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? listFiles(path) : [path];
    });
}

/** A hash of every input of the build. */
export function sourceHash() {
  const hash = createHash('sha256');
  for (const file of [...listFiles(join(root, 'src')), join(root, 'package.json'), join(root, 'tsup.config.ts'), join(root, 'tsconfig.json')]) {
    hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

export const STAMP = join(root, 'dist', '.build-stamp');

/** True when dist/ was built from the sources as they are now. */
export function isFresh() {
  return existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === sourceHash();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) process.exit(isFresh() ? 0 : 1);
  writeFileSync(STAMP, `${sourceHash()}\n`);
}
