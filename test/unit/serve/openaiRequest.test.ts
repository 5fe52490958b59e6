// Request parsing of `tidal serve`: the repository stream in a FIM prompt is split back into
// its files exactly (random repositories), and stop strings cut streamed text where a search
// over the whole text would, however the text is chunked.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { detectFimFormat } from '../../../src/core/prompt/fimPrompt';
import { parseChatRequest, parseCompletionRequest, splitRepoPrompt } from '../../../src/serve/openaiRequest';
import { StopSequenceFilter } from '../../../src/serve/stopSequences';
import { random } from '../seededRandom';
import { chatParams } from '../paramsOfKind';

const qwenTokens = ['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|file_sep|>', '<|repo_name|>', '<|endoftext|>'];
const qwen = detectFimFormat((token) => qwenTokens.includes(token));
const limits = { maxTokens: 4096 };

function randomText(next: () => number, length: number): string {
  const alphabet = 'abc xyz{}();\n\n=<>|_/';
  let text = '';
  for (let i = 0; i < length; i++) text += alphabet[Math.floor(next() * alphabet.length)];
  return text;
}

test('a repository stream prompt splits back into the very files, path and prefix it was made of', () => {
  const next = random(7);
  for (let round = 0; round < 200; round++) {
    const files = Array.from({ length: Math.floor(next() * 4) }, (_, i) => ({ path: `src/f${i}.ts`, content: randomText(next, Math.floor(next() * 60)) }));
    const repoName = next() < 0.5 ? 'demo' : undefined;
    const prefix = randomText(next, Math.floor(next() * 30));
    // Written out by hand, the way the local prompt lays the repository out.
    let prompt = '';
    if (repoName !== undefined) prompt += `<|repo_name|>${repoName}\n`;
    for (const file of files) prompt += `<|file_sep|>${file.path}\n${file.content}\n`;
    const hasHeader = files.length > 0 || repoName !== undefined;
    if (hasHeader) prompt += '<|file_sep|>src/main.ts\n';
    prompt += prefix;
    const split = splitRepoPrompt(qwen, prompt);
    if (!hasHeader) {
      assert.deepEqual(split, { prefix: prompt });
      continue;
    }
    assert.deepEqual(split, { repoName, repositoryContext: files, filePath: 'src/main.ts', prefix }, `round ${round}`);
  }
});

test('prompts that are not a repository stream stay one prefix', () => {
  for (const prompt of ['plain text', '<|file_sep|>no newline', '<|repo_name|>demo', '<|file_sep|>a.ts\nunterminated<|file_sep|>b.ts\nx']) {
    assert.deepEqual(splitRepoPrompt(qwen, prompt), { prefix: prompt });
  }
  assert.deepEqual(splitRepoPrompt(undefined, '<|file_sep|>a.ts\nx'), { prefix: '<|file_sep|>a.ts\nx' });
});

test('stop strings: streamed in random chunks, the text stops where indexOf over the whole text says', () => {
  const next = random(11);
  for (let round = 0; round < 300; round++) {
    const text = randomText(next, 80);
    const stops = Array.from({ length: 1 + Math.floor(next() * 3) }, () => {
      const at = Math.floor(next() * text.length);
      return next() < 0.7 ? text.slice(at, at + 1 + Math.floor(next() * 4)) : `@${randomText(next, 2)}`; // some never occur
    }).filter((stop) => stop.length > 0);
    const hits = stops.map((stop) => text.indexOf(stop)).filter((at) => at >= 0);
    const expected = hits.length > 0 ? text.slice(0, Math.min(...hits)) : text;
    const filter = new StopSequenceFilter(stops);
    let out = '';
    for (let at = 0; at < text.length;) {
      const size = 1 + Math.floor(next() * 6);
      out += filter.push(text.slice(at, at + size));
      at += size;
    }
    out += filter.flush();
    assert.equal(out, expected, `round ${round}: stops ${JSON.stringify(stops)}`);
    assert.equal(filter.stopped, hits.length > 0);
  }
});

test('completion and chat bodies map to GenerateParams; unsupported fields are refused by name', () => {
  const fim = parseCompletionRequest({ prompt: 'a', suffix: 'b', max_tokens: 5, temperature: 0.5, top_p: 0.9, seed: 3, stream: true }, 'id1', qwen, limits);
  assert.deepEqual(fim.params, {
    requestId: 'id1',
    kind: 'completion',
    prefix: 'a',
    suffix: 'b',
    maxTokens: 5,
    sampling: { temperature: 0.5, topP: 0.9, seed: 3 },
    attention: undefined,
    client: 'request:id1',
  });
  assert.equal(fim.stream, true);
  const raw = parseCompletionRequest({ prompt: ['only one'], stop: 'x' }, 'id2', qwen, limits);
  assert.equal(raw.params.kind, 'raw');
  assert.equal(raw.params.prompt, 'only one');
  assert.deepEqual(raw.stop, ['x']);
  const chat = parseChatRequest(
    {
      messages: [
        { role: 'developer', content: [{ type: 'text', text: 'be brief' }] },
        { role: 'user', content: 'hi' },
      ],
    },
    'id3',
    limits,
  );
  assert.deepEqual(chatParams(chat.params).messages, [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hi' },
  ]);
  assert.throws(() => parseCompletionRequest({ prompt: 'a', logprobs: 2 }, 'x', qwen, limits), /logprobs/);
  assert.throws(() => parseCompletionRequest({ prompt: 'a', max_tokens: 0 }, 'x', qwen, limits), /max_tokens/);
  assert.throws(() => parseCompletionRequest({ prompt: 'a', stop: ['', 'b'] }, 'x', qwen, limits), /stop/);
  assert.throws(() => parseCompletionRequest({ prompt: 'a', echo: true }, 'x', qwen, limits), /echo/);
  assert.throws(() => parseChatRequest({ messages: 'hi' }, 'x', limits), /messages/);
});

test('chat: the `repository` extra becomes the files before the conversation; a malformed one is refused by its field', () => {
  const files = [
    { path: 'src/a.ts', content: 'export const a = 1;\n' },
    { path: 'src/b.ts', content: '' },
  ];
  const chat = parseChatRequest({ messages: [{ role: 'user', content: 'hi' }], repository: { name: 'demo', files } }, 'r1', limits);
  assert.deepEqual(chatParams(chat.params).repositoryContext, files);
  assert.equal(chatParams(chat.params).repoName, 'demo');
  const unnamed = parseChatRequest({ messages: [{ role: 'user', content: 'hi' }], repository: { files } }, 'r2', limits);
  assert.equal(chatParams(unnamed.params).repoName, undefined);
  assert.deepEqual(
    chatParams(parseChatRequest({ messages: [{ role: 'user', content: 'hi' }], repository: null }, 'r3', limits).params).repositoryContext,
    undefined,
  );
  const bad: [unknown, RegExp][] = [
    ['src/a.ts', /`repository`/],
    [{ files: 'src/a.ts' }, /files/],
    [{ files: [{ path: '', content: 'x' }] }, /repository\.files\[0\]\.path/],
    [{ files: [{ path: 'a', content: 3 }] }, /repository\.files\[0\]\.content/],
    [{ files: [files[0], { path: 'b', content: 'y', mode: 'rw' }] }, /repository\.files\[1\]\.mode/],
    [{ name: 7, files }, /repository\.name|`name`/],
    [{ files, branch: 'main' }, /repository\.branch/],
  ];
  for (const [repository, message] of bad) {
    assert.throws(() => parseChatRequest({ messages: [{ role: 'user', content: 'hi' }], repository }, 'x', limits), message, JSON.stringify(repository));
  }
});
