// The chat prompt on the shipped model: it starts with the repository files in exactly the
// tokens a completion prompt starts with (so one cached KV serves both), then the conversation
// in the model's ChatML; a model without a chat template is refused with a clear message.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { ModelSession } from '../../../src/host/modelSession';
import type { ChatGenerateParams, GenerateParams } from '../../../src/core/protocol/protocol';
import { TextTokenizer } from '../../../src/core/tokenizer/tokenizer';
import { loadAddon } from '../../../src/native/addon';

const addon = loadAddon(path.resolve('dist'));
const modelDir = path.resolve('models/tidal-code-mini');

const repositoryContext = [
  { path: 'src/kvCache.ts', content: 'export class KvCache {\n  trim(length: number) {\n    this.length = Math.min(this.length, length);\n  }\n}\n' },
  { path: 'src/select_top_k.py', content: 'def select_top_k(scores, k):\n    return sorted(range(len(scores)), key=lambda i: -scores[i])[:k]\n' },
];

const completion = (requestId: string): GenerateParams => ({
  requestId,
  kind: 'completion',
  repoName: 'demo',
  repositoryContext,
  filePath: 'src/main.ts',
  prefix: 'const cache = new KvCache();\ncache.',
  suffix: '\n',
  maxTokens: 4,
  attention: { mode: 'full' },
  sampling: { temperature: 0 },
});

const chat = (requestId: string, question: string, mode: 'full' | 'tidal' = 'full'): ChatGenerateParams => ({
  requestId,
  kind: 'chat',
  repoName: 'demo',
  repositoryContext,
  messages: [
    { role: 'system', content: 'You answer questions about the repository above.' },
    { role: 'user', content: question },
  ],
  maxTokens: 6,
  attention: { mode, tokenBudget: 16 },
  sampling: { temperature: 0 },
});

test('the chat prompt is [repository files as completions render them][ChatML conversation]', async () => {
  const session = await ModelSession.load(addon, { modelDir, options: { threads: 2 } });
  try {
    // The reference, spelled out by hand: special tokens by id, text through the tokenizer.
    const tokenizer = TextTokenizer.fromDirectory(modelDir);
    const id = (token: string) => {
      const value = tokenizer.tokenId(token);
      assert.notEqual(value, undefined, token);
      return value as number;
    };
    const expectedPrefix = [id('<|repo_name|>'), ...tokenizer.encode('demo\n')];
    for (const file of repositoryContext) expectedPrefix.push(id('<|file_sep|>'), ...tokenizer.encode(`${file.path}\n${file.content}\n`));
    const conversation =
      '<|im_start|>system\nYou answer questions about the repository above.<|im_end|>\n' +
      '<|im_start|>user\nWhat does trim do?<|im_end|>\n<|im_start|>assistant\n';
    const expectedChat = [...expectedPrefix, ...tokenizer.encode(conversation)];

    // Prompt tokens come as an Int32Array; compared as plain arrays.
    const chatTokens = Array.from(session.buildPrompt(chat('x', 'What does trim do?')).tokens);
    assert.deepEqual(chatTokens, expectedChat);
    const completionTokens = Array.from(session.buildPrompt(completion('y')).tokens);
    assert.deepEqual(completionTokens.slice(0, expectedPrefix.length), expectedPrefix, 'completion prompts start with the same repository tokens');

    // Without repository files the prompt is the conversation alone.
    const bare = Array.from(session.buildPrompt({ ...chat('z', 'What does trim do?'), repositoryContext: [] }).tokens);
    assert.deepEqual(bare, tokenizer.encode(conversation));
  } finally {
    await session.unload();
  }
});

test('a chat after a completion reuses the KV of the shared repository prefix; the result says which attention ran', async () => {
  const session = await ModelSession.load(addon, { modelDir, options: { threads: 2 } });
  try {
    const first = await session.generate(completion('c1'));
    assert.equal(first.reusedTokens, 0);
    const chatTokens = session.buildPrompt(chat('x', 'Where is the cache trimmed?')).tokens;
    const completionTokens = Array.from(session.buildPrompt(completion('y')).tokens);
    let common = 0;
    while (chatTokens[common] === completionTokens[common]) common++;
    assert.ok(common > 50, `shared prefix of ${common} tokens`);

    const streamed: string[] = [];
    const answer = await session.generate(chat('q1', 'Where is the cache trimmed?'), (text) => streamed.push(text));
    assert.equal(answer.reusedTokens, common);
    assert.equal(answer.recomputedTokens, chatTokens.length - common);
    assert.equal(streamed.join(''), answer.text);
    assert.equal(answer.attention?.mode, 'full');
    assert.equal(answer.attention?.attendedFraction, 1);

    const sparse = await session.generate(chat('q2', 'Where is the cache trimmed?', 'tidal'));
    assert.equal(sparse.attention?.mode, 'tidal');
    assert.ok(sparse.attention.contextLength >= chatTokens.length, `context ${sparse.attention.contextLength}`);
    assert.ok(sparse.attention.attendedFraction > 0 && sparse.attention.attendedFraction < 1, `attended ${sparse.attention.attendedFraction}`);
  } finally {
    await session.unload();
  }
});

test('a model whose tokenizer_config.json has no chat template is refused for chat with a message that says what to do', async () => {
  const tokenizerDir = mkdtempSync(path.join(os.tmpdir(), 'tidal-no-template-'));
  try {
    copyFileSync(path.join(modelDir, 'tokenizer.json'), path.join(tokenizerDir, 'tokenizer.json'));
    const config = JSON.parse(readFileSync(path.join(modelDir, 'tokenizer_config.json'), 'utf8'));
    delete config.chat_template;
    writeFileSync(path.join(tokenizerDir, 'tokenizer_config.json'), JSON.stringify(config));
    const session = await ModelSession.load(addon, { modelDir, tokenizerDir, options: { threads: 2 } });
    try {
      assert.equal(session.info().tokenizer.hasChatTemplate, false);
      await assert.rejects(session.generate(chat('q', 'hello')), /has no chat template in tokenizer_config\.json.*Pick an instruction-tuned/s);
      // Completions still work with it.
      const done = await session.generate(completion('c'));
      assert.ok(done.finishReason === 'length' || done.finishReason === 'stop');
    } finally {
      await session.unload();
    }
  } finally {
    rmSync(tokenizerDir, { recursive: true, force: true });
  }
});
