// Paths in a workspace of several folders: '<folder name>/<path>', names made unique; the
// folders as one file system for the repository context, globs applying inside each folder.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { NodeFileSystem, RepositoryContext } from '../../../src/core/context';
import { FoldersFileSystem } from '../../../src/core/context/foldersFileSystem';
import { folderPathNames, locateRepositoryPath, repositoryPathOf } from '../../../src/core/context/workspaceFolders';

const folder = (p: string, name = p.slice(p.lastIndexOf('/') + 1)) => ({ uri: { scheme: 'file', authority: '', path: p }, name });
const file = (p: string) => ({ scheme: 'file', authority: '', path: p });
const word = () => Math.random().toString(36).slice(2, 8);

test('one folder: paths relative to it; several: the folder name in front, the innermost folder winning', () => {
  const a = word();
  const b = word();
  assert.equal(repositoryPathOf([folder(`/w/${a}`)], file(`/w/${a}/src/x.ts`)), 'src/x.ts');
  const folders = [folder(`/w/${a}`), folder(`/v/${b}`), folder(`/w/${a}/packages/${b}`, 'inner')];
  assert.equal(repositoryPathOf(folders, file(`/w/${a}/src/x.ts`)), `${a}/src/x.ts`);
  assert.equal(repositoryPathOf(folders, file(`/v/${b}/y.py`)), `${b}/y.py`);
  assert.equal(repositoryPathOf(folders, file(`/w/${a}/packages/${b}/z.go`)), 'inner/z.go');
  assert.equal(repositoryPathOf(folders, file(`/w/${a}x/q.ts`)), undefined, 'a sibling folder whose name starts the same');
  assert.equal(repositoryPathOf(folders, { ...file(`/w/${a}/q.ts`), scheme: 'untitled' }), undefined);
  // The inverse.
  for (const p of [`${a}/src/x.ts`, `${b}/y.py`, 'inner/z.go']) {
    const located = locateRepositoryPath(folders, p);
    assert.ok(located);
    assert.equal(repositoryPathOf(folders, file(`${located.folder.uri.path}/${located.relative}`)), p);
  }
  assert.equal(locateRepositoryPath(folders, 'nowhere/x.ts'), undefined);
  assert.deepEqual(locateRepositoryPath([folder('/only')], 'a/b.ts'), { folder: folder('/only'), relative: 'a/b.ts' });
});

test('folder names are made unique in order', () => {
  const n = word();
  assert.deepEqual(folderPathNames([{ name: n }, { name: 'x' }, { name: n }, { name: n }, { name: `${n} (2)` }]), [
    n,
    'x',
    `${n} (2)`,
    `${n} (3)`,
    `${n} (2) (2)`,
  ]);
});

test("every folder's files are in the repository context, each under its folder's name; globs, generated folders and each folder's .gitignore apply inside it", async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tidal-folders-'));
  try {
    const names = ['build', word(), word()]; // a folder named like a build output folder is still walked
    const contents = new Map<string, string>();
    names.forEach((name, i) => {
      const dir = path.join(root, `f${i}`);
      mkdirSync(path.join(dir, 'src'), { recursive: true });
      mkdirSync(path.join(dir, 'node_modules', 'dep'), { recursive: true });
      mkdirSync(path.join(dir, 'build'), { recursive: true });
      const text = `export const v${i} = ${Math.floor(Math.random() * 1e6)};\n`;
      writeFileSync(path.join(dir, 'src', 'main.ts'), text);
      contents.set(`${name}/src/main.ts`, text);
      writeFileSync(path.join(dir, 'node_modules', 'dep', 'index.js'), 'x');
      writeFileSync(path.join(dir, 'build', 'out.js'), 'x');
      writeFileSync(path.join(dir, 'notes.log'), 'log');
      writeFileSync(path.join(dir, '.gitignore'), 'secret.txt\n');
      writeFileSync(path.join(dir, 'secret.txt'), 'no');
    });
    // Only the first folder has a file the include glob wants at its root.
    writeFileSync(path.join(root, 'f0', 'top.md'), '# top\n');
    contents.set('build/top.md', '# top\n');
    const context = new RepositoryContext({
      fileSystem: new FoldersFileSystem(names.map((name, i) => ({ name, fileSystem: new NodeFileSystem(path.join(root, `f${i}`)) }))),
      countTokens: (text) => text.length,
      include: ['src/**', '*.md'],
      exclude: ['**/*.log'],
      folderLevel: 1,
    });
    await context.scan();
    assert.deepEqual(context.paths, [...contents.keys()].sort());
    for (const entry of context.files()) assert.equal(entry.content, contents.get(entry.path));
    // An event in one folder reaches that folder's file.
    const changed = `export const changed = ${Math.random()};\n`;
    writeFileSync(path.join(root, 'f1', 'src', 'main.ts'), changed);
    await context.applyChange({ path: `${names[1]}/src/main.ts`, kind: 'changed' });
    assert.equal(context.files().find((entry) => entry.path === `${names[1]}/src/main.ts`)?.content, changed);
    await context.applyChange({ path: 'nowhere/src/main.ts', kind: 'changed' });
    assert.equal(context.paths.length, contents.size);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('FoldersFileSystem refuses repeated or empty names', () => {
  const fs = new NodeFileSystem(os.tmpdir());
  assert.throws(
    () =>
      new FoldersFileSystem([
        { name: 'a', fileSystem: fs },
        { name: 'a', fileSystem: fs },
      ]),
  );
  assert.throws(() => new FoldersFileSystem([{ name: '', fileSystem: fs }]));
  assert.throws(() => new FoldersFileSystem([{ name: 'a/b', fileSystem: fs }]));
});
