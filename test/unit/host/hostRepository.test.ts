// The host-owned repository on a real (tiny) engine: a file switch recomputes only the cursor
// window, a save in the middle of the layout reuses the files after it by compaction (or
// recomputes them with shifted reuse off), and the repository KV saved to disk comes back in
// a new session token for token, with the same completion.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { ModelSession } from '../../../src/host/modelSession';
import type { GenerateParams, WorkspaceOpenParams } from '../../../src/core/protocol/protocol';
import { loadAddon } from '../../../src/native/addon';
import { writeWorkspace } from './workspaceFolder';

const addon = loadAddon(path.resolve('dist'));
const modelDir = path.resolve('test/fixtures/models/qwen2-tied-sharded-f32');
const tokenizerDir = path.resolve('test/fixtures/tokenizers/chatml-byte-bpe');
const load = () => ModelSession.load(addon, { modelDir, tokenizerDir, options: { threads: 2 } });

async function workspace(): Promise<string> {
  const files: Record<string, string> = {
    'src/math.ts': 'export function add(a: number, b: number): number {\n  return a + b;\n}\n'.repeat(4),
    'src/text.ts': "export const greeting = 'hello world';\nexport function shout(text: string) { return text.toUpperCase(); }\n",
    'src/list.ts': 'export const items = [1, 2, 3];\nexport function first<T>(list: T[]) { return list[0]; }\n'.repeat(3),
    'src/main.ts': "import { add } from './math';\nconst total = add(1, 2);\nconsole.log(total);\n",
    'README.md': '# demo\nA small project.\n',
  };
  return writeWorkspace(files);
}

const open = (root: string, extra: Partial<WorkspaceOpenParams> = {}): WorkspaceOpenParams => ({
  root,
  repoName: 'demo',
  include: ['**/*'],
  exclude: [],
  maxTokens: 3000,
  ...extra,
});

const completion = (requestId: string, filePath: string, prefix: string, suffix = '\n'): GenerateParams => ({
  requestId,
  kind: 'completion',
  repository: true,
  filePath,
  prefix,
  suffix,
  maxTokens: 4,
  attention: { mode: 'full' },
  sampling: { temperature: 0 },
});

test('switching files leaves the repository tokens byte-identical and recomputes only the cursor window', async () => {
  const root = await workspace();
  const session = await load();
  try {
    const status = await session.openWorkspace(open(root));
    assert.equal(status.files, 5);
    assert.equal((await session.whenRepositoryReady()).state, 'ready');
    const inMain = session.buildPrompt(completion('x', 'src/main.ts', 'const t = add('));
    const inText = session.buildPrompt(completion('y', 'src/text.ts', 'export const g = '));
    assert.equal(inMain.repositoryTokens, status.totalTokens);
    assert.deepEqual(Array.from(inMain.tokens.slice(0, inMain.repositoryTokens)), Array.from(inText.tokens.slice(0, inText.repositoryTokens)));

    const a = await session.generate(completion('a', 'src/main.ts', 'const t = add('));
    assert.equal(a.repositoryTokens, status.totalTokens);
    assert.ok(a.reusedTokens >= status.totalTokens, 'the warm repository is reused');
    const b = await session.generate(completion('b', 'src/text.ts', 'export const g = '));
    assert.ok(b.recomputedTokens <= b.promptTokens - status.totalTokens, `a switch recomputes only the window (${b.recomputedTokens})`);
    assert.ok(b.timings.hostMs !== undefined && b.timings.hostMs >= 0);
    assert.ok(b.timings.firstDecodeMs !== undefined);
  } finally {
    await session.unload();
  }
});

test('a save in the middle of the layout: compaction keeps the files after it; without it they are recomputed', async () => {
  for (const reuseShiftedKv of [true, false]) {
    const root = await workspace();
    const session = await load();
    try {
      await session.openWorkspace(open(root, { reuseShiftedKv }));
      await session.whenRepositoryReady();
      await session.generate(completion('a', 'src/main.ts', 'const t = add('));
      // Save text.ts (second in the layout): it moves to the end.
      const file = path.join(root, 'src/text.ts');
      await fs.writeFile(file, "export const greeting = 'hello there';\nexport function shout(text: string) { return text.toUpperCase(); }\n");
      const now = Date.now() / 1000;
      await fs.utimes(file, now, now);
      const counted = () => session.stats().prefixCache;
      const before = counted();
      await session.workspaceEvents([{ path: 'src/text.ts', kind: 'changed' }]);
      // The warm-up picks the change up in the background; the request after it is cheap.
      const result = await session.generate(completion('b', 'src/main.ts', 'const t = add('));
      await session.whenRepositoryReady();
      const after = counted();
      const shifted = (after.tokensShifted ?? 0) - (before.tokensShifted ?? 0);
      const recomputed = after.tokensRecomputed - before.tokensRecomputed;
      const textTokens = 60; // the saved file's block, about
      if (reuseShiftedKv) {
        assert.ok(shifted > 100, `the files after the saved one were moved (${shifted}), not recomputed`);
        assert.ok(recomputed < 3 * textTokens + result.promptTokens - result.repositoryTokens!, `recomputed ${recomputed}`);
      } else {
        assert.equal(shifted, 0);
        assert.ok(recomputed > 150 + textTokens, `recomputed ${recomputed}: everything after the saved file`);
      }
      assert.equal(result.repositoryTokens, session.repositoryStatus().totalTokens, 'the request had the whole repository part');
      assert.equal(result.finishReason === 'length' || result.finishReason === 'stop', true);
    } finally {
      await session.unload();
    }
  }
});

test('the repository KV saved to disk comes back in a new session: nothing recomputed, the same completion', async () => {
  const root = await workspace();
  const persistDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tidal-kv-'));
  const first = await load();
  let expected: string;
  let total: number;
  try {
    await first.openWorkspace(open(root, { persistDir }));
    total = (await first.whenRepositoryReady()).totalTokens;
    expected = (await first.generate(completion('a', 'src/main.ts', 'const t = add('))).text;
    const saved = await first.flushRepository();
    assert.ok(saved.saved && saved.bytes > 0, 'saved');
  } finally {
    await first.unload();
  }
  const second = await load();
  try {
    const status = await second.openWorkspace(open(root, { persistDir }));
    assert.equal(status.restoredTokens, total);
    assert.equal((await second.whenRepositoryReady()).state, 'ready');
    const again = await second.generate(completion('b', 'src/main.ts', 'const t = add('));
    assert.ok(again.reusedTokens >= total, 'the restored repository is reused');
    assert.equal(again.text, expected);
  } finally {
    await second.unload();
  }
  // A corrupted file is refused with the engine's words and the repository is computed again.
  const stored = (await fs.readdir(persistDir))[0];
  const kvFile = path.join(persistDir, stored, 'repository.kv');
  const bytes = await fs.readFile(kvFile);
  await fs.writeFile(kvFile, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const third = await load();
  try {
    const status = await third.openWorkspace(open(root, { persistDir }));
    assert.equal(status.restoredTokens, undefined);
    assert.equal((await third.whenRepositoryReady()).state, 'ready');
  } finally {
    await third.unload();
  }
});

test('a prefetched cursor window: the first completion there recomputes one token', async () => {
  const root = await workspace();
  const session = await load();
  try {
    await session.openWorkspace(open(root));
    await session.whenRepositoryReady();
    await session.generate(completion('a', 'src/main.ts', 'const t = add('));
    // The editor switches to text.ts: its window is computed in the background.
    await session.prefetch(completion('p', 'src/text.ts', 'export const g = '));
    const first = await session.generate(completion('b', 'src/text.ts', 'export const g = '));
    assert.equal(first.recomputedTokens, 1, 'only the last prompt token, which generation processes anyway');
    // Without the prefetch, a switch recomputes the window.
    const other = await session.generate(completion('c', 'src/list.ts', 'export const x = '));
    assert.ok(other.recomputedTokens > 5, `recomputed ${other.recomputedTokens}`);
  } finally {
    await session.unload();
  }
});
