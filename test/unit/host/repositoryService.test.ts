// The engine host's repository over a real folder on disk, with a character tokenizer and a
// recording stand-in engine: the layout does not depend on the active file, a save changes
// tokens only from that file's block on, the warm-up yields to requests and resumes, and bad
// input (vanishing, binary, oversized files, edits during warm-up) is handled.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { PrefixCache, commonPrefixLength } from '../../../src/host/prefixCache';
import { RepositoryLayout, type RepositoryTokenizer } from '../../../src/host/repositoryLayout';
import { RepositoryService } from '../../../src/host/repositoryService';
import { PRIORITY_BACKGROUND, PRIORITY_COMPLETION, RequestQueue } from '../../../src/host/requestQueue';
import type { CancelToken } from '../../../src/native/addon';
import { RecordingEngine } from './recordingEngine';
import { writeWorkspace } from './workspaceFolder';

const SEP = 5000;
const REPO = 5001;
const tokenizer: RepositoryTokenizer = {
  format: { fileSeparator: '<|file_sep|>', repoName: '<|repo_name|>' },
  encode: (text) => [...text].map((char) => char.codePointAt(0)! % 4096),
  tokenId: (token) => (token === '<|file_sep|>' ? SEP : token === '<|repo_name|>' ? REPO : undefined),
  bos: 1,
};

class Token implements CancelToken {
  cancelled = false;
  cancel() {
    this.cancelled = true;
  }
}

const workspace = writeWorkspace;

function service(engine: RecordingEngine, cache: PrefixCache, queue: RequestQueue) {
  return new RepositoryService({
    prefixCache: cache,
    engine,
    tokenizer,
    runInBackground: (id, job) => queue.enqueue({ id, priority: PRIORITY_BACKGROUND, run: job }),
    modelKey: 'test-model',
    stepSeconds: 0.02,
    longStepSeconds: 0.02,
  });
}

const files = {
  'src/a.ts': 'export const a = 1;\n'.repeat(20),
  'src/b.ts': 'export function b() { return 2; }\n'.repeat(15),
  'src/c.ts': 'import { a } from "./a";\n'.repeat(25),
  'lib/d.ts': 'export class D {}\n'.repeat(30),
  'README.md': '# project\n'.repeat(10),
};

test('files are laid out oldest first, independent of any active file; a save moves only that file to the end', async () => {
  const root = await workspace(files);
  const layout = new RepositoryLayout({ root, include: ['**/*'], exclude: [], repoName: 'demo', maxTokens: 100_000 }, tokenizer);
  await layout.scan();
  const first = layout.layout();
  assert.equal(first.files, 5);
  const order = first.blocks.map((block) => block.key.split('#')[0]);
  assert.deepEqual(order, Object.keys(files), 'modification time order (the files were written oldest first)');
  assert.equal(first.tokens[0], 1, 'BOS first');
  assert.equal(first.tokens[1], REPO);

  // Saving b.ts: everything before b's block stays byte-identical; b moves to the end.
  const bFile = path.join(root, 'src/b.ts');
  await fs.writeFile(bFile, 'export function b() { return 3; }\n'.repeat(15));
  const later = Date.now() / 1000;
  await fs.utimes(bFile, later, later);
  await layout.apply([{ path: 'src/b.ts', kind: 'changed' }]);
  const second = layout.layout();
  const bStart = first.blocks[1].start;
  assert.deepEqual(Array.from(second.tokens.slice(0, bStart)), Array.from(first.tokens.slice(0, bStart)), 'identical up to b');
  assert.ok(commonPrefixLength(first.tokens, second.tokens) < first.blocks[1].start + first.blocks[1].length, 'b itself is no longer there');
  assert.deepEqual(
    second.blocks.map((block) => block.key.split('#')[0]),
    ['src/a.ts', 'src/c.ts', 'lib/d.ts', 'README.md', 'src/b.ts'],
  );
  // The other blocks' tokens are unchanged, only moved.
  for (const block of second.blocks.slice(0, 4)) {
    const before = first.blocks.find((candidate) => candidate.key === block.key)!;
    assert.deepEqual(
      Array.from(second.tokens.slice(block.start, block.start + block.length)),
      Array.from(first.tokens.slice(before.start, before.start + before.length)),
    );
  }
});

test('a file that vanishes or is binary leaves the layout; a repository bigger than the budget drops the oldest files', async () => {
  const root = await workspace({ ...files, 'img.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0, 1, 2, 3]) });
  const small = new RepositoryLayout({ root, include: ['**/*'], exclude: [], maxTokens: 1200 }, tokenizer);
  await small.scan();
  const laid = small.layout();
  assert.equal(laid.skippedFiles, 1, 'the binary file is skipped');
  assert.ok(laid.droppedFiles > 0, 'something had to go');
  assert.ok(laid.tokens.length <= 1200);
  assert.equal(laid.blocks[laid.blocks.length - 1].key.split('#')[0], 'README.md', 'the newest file is kept');

  await fs.rm(path.join(root, 'README.md'));
  await small.apply([{ path: 'README.md', kind: 'changed' }]);
  assert.ok(!small.layout().blocks.some((block) => block.key.startsWith('README.md#')), 'a changed event for a vanished file removes it');
});

test('warm-up runs in steps at background priority, yields to a request, and resumes to ready', async () => {
  const root = await workspace(files);
  const engine = new RecordingEngine(0.05);
  const cache = new PrefixCache(engine);
  const queue = new RequestQueue(() => new Token());
  const repository = service(engine, cache, queue);
  const states: string[] = [];
  repository.onStatus((status) => states.push(`${status.state}:${status.warmTokens}/${status.totalTokens}`));
  const opened = await repository.open({ root, include: ['**/*'], exclude: [], maxTokens: 100_000, repoName: 'demo' });
  assert.ok(opened.totalTokens > 2000);

  // A request arrives while the warm-up runs: it goes before the next warm step.
  await new Promise((resolve) => setTimeout(resolve, 30));
  const order: string[] = [];
  const request = queue.enqueue({ id: 'completion', priority: PRIORITY_COMPLETION, run: async () => order.push(`request after ${engine.prefills} prefills`) });
  await request;
  const ready = await repository.whenReady();
  assert.equal(ready.state, 'ready');
  assert.equal(ready.warmTokens, ready.totalTokens);
  assert.ok(engine.prefills > 2, 'several steps');
  assert.ok(states.some((state) => state.startsWith('warming')));
  assert.ok(order.length === 1 && Number(order[0].split(' ')[2]) < engine.prefills, 'the request ran between warm-up steps');
  await repository.close();
});

test('after a quiet spell warm-up steps are long and a request preempts one: its work is dropped, short steps follow, the warm-up still ends ready', async () => {
  const root = await workspace(files);
  // An engine whose prefill reads the cancel token at its end, as the real one does between layers.
  class CancellableEngine extends RecordingEngine {
    cancelled = 0;
    override async prefill(sequence: number, tokens: ArrayLike<number>, options?: { cancel?: CancelToken; chunk?: number }) {
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(tokens.length * 0.05)));
      if (options?.cancel?.cancelled) {
        this.cancelled += 1;
        throw Object.assign(new Error('prefill cancelled'), { code: 'ERR_TIDAL_CANCELLED' });
      }
      this.calls.push(`prefill ${sequence} ${tokens.length} chunk ${options?.chunk}`);
      this.sequences.get(sequence)!.push(...Array.from(tokens));
      return new Float32Array(0);
    }
  }
  const engine = new CancellableEngine();
  const cache = new PrefixCache(engine);
  const queue = new RequestQueue(() => new Token());
  const preemptible: boolean[] = [];
  const repository = new RepositoryService({
    prefixCache: cache,
    engine,
    tokenizer,
    runInBackground: (id, job, options) => {
      preemptible.push(options?.preemptible ?? false);
      return queue.enqueue({ id, priority: PRIORITY_BACKGROUND, preemptible: options?.preemptible, run: job });
    },
    modelKey: 'test-model',
    stepSeconds: 0.01,
    longStepSeconds: 0.1,
    idleMs: 10_000,
  });
  const opened = await repository.open({ root, include: ['**/*'], exclude: [], maxTokens: 100_000, repoName: 'demo' });
  assert.ok(opened.totalTokens > 2000);
  // Nothing was asked before the open: the first step is long (1024 tokens before any rate is
  // known, ~51 ms here) and preemptible. A request 20 ms into it preempts it.
  await new Promise((resolve) => setTimeout(resolve, 20));
  const order: string[] = [];
  await queue.enqueue({ id: 'completion', priority: PRIORITY_COMPLETION, run: async () => order.push(`request after ${engine.prefills} prefills`) });
  const ready = await repository.whenReady();
  assert.equal(ready.state, 'ready');
  assert.equal(ready.warmTokens, ready.totalTokens);
  assert.equal(engine.cancelled, 1, 'the long step was cancelled once');
  assert.deepEqual(order, ['request after 0 prefills'], 'the request did not wait for the long step');
  assert.equal(preemptible[0], true, 'the first step (no request yet) is preemptible');
  assert.ok(preemptible.length > 2 && preemptible.slice(1).every((p) => !p), `after the preemption steps are short and run to their end: ${preemptible}`);
  // Every token was prefilled once by the steps that completed: the dropped step left nothing.
  const prefilled = engine.calls.filter((call) => call.startsWith('prefill')).reduce((sum, call) => sum + Number(call.split(' ')[2]), 0);
  assert.equal(prefilled, ready.totalTokens);
  await repository.close();
});

test('a completion during a cold warm-up takes only the repository blocks already computed; chat takes all', async () => {
  const root = await workspace(files);
  const engine = new RecordingEngine(0.05);
  const cache = new PrefixCache(engine);
  const queue = new RequestQueue(() => new Token());
  const repository = service(engine, cache, queue);
  await repository.open({ root, include: ['**/*'], exclude: [], maxTokens: 100_000 });
  // Nothing warm yet and the whole repository is below the cold limit: all of it.
  assert.equal(repository.promptPart('completion')?.files, 5);
  await repository.whenReady();
  const part = repository.promptPart('completion')!;
  assert.equal(part.tokens.length, repository.status().totalTokens);
  assert.equal(repository.promptPart('chat')!.tokens.length, part.tokens.length);
  await repository.close();
});

test('an edit that arrives during the warm-up is laid out and warmed too', async () => {
  const root = await workspace(files);
  const engine = new RecordingEngine(0.05);
  const cache = new PrefixCache(engine);
  const queue = new RequestQueue(() => new Token());
  const repository = service(engine, cache, queue);
  await repository.open({ root, include: ['**/*'], exclude: [], maxTokens: 100_000, reuseShiftedKv: true });
  const aFile = path.join(root, 'src/a.ts');
  await fs.writeFile(aFile, 'export const a = 42;\n'.repeat(22));
  await repository.applyEvents([{ path: 'src/a.ts', kind: 'changed' }]);
  const ready = await repository.whenReady();
  assert.equal(ready.state, 'ready');
  assert.equal(ready.warmTokens, ready.totalTokens);
  const holder = cache.exactHolder(repository.promptPart('chat')!)!;
  assert.equal(holder.tokens, ready.totalTokens, 'the engine holds the new layout token for token');
  await repository.close();
});

test('a completion never waits for a cold repository: it takes the blocks already warm, all of them once warm', async () => {
  const big: Record<string, string> = {};
  for (let i = 0; i < 6; i++) big[`src/file${i}.ts`] = `export const value${i} = ${i};\n`.repeat(100);
  const root = await workspace(big);
  const engine = new RecordingEngine(0.02);
  const cache = new PrefixCache(engine);
  const queue = new RequestQueue(() => new Token());
  const repository = service(engine, cache, queue);
  const opened = await repository.open({ root, include: ['**/*'], exclude: [], maxTokens: 100_000 });
  assert.ok(opened.totalTokens > 4096 + 2000, 'more than a completion computes itself');
  assert.equal(repository.promptPart('completion'), undefined, 'nothing warm yet: no repository part');
  assert.equal(repository.promptPart('chat')!.tokens.length, opened.totalTokens, 'chat takes it all');
  // Part-way: some blocks, each whole, all of them already computed.
  let partial;
  for (let i = 0; i < 200 && partial === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const part = repository.promptPart('completion');
    if (part !== undefined && part.tokens.length < opened.totalTokens) partial = part;
  }
  assert.ok(partial !== undefined, 'a partial repository part was seen during the warm-up');
  assert.ok(cache.bestReuse(partial, false) >= partial.tokens.length, 'every token of it is warm');
  await repository.whenReady();
  assert.equal(repository.promptPart('completion')!.tokens.length, opened.totalTokens);
  await repository.close();
});

test('several workspace folders: every folder is in the layout, each file under its folder name (in the block keys and in the prompt tokens); the saved KV is keyed by all folders', async () => {
  const first = await workspace({ 'src/a.ts': `export const a = ${Math.random()};\n`, 'node_modules/x/i.js': 'x' });
  const second = await workspace({ 'lib/b.py': `b = ${Math.random()}\n`, 'build/out.js': 'x' });
  const names = [`front-${Math.random().toString(36).slice(2, 6)}`, 'build'];
  const folders = [
    { name: names[0], path: first },
    { name: names[1], path: second },
  ];
  const layout = new RepositoryLayout({ root: first, folders, include: ['**/*'], exclude: [], repoName: 'team', maxTokens: 100_000 }, tokenizer);
  await layout.scan();
  const laid = layout.layout();
  const paths = laid.blocks.map((block) => block.key.split('#')[0]).sort();
  assert.deepEqual(paths, [`${names[0]}/src/a.ts`, 'build/lib/b.py'].sort());
  const text = String.fromCodePoint(...Array.from(laid.tokens).filter((token) => token < 4096 && token > 1));
  for (const p of paths) assert.ok(text.includes(p), `${p} is not written in the prompt`);
  // An event in the second folder changes that file's block only.
  await fs.writeFile(path.join(second, 'lib/b.py'), 'b = "changed"\n');
  await layout.apply([{ path: 'build/lib/b.py', kind: 'changed' }]);
  const after = String.fromCodePoint(...Array.from(layout.layout().tokens).filter((token) => token < 4096 && token > 1));
  assert.ok(after.includes('b = "changed"'));

  const { workspaceIdentity } = await import('../../../src/host/repositoryService');
  assert.equal(workspaceIdentity({ root: first }), first);
  assert.equal(workspaceIdentity({ root: first, folders: [folders[0]] }), first);
  const both = workspaceIdentity({ root: first, folders });
  assert.notEqual(both, first);
  assert.notEqual(both, workspaceIdentity({ root: second, folders: [...folders].reverse() }));
});
