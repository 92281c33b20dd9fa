import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The house rules of src/ (docs/concepts.md, "Layout of the code"), checked on every run: no import goes up
 * to the manager, no import loop between folders, no file past 450 lines, nothing `@internal`.
 */
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The top-level folder of a source file (`manager`, `storage` …; `.` for src/*.ts). */
const areaOf = (file: string): string => {
  const parts = relative(SRC, file).split(/[\\/]/);
  return parts.length > 1 ? parts[0]! : '.';
};

const sources = files(SRC).map((file) => {
  const text = readFileSync(file, 'utf8');
  const imports = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)].map((m) => resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
  return { file, text, imports };
});

describe('the house rules of src/', () => {
  it('storage, adapters, checkpoint, net and security import nothing from the manager', () => {
    const below = new Set(['storage', 'adapters', 'checkpoint', 'net', 'security']);
    const upward = sources.flatMap(({ file, imports }) =>
      below.has(areaOf(file)) ? imports.filter((i) => areaOf(i) === 'manager').map((i) => `${relative(SRC, file)} -> ${relative(SRC, i)}`) : [],
    );
    expect(upward).toEqual([]);
  });

  it('no two folders import each other, directly or through others', () => {
    const edges = new Map<string, Set<string>>();
    for (const { file, imports } of sources) {
      const from = areaOf(file);
      for (const i of imports) {
        const to = areaOf(i);
        if (to !== from && from !== '.' && to !== '.') (edges.get(from) ?? edges.set(from, new Set()).get(from)!).add(to);
      }
    }
    const loops: string[] = [];
    const reach = (start: string, at: string, path: string[]): void => {
      for (const next of edges.get(at) ?? []) {
        if (next === start) loops.push([...path, next].join(' -> '));
        else if (!path.includes(next)) reach(start, next, [...path, next]);
      }
    };
    for (const area of edges.keys()) reach(area, area, [area]);
    expect(loops).toEqual([]);
  });

  it('no source file is longer than 450 lines', () => {
    const lines = (text: string) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    const long = sources.filter(({ text }) => lines(text) > 450).map(({ file, text }) => `${relative(SRC, file)}: ${lines(text)}`);
    expect(long).toEqual([]);
  });

  it('nothing is marked @internal (the published types hold only the public API)', () => {
    expect(sources.filter(({ text }) => text.includes('@internal')).map(({ file }) => relative(SRC, file))).toEqual([]);
  });

  it('each folder says which part of the design it holds', () => {
    const folders = [...new Set(sources.map(({ file }) => dirname(file)))].filter((d) => d !== SRC);
    const silent = folders.filter((dir) => {
      try {
        return readFileSync(join(dir, 'README.md'), 'utf8').trim().length < 40;
      } catch {
        return true;
      }
    });
    expect(silent.map((d) => relative(SRC, d))).toEqual([]);
  });
});
