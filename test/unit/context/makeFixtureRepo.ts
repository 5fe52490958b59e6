// Writes a small repository into a fresh temporary folder for the context tests: a few hundred
// source files in nested folders plus every kind of file the context must leave out. Each file
// is written with the verdict the context should reach, so the tests compare exact sets.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as nodePath from 'node:path';

export interface FixtureRepo {
  root: string;
  /** Files the context must contain, sorted by path. */
  included: string[];
  /** Files that exist but must stay out. */
  excluded: string[];
  /** Bulk source files (`src/modNN/fileNN.ts`), sorted. */
  sources: string[];
  write(path: string, contents: string | Uint8Array): void;
  remove(): void;
}

export const MODULE_COUNT = 20;
export const FILES_PER_MODULE = 15;

function sourceName(module: number, file: number): string {
  return `src/mod${String(module).padStart(2, '0')}/file${String(file).padStart(2, '0')}.ts`;
}

function sourceText(module: number, file: number): string {
  const nextFile = (file + 1) % FILES_PER_MODULE;
  const otherModule = (module + 7) % MODULE_COUNT;
  const lines = [
    `import { value${nextFile} } from './file${String(nextFile).padStart(2, '0')}';`,
    `import { value${file} as shared } from '../mod${String(otherModule).padStart(2, '0')}/file${String(file).padStart(2, '0')}';`,
    '',
    `export const value${file} = ${module * 100 + file};`,
    '',
    `export function compute${module}_${file}(input: number): number {`,
    `  // Module ${module}, file ${file}: combines a neighbour and a far import.`,
    `  return input * value${nextFile} + shared;`,
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

export function makeFixtureRepo(): FixtureRepo {
  const root = mkdtempSync(nodePath.join(tmpdir(), 'tidal-context-'));
  const included: string[] = [];
  const excluded: string[] = [];
  const sources: string[] = [];
  const write = (path: string, contents: string | Uint8Array) => {
    const full = nodePath.join(root, ...path.split('/'));
    mkdirSync(nodePath.dirname(full), { recursive: true });
    writeFileSync(full, contents);
  };
  const keep = (path: string, contents: string | Uint8Array) => {
    write(path, contents);
    included.push(path);
  };
  const drop = (path: string, contents: string | Uint8Array) => {
    write(path, contents);
    excluded.push(path);
  };

  for (let module = 0; module < MODULE_COUNT; module++) {
    for (let file = 0; file < FILES_PER_MODULE; file++) {
      keep(sourceName(module, file), sourceText(module, file));
      sources.push(sourceName(module, file));
    }
  }

  keep('.gitignore', ['# logs and scratch output', '*.log', '!keep.log', '/output/', 'tmp/', 'secret.txt', 'docs/**/*.draft.md', ''].join('\n'));
  keep('README.md', '# Fixture\n\nA repository for the context tests.\n');
  keep('package.json', '{ "name": "fixture", "version": "1.0.0" }\n');
  keep('keep.log', 'kept by a negated pattern\n');
  drop('debug.log', 'ignored by *.log\n');
  drop('logs/app.log', 'ignored by *.log in a subfolder\n');
  keep('logs/keep.log', 'kept by the negation in a subfolder too\n');
  drop('output/result.ts', 'export const ignoredByAnchoredPattern = 1;\n');
  keep('src/output/kept.ts', 'export const anchoredPatternDoesNotReachHere = 1;\n');
  drop('tmp/scratch.ts', 'export const scratch = 1;\n');
  drop('src/tmp/scratch.ts', 'export const nestedScratch = 1;\n');
  drop('secret.txt', 'hunter2\n');
  drop('config/secret.txt', 'hunter3\n');
  keep('config/settings.json', '{ "verbose": true }\n');
  drop('docs/guide/intro.draft.md', '# Draft\n');
  keep('docs/guide/intro.md', '# Introduction\n');

  // A nested .gitignore with anchored and negated rules of its own.
  keep('src/legacy/.gitignore', ['*.gen.ts', '!important.gen.ts', '/local.ts', '!trace.log', ''].join('\n'));
  drop('src/legacy/parser.gen.ts', 'export const generated = 1;\n');
  keep('src/legacy/important.gen.ts', 'export const important = 1;\n');
  drop('src/legacy/local.ts', 'export const localOnly = 1;\n');
  keep('src/legacy/deep/local.ts', 'export const anchoredToParentFolderOnly = 1;\n');
  keep('src/legacy/trace.log', 're-included by the nested negation\n');
  keep('src/legacy/old.ts', "import { important } from './important.gen';\nexport const old = important;\n");

  // Installed dependencies and build output.
  drop('node_modules/left-pad/index.js', 'module.exports = () => {};\n');
  drop('node_modules/left-pad/package.json', '{ "name": "left-pad" }\n');
  drop('packages/app/node_modules/dep/index.js', 'module.exports = 1;\n');
  keep('packages/app/index.ts', 'export const app = 1;\n');
  drop('dist/extension.js', 'var a=1;\n');
  drop('build/output.js', 'var b=2;\n');

  // Binary, non-UTF-8, huge, minified, generated, lockfiles, source maps.
  drop('assets/logo.png', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]));
  drop('assets/latin1.txt', Uint8Array.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
  drop('data/huge.txt', 'line of a huge file\n'.repeat(60_000));
  drop('web/vendor.min.js', 'var a=1;\n');
  drop('web/bundle.js', `(function(){${'var q=1;'.repeat(2000)}})();\n`);
  drop('web/app.js.map', '{"version":3,"mappings":"AAAA"}\n');
  keep('web/app.js', 'export function start() {\n  return 1;\n}\n');
  drop('src/gen/schema.ts', '// @generated by the schema compiler\nexport const schema = {};\n');
  drop('package-lock.json', '{ "lockfileVersion": 3 }\n');
  drop('yarn.lock', '# yarn lockfile v1\n');
  drop('Cargo.lock', 'version = 3\n');

  included.sort();
  excluded.sort();
  return { root, included, excluded, sources, write, remove: () => rmSync(root, { recursive: true, force: true }) };
}
