import assert from 'node:assert/strict';
import { utimesSync } from 'node:fs';
import * as nodePath from 'node:path';
import { after, test } from 'node:test';

import { NodeFileSystem } from '../../../src/core/context/nodeFileSystem';
import { RepositoryContext } from '../../../src/core/context/repositoryContext';
import type { RepositoryContextOptions } from '../../../src/core/context/types';
import { FILES_PER_MODULE, makeFixtureRepo, type FixtureRepo } from './makeFixtureRepo';

/** About four characters a token, like the real tokenizers on code. */
const countTokens = (text: string) => Math.ceil(text.length / 4);
const UNLIMITED = Number.MAX_SAFE_INTEGER;

const repos: FixtureRepo[] = [];
after(() => repos.forEach((repo) => repo.remove()));

function fixture(): FixtureRepo {
  const repo = makeFixtureRepo();
  repos.push(repo);
  return repo;
}

async function scanned(repo: FixtureRepo, options: Partial<RepositoryContextOptions> = {}): Promise<RepositoryContext> {
  const context = new RepositoryContext({ fileSystem: new NodeFileSystem(repo.root), countTokens, ...options });
  await context.scan();
  context.render(UNLIMITED); // tokens are counted when a render first needs them
  return context;
}

let clock = Date.now() / 1000 + 1000;
/** Rewrites a file and gives it a new modification time, as an editor save would. */
function editOnDisk(repo: FixtureRepo, path: string, contents: string): void {
  repo.write(path, contents);
  clock += 10;
  utimesSync(nodePath.join(repo.root, ...path.split('/')), clock, clock);
}

function commonPrefixLength(a: string, b: string): number {
  const limit = Math.min(a.length, b.length);
  let i = 0;
  while (i < limit && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** Files read and tokenized by `run` and the render of everything that follows it. */
function deltaCounters(context: RepositoryContext, run: () => Promise<void>): Promise<{ read: number; tokenized: number }> {
  const before = { ...context.counters };
  return run().then(() => {
    context.render(UNLIMITED);
    return {
      read: context.counters.filesRead - before.filesRead,
      tokenized: context.counters.filesTokenized - before.filesTokenized,
    };
  });
}

test('scan includes exactly the expected files and says why others are left out', async () => {
  const repo = fixture();
  const context = await scanned(repo);
  assert.deepEqual(context.paths, repo.included);
  assert.equal(context.skipReason('data/huge.txt'), 'too-large');
  assert.equal(context.skipReason('assets/logo.png'), 'binary');
  assert.equal(context.skipReason('assets/latin1.txt'), 'binary');
  assert.equal(context.skipReason('web/bundle.js'), 'generated');
  assert.equal(context.skipReason('src/gen/schema.ts'), 'generated');
  const rendered = context.render(UNLIMITED);
  assert.deepEqual(rendered.droppedFiles, []);
  assert.equal(rendered.files.length, repo.included.length);
  for (const path of repo.excluded) assert.ok(!rendered.text.includes(`<|file_sep|>${path}\n`), path);
});

test('include and exclude globs narrow the set; the size cap is configurable', async () => {
  const repo = fixture();
  const context = await scanned(repo, { include: ['src/**', 'data/**'], exclude: ['src/mod1*/**', '**/legacy/**'], maxFileBytes: 4 * 1024 * 1024 });
  const expected = repo.included.filter((p) => p.startsWith('src/') && !p.startsWith('src/mod1') && !p.startsWith('src/legacy/'));
  assert.deepEqual(context.paths, [...expected, 'data/huge.txt'].sort());
});

test('two scans give the same order and text; a rescan of an unchanged tree reads no source file', async () => {
  const repo = fixture();
  const first = await scanned(repo);
  const second = await scanned(repo);
  const a = first.render(UNLIMITED);
  const b = second.render(UNLIMITED);
  assert.equal(a.text, b.text);
  assert.deepEqual(a.files, b.files);
  assert.deepEqual(
    a.files.map((f) => f.path),
    [...repo.included].sort(),
  );
  const rescan = await deltaCounters(first, () => first.scan());
  assert.deepEqual(rescan, { read: 2, tokenized: 0 }, 'only the two .gitignore files are read again');
  assert.equal(first.render(UNLIMITED).text, a.text);
});

test('rendered offsets and token counts describe the text exactly', async () => {
  const repo = fixture();
  const context = await scanned(repo, { fileSeparator: '<SEP>' });
  const rendered = context.render(UNLIMITED);
  let tokens = 0;
  rendered.files.forEach((file, i) => {
    const end = i + 1 < rendered.files.length ? rendered.files[i + 1].startOffset : rendered.text.length;
    const segment = rendered.text.slice(file.startOffset, end);
    assert.ok(segment.startsWith(`<SEP>${file.path}\n`));
    assert.ok(segment.endsWith('\n'));
    assert.equal(file.tokens, countTokens(segment));
    assert.equal(file.startToken, tokens);
    tokens += file.tokens;
  });
  assert.equal(rendered.totalTokens, tokens);
});

test('a budget keeps the relevant files and the longest background prefix', async () => {
  const repo = fixture();
  const context = await scanned(repo);
  const active = 'src/mod10/file03.ts';
  context.setActiveFile(active);
  const full = context.render(UNLIMITED);
  const relevant = new Set(full.files.slice(-(FILES_PER_MODULE + 1)).map((f) => f.path));
  assert.ok(relevant.has('src/mod17/file03.ts'), 'the far import counts as relevant');
  const budget = Math.floor(full.totalTokens / 3);
  const fitted = context.render(budget);
  assert.ok(fitted.totalTokens <= budget);
  assert.ok(fitted.totalTokens > budget - 100, 'the budget is used, not wasted');
  assert.equal(fitted.files.at(-1)!.path, active);
  assert.deepEqual(
    fitted.files.slice(-relevant.size).map((f) => f.path),
    full.files.slice(-relevant.size).map((f) => f.path),
  );
  assert.equal(fitted.files.length + fitted.droppedFiles.length, full.files.length);
  // Background files are kept from the start of the path order; past the first one that did not
  // fit, only small files that still fit the remainder follow.
  const fullBackground = full.files.map((f) => f.path).filter((p) => !relevant.has(p));
  const keptBackground = fitted.files.map((f) => f.path).filter((p) => !relevant.has(p));
  const firstDropped = fullBackground.findIndex((p, i) => keptBackground[i] !== p);
  assert.ok(firstDropped > 0);
  assert.ok(keptBackground.length - firstDropped <= 5);

  // Typing into the active file squeezes the budget; only files at the end of the background go.
  await context.applyChange({ path: active, kind: 'changed', text: `${sourceOf(full, active)}${'// a few more lines of text\n'.repeat(30)}` });
  const squeezed = context.render(budget);
  assert.ok(squeezed.totalTokens <= budget);
  let same = 0;
  while (same < squeezed.files.length && squeezed.files[same].path === fitted.files[same].path) same++;
  assert.ok(squeezed.droppedFiles.length > fitted.droppedFiles.length, 'the longer active file pushed files out');
  const prefix = commonPrefixLength(fitted.text, squeezed.text);
  assert.ok(prefix >= fitted.files[same].startOffset);
  assert.ok(same >= firstDropped - 5, `only the end of the background changes (${same} of ${firstDropped} kept in place)`);
  console.log(
    `# budget ${budget} tokens: ${fitted.files.length} files fit, ${fitted.droppedFiles.length} dropped; ` +
      `after typing, prefix kept ${prefix}/${fitted.text.length} chars (${((100 * prefix) / fitted.text.length).toFixed(1)}%)`,
  );
  assert.equal(context.render(0).files.length, 0);
});

function sourceOf(rendered: ReturnType<RepositoryContext['render']>, path: string): string {
  const index = rendered.files.findIndex((f) => f.path === path);
  const start = rendered.files[index].startOffset + `<|file_sep|>${path}\n`.length;
  const end = index + 1 < rendered.files.length ? rendered.files[index + 1].startOffset : rendered.text.length;
  return rendered.text.slice(start, end);
}

test('renderFiles gives each file with its contents, and the excluded file takes no room from the others', async () => {
  const repo = fixture();
  const context = await scanned(repo);
  const active = 'src/mod10/file03.ts';
  context.setActiveFile(active);
  const full = context.render(UNLIMITED);
  const activeTokens = full.files.find((f) => f.path === active)!.tokens;

  // Unlimited: every file but the excluded one, in render's order, with render's contents.
  const all = context.renderFiles(UNLIMITED, `./${active}`);
  assert.deepEqual(
    all.files.map((f) => f.path),
    full.files.map((f) => f.path).filter((p) => p !== active),
  );
  for (const file of all.files.slice(0, 20)) assert.equal(file.content, sourceOf(full, file.path));
  assert.equal(all.tokens, full.totalTokens - activeTokens);
  assert.deepEqual(all.droppedFiles, []);

  // A budget: the others get all of it (not what is left after the active file), never more.
  const budget = Math.floor(full.totalTokens / 3);
  const fitted = context.renderFiles(budget, active);
  assert.ok(fitted.tokens <= budget);
  assert.ok(fitted.tokens > budget - 100, `${fitted.tokens} of ${budget} tokens used`);
  assert.ok(!fitted.files.some((f) => f.path === active) && !fitted.droppedFiles.includes(active));
  const withActive = context.render(budget);
  assert.ok(fitted.tokens > withActive.totalTokens - activeTokens, 'the excluded file was charged to the budget');
  assert.equal(fitted.files.length + fitted.droppedFiles.length, full.files.length - 1);
  assert.equal(context.renderFiles(0, active).files.length, 0);
});

test('a disk edit re-reads and re-tokenizes exactly that file and keeps the prefix before it', async () => {
  const repo = fixture();
  const context = await scanned(repo);
  const before = context.render(UNLIMITED);
  const path = 'src/mod05/file07.ts';
  const oldStart = before.files.find((f) => f.path === path)!.startOffset;
  editOnDisk(repo, path, `${sourceOf(before, path)}export const added = 1;\n`);
  const delta = await deltaCounters(context, () => context.applyChange({ path, kind: 'changed' }));
  assert.deepEqual(delta, { read: 1, tokenized: 1 });
  const afterFirst = context.render(UNLIMITED);
  const firstPrefix = commonPrefixLength(before.text, afterFirst.text);
  assert.ok(firstPrefix >= oldStart, 'everything before the edited file is unchanged');
  assert.equal(afterFirst.files.at(-1)!.path, path, 'the edited file moves to the end');

  // Editing it again only touches the last segment.
  const lastStart = afterFirst.files.at(-1)!.startOffset;
  editOnDisk(repo, path, `${sourceOf(afterFirst, path)}export const addedAgain = 2;\n`);
  assert.deepEqual(await deltaCounters(context, () => context.applyChange({ path, kind: 'changed' })), { read: 1, tokenized: 1 });
  const afterSecond = context.render(UNLIMITED);
  const secondPrefix = commonPrefixLength(afterFirst.text, afterSecond.text);
  assert.ok(secondPrefix >= lastStart + sourceOf(afterFirst, path).length);
  console.log(
    `# prefix kept: first edit ${firstPrefix}/${before.text.length} chars (file started at ${oldStart}); ` +
      `second edit ${secondPrefix}/${afterFirst.text.length} chars (${((100 * secondPrefix) / afterFirst.text.length).toFixed(2)}%)`,
  );

  // A duplicate event with an unchanged stat reads nothing; a save of identical text re-tokenizes nothing.
  assert.deepEqual(await deltaCounters(context, () => context.applyChange({ path, kind: 'changed' })), { read: 0, tokenized: 0 });
  editOnDisk(repo, path, sourceOf(afterSecond, path));
  assert.deepEqual(await deltaCounters(context, () => context.applyChange({ path, kind: 'changed' })), { read: 1, tokenized: 0 });
  assert.equal(context.render(UNLIMITED).text, afterSecond.text);
});

test('editor buffers update without reading the disk; typing in the active file never reorders others', async () => {
  const repo = fixture();
  const context = await scanned(repo);
  const active = 'src/mod03/file04.ts';
  context.markOpen(['src/mod12/file00.ts', active]);
  context.setActiveFile(active);
  const start = context.render(UNLIMITED);
  assert.equal(start.files.at(-1)!.path, active, 'the active file is last');
  assert.equal(start.files.at(-2)!.path, 'src/mod12/file00.ts', 'open files come right before it');
  const othersBefore = start.files.slice(0, -1).map((f) => f.path);

  let text = sourceOf(start, active);
  let previous = start;
  for (let keystroke = 0; keystroke < 20; keystroke++) {
    text += keystroke % 5 === 4 ? ';\n' : 'x';
    const delta = await deltaCounters(context, () => context.applyChange({ path: active, kind: 'changed', text }));
    assert.deepEqual(delta, { read: 0, tokenized: 1 });
    const next = context.render(UNLIMITED);
    assert.deepEqual(
      next.files.slice(0, -1).map((f) => f.path),
      othersBefore,
    );
    assert.ok(commonPrefixLength(previous.text, next.text) >= next.files.at(-1)!.startOffset + text.length - 1);
    previous = next;
  }
});

test('typing in the file being completed tokenizes nothing while completions leave it out', async () => {
  const repo = fixture();
  const context = await scanned(repo);
  const active = 'src/mod03/file04.ts';
  context.setActiveFile(active);
  let text = sourceOf(context.render(UNLIMITED), active);
  for (let keystroke = 0; keystroke < 10; keystroke++) {
    text += keystroke % 4 === 3 ? '\n' : 'y';
    const before = context.counters.filesTokenized;
    await context.applyChange({ path: active, kind: 'changed', text });
    const rendered = context.renderFiles(UNLIMITED, active);
    assert.equal(context.counters.filesTokenized - before, 0, `keystroke ${keystroke}`);
    assert.ok(!rendered.files.some((f) => f.path === active));
    assert.equal(rendered.files.length, repo.included.length - 1);
  }
  // A render that includes it counts it once, with the text typed last.
  const before = context.counters.filesTokenized;
  const full = context.render(UNLIMITED);
  assert.equal(context.counters.filesTokenized - before, 1);
  const last = full.files.at(-1)!;
  assert.equal(last.path, active);
  assert.equal(sourceOf(full, active), text.endsWith('\n') ? text : `${text}\n`);
  assert.equal(last.tokens, countTokens(full.text.slice(last.startOffset)));
  context.render(UNLIMITED);
  assert.equal(context.counters.filesTokenized - before, 1, 'and only once');
});

test('the active file pulls its folder and its imports next to it', async () => {
  const repo = fixture();
  const context = await scanned(repo);
  context.setActiveFile('src/mod10/file03.ts');
  const order = context.render(UNLIMITED).files.map((f) => f.path);
  const tail = order.slice(-(FILES_PER_MODULE + 1));
  assert.equal(tail.at(-1), 'src/mod10/file03.ts');
  const neighbours = tail.slice(0, -1);
  // Its folder's other files plus the far import '../mod17/file03', sorted by path.
  assert.deepEqual(neighbours, [...repo.sources.filter((p) => p.startsWith('src/mod10/') && p !== 'src/mod10/file03.ts'), 'src/mod17/file03.ts'].sort());
  // Switching back to no active file restores the plain path order.
  context.setActiveFile(undefined);
  assert.deepEqual(
    context.render(UNLIMITED).files.map((f) => f.path),
    [...repo.included].sort(),
  );
});

test('created and deleted files and folders; ignored creations stay out', async () => {
  const repo = fixture();
  const context = await scanned(repo);
  repo.write('src/mod02/fresh.ts', 'export const fresh = true;\n');
  assert.deepEqual(await deltaCounters(context, () => context.applyChange({ path: 'src/mod02/fresh.ts', kind: 'created' })), { read: 1, tokenized: 1 });
  assert.ok(context.paths.includes('src/mod02/fresh.ts'));
  assert.equal(context.render(UNLIMITED).files.at(-1)!.path, 'src/mod02/fresh.ts');

  repo.write('src/legacy/other.gen.ts', 'export const x = 1;\n');
  repo.write('node_modules/new-dep/index.js', 'module.exports = 1;\n');
  repo.write('notes.log', 'ignored\n');
  for (const path of ['src/legacy/other.gen.ts', 'node_modules/new-dep/index.js', 'notes.log']) {
    assert.deepEqual(await deltaCounters(context, () => context.applyChange({ path, kind: 'created' })), { read: 0, tokenized: 0 }, path);
  }
  repo.write('src/newpkg/a.ts', 'export const a = 1;\n');
  repo.write('src/newpkg/inner/b.ts', 'export const b = 1;\n');
  await context.applyChange({ path: 'src/newpkg', kind: 'created' });
  assert.ok(context.paths.includes('src/newpkg/a.ts') && context.paths.includes('src/newpkg/inner/b.ts'));

  const before = context.render(UNLIMITED);
  await context.applyChange({ path: 'src/mod19/file13.ts', kind: 'deleted' });
  const afterDelete = context.render(UNLIMITED);
  assert.ok(!afterDelete.files.some((f) => f.path === 'src/mod19/file13.ts'));
  assert.ok(commonPrefixLength(before.text, afterDelete.text) >= before.files.find((f) => f.path === 'src/mod19/file13.ts')!.startOffset);
  await context.applyChange({ path: 'src/mod04', kind: 'deleted' });
  assert.ok(!context.paths.some((p) => p.startsWith('src/mod04/')));
  assert.equal(context.paths.length, repo.included.length + 3 - 1 - FILES_PER_MODULE);
});

test('a changed .gitignore is applied without re-reading unchanged files', async () => {
  const repo = fixture();
  const context = await scanned(repo);
  editOnDisk(repo, '.gitignore', '*.log\n!keep.log\n/output/\ntmp/\nsecret.txt\ndocs/**/*.draft.md\nsrc/mod0*/\n');
  const delta = await deltaCounters(context, () => context.applyChange({ path: '.gitignore', kind: 'changed' }));
  assert.deepEqual(
    context.paths,
    repo.included.filter((p) => !p.startsWith('src/mod0')),
  );
  // Both rule files are read for their rules, the root one once more as a context file.
  assert.deepEqual(delta, { read: 3, tokenized: 1 });
});

test('performance: scanning the 300-file fixture takes under a second', async () => {
  const repo = fixture();
  const started = performance.now();
  const context = await scanned(repo);
  const scanMs = performance.now() - started;
  const renderStarted = performance.now();
  const rendered = context.render(UNLIMITED);
  const renderMs = performance.now() - renderStarted;
  const rescanStarted = performance.now();
  await context.scan();
  const rescanMs = performance.now() - rescanStarted;
  console.log(
    `# ${context.paths.length} files, ${rendered.totalTokens} tokens: scan ${scanMs.toFixed(1)} ms, ` +
      `render ${renderMs.toFixed(2)} ms, unchanged rescan ${rescanMs.toFixed(1)} ms`,
  );
  assert.ok(context.paths.length >= 300);
  assert.ok(scanMs < 1000, `scan took ${scanMs.toFixed(0)} ms`);
});
