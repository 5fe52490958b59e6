// Answers that stop before their end, in the engine host: a continued chat answer is the same
// conversation with the answer so far after it (its KV reused), and an answer that loops is
// stopped with finish reason 'repetition' when the request asks for it, and only then.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { ModelSession } from '../../../src/host/modelSession';
import type { ChatGenerateParams } from '../../../src/core/protocol/protocol';
import { loadAddon, type NativeAddon, type NativeEngine } from '../../../src/native/addon';
import { random } from '../seededRandom';

const addon = loadAddon(path.resolve('dist'));
const modelDir = path.resolve('test/fixtures/models/qwen2-tied-sharded-f32');
const tokenizerDir = path.resolve('test/fixtures/tokenizers/chatml-byte-bpe');

const chat = (requestId: string, extra: Partial<ChatGenerateParams> = {}): ChatGenerateParams => ({
  requestId,
  kind: 'chat',
  messages: [
    { role: 'system', content: 'You answer questions about this repository.' },
    { role: 'user', content: 'What does add do? '.repeat(6) },
  ],
  maxTokens: 6,
  sampling: { temperature: 0 },
  ...extra,
});

test('a continued answer: the prompt is the conversation, then the answer so far; the conversation KV is reused', async () => {
  const session = await ModelSession.load(addon, { modelDir, tokenizerDir, options: { threads: 2 } });
  try {
    const next = random(5);
    const plain = session.buildPrompt(chat('p')).tokens;
    for (let trial = 0; trial < 20; trial++) {
      const words = Array.from({ length: 1 + Math.floor(next() * 12) }, () => ['the', ' cache', 'Fn', '(', ') {', '\n  ', 'é', '日本'][Math.floor(next() * 8)]);
      const prefix = words.join('');
      const continued = session.buildPrompt(chat('c', { answerPrefix: prefix })).tokens;
      assert.deepEqual([...continued], [...plain, ...session.tokenizer.encode(prefix)], `prefix ${JSON.stringify(prefix)}`);
    }
    const first = await session.generate(chat('first'));
    assert.equal(first.finishReason, 'length');
    assert.ok(first.text.length > 0);
    const second = await session.generate(chat('second', { answerPrefix: first.text }));
    assert.equal(second.promptTokens, first.promptTokens + session.tokenizer.encode(first.text).length);
    // Everything of the first prompt comes from the cache; only the answer's start is computed.
    assert.ok(second.reusedTokens >= first.promptTokens, `reused ${second.reusedTokens} of the first prompt's ${first.promptTokens}`);
    assert.equal(second.recomputedTokens, second.promptTokens - second.reusedTokens);
  } finally {
    await session.unload();
  }
});

/** The real addon, whose engines generate `loop` over and over (stopping when cancelled) instead of sampling. */
function loopingAddon(loop: readonly number[]): NativeAddon {
  return {
    ...addon,
    async loadModel(dir: string, options?: Parameters<NativeAddon['loadModel']>[1]) {
      const engine = await addon.loadModel(dir, options);
      const generate: NativeEngine['generate'] = async (_sequence, _tokens, generateOptions, onToken, cancel) => {
        const tokens: number[] = [];
        const limit = generateOptions?.maxTokens ?? 16;
        while (tokens.length < limit && !cancel?.cancelled) {
          const token = loop[tokens.length % loop.length];
          tokens.push(token);
          onToken?.(token);
          await new Promise((resolve) => setImmediate(resolve));
        }
        return {
          tokens: Int32Array.from(tokens),
          finishReason: cancel?.cancelled ? 'cancelled' : 'length',
          promptTokens: 0,
          prefillSeconds: 0,
          decodeSeconds: 0.001,
        };
      };
      return new Proxy(engine, {
        get(target, name) {
          if (name === 'generate') return generate;
          const value = Reflect.get(target, name, target) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
    },
  } as NativeAddon;
}

test('a looping chat answer stops with finish reason repetition where the request asks for it', async () => {
  const probe = await ModelSession.load(addon, { modelDir, tokenizerDir, options: { threads: 2 } });
  const loop = probe.tokenizer.encode('and the cache holds the keys, ');
  await probe.unload();
  const session = await ModelSession.load(loopingAddon(loop), { modelDir, tokenizerDir, options: { threads: 2 } });
  try {
    const streamed: string[] = [];
    const stopped = await session.generate(chat('loop', { maxTokens: 1000, stopOnRepetition: true }), (text) => streamed.push(text));
    assert.equal(stopped.finishReason, 'repetition');
    assert.equal(streamed.join(''), stopped.text);
    // Stopped once the loop covered max(200 tokens, 8 cycles): not at the 1000-token limit.
    const needed = Math.max(200, 8 * loop.length);
    assert.equal(stopped.tokens, needed);
    assert.ok(stopped.text.split('and the cache holds the keys').length - 1 >= 8);

    const unguarded = await session.generate(chat('free', { maxTokens: 300 }));
    assert.equal(unguarded.finishReason, 'length');
    assert.equal(unguarded.tokens, 300);
    const completion = await session.generate({ requestId: 'raw', kind: 'raw', prompt: 'x', maxTokens: 300 });
    assert.equal(completion.finishReason, 'length');
  } finally {
    await session.unload();
  }
});
