// The model layer on a real (tiny) engine: fixture model + fixture tokenizer. Prefix reuse
// recomputes only what changed, reused KV gives the same tokens as a fresh prompt, and a
// cancelled running request stops while the next one runs.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { ModelSession } from '../../../src/host/modelSession';
import type { GenerateParams } from '../../../src/core/protocol/protocol';
import { loadAddon } from '../../../src/native/addon';

const addon = loadAddon(path.resolve('dist'));
const modelDir = path.resolve('test/fixtures/models/qwen2-tied-sharded-f32');
const tokenizerDir = path.resolve('test/fixtures/tokenizers/chatml-byte-bpe');
const load = () => ModelSession.load(addon, { modelDir, tokenizerDir, options: { threads: 2 } });

const repositoryContext = [
  { path: 'src/math.ts', content: 'export function add(a: number, b: number): number {\n  return a + b;\n}\n'.repeat(8) },
  { path: 'src/text.ts', content: "export const greeting = 'hello world';\nexport function shout(text: string) { return text.toUpperCase(); }\n" },
];
const completion = (requestId: string, suffix: string): GenerateParams => ({
  requestId,
  kind: 'completion',
  repoName: 'demo',
  filePath: 'src/main.ts',
  repositoryContext,
  prefix: "import { add } from './math';\nconst total = add(",
  suffix,
  maxTokens: 6,
  attention: { mode: 'full' },
  sampling: { temperature: 0 },
});

test('prefix reuse: a repeated prompt recomputes one token, an edit near the end recomputes only the tail', async () => {
  const session = await load();
  try {
    const first = await session.generate(completion('c1', ');\nconsole.log(total);\n'));
    assert.equal(first.reusedTokens, 0);
    assert.equal(first.recomputedTokens, first.promptTokens);
    assert.ok(first.promptTokens > 100, `prompt of ${first.promptTokens} tokens`);

    const again = await session.generate(completion('c2', ');\nconsole.log(total);\n'));
    assert.equal(again.reusedTokens, again.promptTokens - 1);
    assert.equal(again.recomputedTokens, 1);
    assert.equal(again.text, first.text);

    // Edit near the end (the suffix, which precedes <|fim_middle|>): only the tokens from the
    // first difference on are recomputed.
    const edited = completion('c3', ');\nconsole.log(totals);\n');
    const before = session.buildPrompt(completion('x', ');\nconsole.log(total);\n')).tokens;
    const after = session.buildPrompt(edited).tokens;
    let common = 0;
    while (before[common] === after[common]) common++;
    const result = await session.generate(edited);
    assert.equal(result.reusedTokens, common);
    assert.equal(result.recomputedTokens, after.length - common);
    assert.ok(result.recomputedTokens <= 8, `recomputed ${result.recomputedTokens} of ${after.length}`);

    // The same prompt on a fresh engine (nothing cached) generates the same tokens.
    const fresh = await load();
    try {
      const reference = await fresh.generate(edited);
      assert.equal(reference.reusedTokens, 0);
      assert.equal(result.text, reference.text);
      assert.equal(result.tokens, reference.tokens);
    } finally {
      await fresh.unload();
    }

    const stats = session.stats();
    assert.equal(stats.prefixCache.requests, 3);
    assert.equal(stats.prefixCache.tokensReused, again.reusedTokens + result.reusedTokens);
    assert.equal(stats.queue.completed, 3);
  } finally {
    await session.unload();
  }
});

test('a sparse prefill: a keystroke after a long repository recomputes its tail under tidal, and that tail is not reused', async () => {
  const session = await load();
  try {
    // Over SPARSE_PREFILL_MIN_BUDGETS budgets of 64 tokens of repository before the file being edited.
    const long = [{ path: 'src/long.ts', content: repositoryContext[0].content.repeat(4) }, ...repositoryContext];
    const attention = { mode: 'tidal' as const, tokenBudget: 64, sparsePrefill: true };
    const request = (requestId: string, suffix: string): GenerateParams => Object.assign(completion(requestId, suffix), { repositoryContext: long, attention });
    const first = await session.generate(request('s1', ');\nconsole.log(total);\n'));
    assert.ok(first.promptTokens > 600 && first.promptTokens < 4000, `prompt of ${first.promptTokens} tokens`);
    const edited = await session.generate(request('s2', ');\nconsole.log(totals);\n'));
    assert.ok(edited.reusedTokens > 4 * 64 && edited.recomputedTokens <= 16, `reused ${edited.reusedTokens}, recomputed ${edited.recomputedTokens}`);
    // Its recomputed entries were sparse: the same prompt again recomputes them instead of
    // reusing them (a dense request would recompute one token).
    const again = await session.generate(request('s3', ');\nconsole.log(totals);\n'));
    assert.deepEqual([again.reusedTokens, again.recomputedTokens], [edited.reusedTokens, edited.recomputedTokens]);
    assert.equal(again.text, edited.text);
    const dense = await session.generate({ ...request('s4', ');\nconsole.log(totals);\n'), attention: { mode: 'tidal', tokenBudget: 64 } });
    assert.equal(dense.recomputedTokens, edited.recomputedTokens);
    const denseAgain = await session.generate({ ...request('s5', ');\nconsole.log(totals);\n'), attention: { mode: 'tidal', tokenBudget: 64 } });
    assert.equal(denseAgain.recomputedTokens, 1);
  } finally {
    await session.unload();
  }
});

test('chat and completions keep separate cached prefixes, so alternating does not clobber either', async () => {
  const session = await load();
  try {
    const chat = (requestId: string, question: string): GenerateParams => ({
      requestId,
      kind: 'chat',
      messages: [
        { role: 'system', content: 'You answer questions about this repository.\n' + repositoryContext[0].content },
        { role: 'user', content: question },
      ],
      maxTokens: 4,
      sampling: { temperature: 0 },
    });
    await session.generate(completion('c1', ');\n'));
    const firstChat = await session.generate(chat('q1', 'What does add do?'));
    assert.equal(firstChat.reusedTokens, 0);
    const secondCompletion = await session.generate(completion('c2', ');\n'));
    assert.equal(secondCompletion.recomputedTokens, 1);
    const secondChat = await session.generate(chat('q2', 'And shout?'));
    const firstPrompt = session.buildPrompt(chat('x', 'What does add do?')).tokens;
    const secondPrompt = session.buildPrompt(chat('y', 'And shout?')).tokens;
    let common = 0;
    while (firstPrompt[common] === secondPrompt[common]) common++;
    assert.ok(common > 100);
    assert.equal(secondChat.reusedTokens, common);
    assert.equal(session.stats().prefixCache.slots, 2);
  } finally {
    await session.unload();
  }
});

test('streamed chunks add up to the text; a cancelled running request stops and the queued one runs', async () => {
  const session = await load();
  try {
    const chunks: string[] = [];
    const long = session.generate({ requestId: 'long', kind: 'raw', prompt: 'function add(a, b) {', maxTokens: 3000, sampling: { temperature: 0 } }, (text) => {
      chunks.push(text);
      if (chunks.length === 2) session.cancel('long');
    });
    const queuedChunks: string[] = [];
    const next = session.generate({ requestId: 'next', kind: 'raw', prompt: 'const value = ', maxTokens: 5, sampling: { temperature: 0 } }, (text) =>
      queuedChunks.push(text),
    );
    const stopped = await long;
    assert.equal(stopped.finishReason, 'cancelled');
    assert.ok(stopped.tokens < 3000);
    assert.equal(chunks.join(''), stopped.text);
    const after = await next;
    assert.ok(after.finishReason === 'length' || after.finishReason === 'stop');
    assert.equal(queuedChunks.join(''), after.text);
    assert.ok(after.timings.queuedMs > 0);

    // Cancelled while still queued: nothing runs.
    const blocker = session.generate({ requestId: 'blocker', kind: 'raw', prompt: 'x', maxTokens: 20, sampling: { temperature: 0 } });
    const victim = session.generate({ requestId: 'victim', kind: 'raw', prompt: 'y', maxTokens: 20 });
    assert.equal(session.cancel('victim'), true);
    assert.deepEqual({ finishReason: (await victim).finishReason, tokens: (await victim).tokens }, { finishReason: 'cancelled', tokens: 0 });
    await blocker;
  } finally {
    await session.unload();
  }
});

test('requests that cannot be served say why', async () => {
  const session = await load();
  try {
    await assert.rejects(session.generate({ requestId: 'a', kind: 'chat', messages: [] }), /at least one message/);
    await assert.rejects(session.generate({ requestId: 'b', kind: 'raw', prompt: '' }), /needs a prompt/);
    assert.equal(session.info().tokenizer.fim?.family, 'qwen');
    assert.equal(session.info().tokenizer.hasChatTemplate, true);
  } finally {
    await session.unload();
  }
});

test('unloading during a generation cancels it and waits for it before freeing the engine', async () => {
  const session = await load();
  let sawToken!: () => void;
  const firstToken = new Promise<void>((resolve) => (sawToken = resolve));
  const running = session.generate({ requestId: 'r', kind: 'raw', prompt: 'let y = ', maxTokens: 5000, sampling: { temperature: 0 } }, () => sawToken());
  await Promise.race([firstToken, running]);
  await session.unload();
  const result = await running;
  assert.ok(result.finishReason === 'cancelled' || result.finishReason === 'stop', result.finishReason);
  assert.ok(result.tokens < 5000);
});
