// A model's chat template is code from its folder. One that loops for ever, allocates without
// end or writes text without end must cost a request a clear error within the render limit, not
// the process its event loop and then its heap; the next render, and other requests, still work.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { renderChat } from '../../src/core/prompt/chatTemplate';
import { TidalError } from '../../src/native/errors';
import { generateRequest } from '../../src/core/protocol/protocol';
import type { TokenizerConfig } from '../../src/core/tokenizer/tokenizer';
import { embeddedModelDir, exitWithin, loadEmbeddedModel, startHost } from './hostFixture';

const chatml =
  '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
const messages = [{ role: 'user' as const, content: 'Hello there' }];

// [what it does, the template, what the error says]
const bombs: [string, string, RegExp][] = [
  ['a range of 100 million numbers (heap)', '{% for i in range(100000000) %}{% endfor %}', /did not finish within 1 s/],
  ['nested loops of 10 000 × 10 000 (time)', '{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}', /did not finish within 1 s/],
  [
    'a text that doubles 22 times, to 64 M characters (output)',
    "{% set ns = namespace(text='xxxxxxxxxxxxxxxx') %}{% for i in range(22) %}{% set ns.text = ns.text + ns.text %}{% endfor %}{{ ns.text }}",
    /wrote 67108864 characters/,
  ],
  ['a million copies of a line (time)', "{% for i in range(1000000) %}{{ 'a line of prompt text that repeats ' }}{% endfor %}", /did not finish within 1 s/],
];

for (const [name, template, says] of bombs) {
  test(`cause 1: a chat template with ${name} fails within the limit with an error naming the template`, { timeout: 30_000 }, () => {
    const started = Date.now();
    assert.throws(
      () => renderChat({ chat_template: template } as TokenizerConfig, messages, { modelName: 'hostile-model', timeLimitMs: 1_000 }),
      (error: Error) => {
        assert.ok(error instanceof TidalError && error.code === 'ERR_TIDAL_REQUEST', `${error.name}: ${error.message}`);
        assert.match(error.message, /chat template/);
        assert.match(error.message, says);
        assert.match(error.message, /hostile-model/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    // The next render (a new worker) is fine.
    assert.equal(renderChat({ chat_template: chatml } as TokenizerConfig, messages), '<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n');
  });
}

test('cause 1: the default limit is 2 s and the error says so; a normal render stays fast', { timeout: 30_000 }, () => {
  assert.throws(
    () => renderChat({ chat_template: '{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}' } as TokenizerConfig, messages),
    /chat template did not finish within 2 s/,
  );
  const config = { chat_template: chatml } as TokenizerConfig;
  renderChat(config, messages);
  const started = performance.now();
  for (let index = 0; index < 200; index++) renderChat(config, [{ role: 'user', content: `question ${index}` }]);
  const perRender = (performance.now() - started) / 200;
  assert.ok(perRender < 5, `${perRender.toFixed(2)} ms per render`);
});

test('cause 1: a template that fails or does not parse still gets the template error, not a worker error', () => {
  assert.throws(() => renderChat({ chat_template: '{% for %}' } as TokenizerConfig, messages), /chat template could not be parsed/);
  assert.throws(
    () => renderChat({ chat_template: "{{ raise_exception('no system role') }}" } as TokenizerConfig, messages),
    /chat template failed on this conversation/,
  );
});

test('cause 1: the engine host survives a model whose chat template runs the heap out; other requests still work', { timeout: 90_000 }, async () => {
  const modelDir = mkdtempSync(path.join(os.tmpdir(), 'tidal-template-bomb-'));
  for (const name of readdirSync(embeddedModelDir)) copyFileSync(path.join(embeddedModelDir, name), path.join(modelDir, name));
  const config = JSON.parse(readFileSync(path.join(modelDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  config.chat_template = '{% for i in range(100000000) %}{% endfor %}';
  writeFileSync(path.join(modelDir, 'tokenizer_config.json'), JSON.stringify(config));
  const host = startHost();
  try {
    const { connection } = host;
    await loadEmbeddedModel(connection, { modelDir });
    for (const attempt of [1, 2]) {
      const started = Date.now();
      await assert.rejects(
        connection.sendRequest(generateRequest, { requestId: `chat-${attempt}`, kind: 'chat', messages, maxTokens: 4 }),
        (error: Error & { data?: { code?: string } }) =>
          /chat template did not finish within 2 s/.test(error.message) && error.data?.code === 'ERR_TIDAL_REQUEST',
      );
      assert.ok(Date.now() - started < 6_000, `attempt ${attempt} took ${Date.now() - started} ms`);
    }
    const raw = await connection.sendRequest(generateRequest, { requestId: 'raw', kind: 'raw', prompt: 'def f(x):\n', maxTokens: 4 });
    assert.ok(raw.tokens > 0);
    assert.equal(await exitWithin(host, 100), undefined, host.stderr());
  } finally {
    await host.stop();
    rmSync(modelDir, { recursive: true, force: true });
  }
});
