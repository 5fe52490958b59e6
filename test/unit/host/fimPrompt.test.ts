// FIM prompt formats per model family, as plain strings: detection from special tokens,
// suffix-first where the family supports it, repository context first.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { buildFimPrompt, detectFimFormat, encodePromptParts, promptText } from '../../../src/core/prompt/fimPrompt';

const vocabulary =
  (...tokens: string[]) =>
  (token: string) =>
    tokens.includes(token);
const request = { prefix: 'def add(a, b):\n    ', suffix: '\n\nprint(add(1, 2))\n' };

test('Qwen2.5-Coder: prefix-suffix-middle with <|fim_*|> tokens, repository files behind <|file_sep|>', () => {
  const format = detectFimFormat(
    vocabulary('<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|fim_pad|>', '<|file_sep|>', '<|repo_name|>', '<|endoftext|>'),
  );
  assert.equal(format?.family, 'qwen');
  assert.equal(format.order, 'psm');
  assert.equal(promptText(buildFimPrompt(format, request)), '<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>');
  const withRepo = buildFimPrompt(format, {
    ...request,
    repoName: 'demo',
    filePath: 'src/main.py',
    repositoryContext: [{ path: 'src/util.py', content: 'X = 1' }],
  });
  assert.equal(
    promptText(withRepo),
    '<|repo_name|>demo\n<|file_sep|>src/util.py\nX = 1\n<|file_sep|>src/main.py\n' +
      '<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>',
  );
  assert.deepEqual(format.stopTokens, ['<|endoftext|>', '<|fim_pad|>', '<|file_sep|>', '<|fim_prefix|>', '<|repo_name|>']);
});

test('StarCoder2: suffix-first, so typing at the cursor only appends to the prompt', () => {
  const format = detectFimFormat(vocabulary('<fim_prefix>', '<fim_suffix>', '<fim_middle>', '<file_sep>', '<repo_name>', '<|endoftext|>'));
  assert.equal(format?.family, 'starcoder');
  assert.equal(format.order, 'spm');
  const before = promptText(buildFimPrompt(format, request));
  assert.equal(before, '<fim_prefix><fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>def add(a, b):\n    ');
  const after = promptText(buildFimPrompt(format, { ...request, prefix: request.prefix + 'return a' }));
  assert.ok(after.startsWith(before));
  // Prefix-suffix-middle on request.
  const psm = detectFimFormat(vocabulary('<fim_prefix>', '<fim_suffix>', '<fim_middle>'), 'psm');
  assert.equal(promptText(buildFimPrompt(psm!, request)), '<fim_prefix>def add(a, b):\n    <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>');
  const withRepo = promptText(buildFimPrompt(format, { ...request, repoName: 'r', filePath: 'b.py', repositoryContext: [{ path: 'a.py', content: 'A' }] }));
  assert.ok(withRepo.startsWith('<repo_name>r\n<file_sep>a.py\nA\n<file_sep>b.py\n<fim_prefix><fim_suffix>'));
});

test('DeepSeek-Coder: begin/hole/end, prefix-suffix-middle; other files as path headers', () => {
  const format = detectFimFormat(vocabulary('<｜fim▁begin｜>', '<｜fim▁hole｜>', '<｜fim▁end｜>', '<｜end▁of▁sentence｜>'));
  assert.equal(format?.family, 'deepseek');
  assert.equal(format.order, 'psm');
  assert.equal(promptText(buildFimPrompt(format, request)), '<｜fim▁begin｜>def add(a, b):\n    <｜fim▁hole｜>\n\nprint(add(1, 2))\n<｜fim▁end｜>');
  const withRepo = promptText(buildFimPrompt(format, { ...request, filePath: 'main.py', repositoryContext: [{ path: 'util.py', content: 'X = 1' }] }));
  assert.ok(withRepo.startsWith('// File: util.py\nX = 1\n\n// File: main.py\n<｜fim▁begin｜>'));
  assert.deepEqual(format.stopTokens, ['<｜end▁of▁sentence｜>', '<｜fim▁begin｜>']);
});

test('CodeLlama: spaced <PRE> <SUF> <MID> sentinels, suffix-first, either spelling of the tokens', () => {
  for (const names of [
    ['<PRE>', '<SUF>', '<MID>', '<EOT>'],
    ['▁<PRE>', '▁<SUF>', '▁<MID>', '▁<EOT>'],
  ]) {
    const format = detectFimFormat(vocabulary(...names));
    assert.equal(format?.family, 'codellama');
    assert.equal(format.order, 'spm');
    assert.deepEqual(format.stopTokens, [names[3]]);
    const [pre, suf, mid] = names;
    assert.equal(promptText(buildFimPrompt(format, request)), `${pre} ${suf}\n\nprint(add(1, 2))\n ${mid} def add(a, b):\n    `);
    const psm = detectFimFormat(vocabulary(...names), 'psm')!;
    assert.equal(promptText(buildFimPrompt(psm, request)), `${pre} def add(a, b):\n     ${suf}\n\nprint(add(1, 2))\n ${mid}`);
  }
});

test('a tokenizer without FIM tokens has no format; prompt parts encode special tokens as single ids', () => {
  assert.equal(detectFimFormat(vocabulary('<|im_start|>', '<|im_end|>')), undefined);
  const ids = encodePromptParts(
    [{ token: '<A>' }, { text: 'xy' }, { text: 'z' }, { token: '<B>' }],
    (text) => [...text].map((char) => char.charCodeAt(0)),
    (token) => ({ '<A>': 1000, '<B>': 1001 })[token],
  );
  assert.deepEqual(ids, [1000, 120, 121, 122, 1001]);
  assert.throws(
    () =>
      encodePromptParts(
        [{ token: '<C>' }],
        () => [],
        () => undefined,
      ),
    /no <C> token/,
  );
});

test('every family keeps the repository part a stable prefix: a keystroke changes only the text after it', () => {
  const vocabularies = [
    vocabulary('<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|file_sep|>', '<|repo_name|>'),
    vocabulary('<fim_prefix>', '<fim_suffix>', '<fim_middle>', '<file_sep>', '<repo_name>'),
    vocabulary('<｜fim▁begin｜>', '<｜fim▁hole｜>', '<｜fim▁end｜>'),
    vocabulary('<PRE>', '<SUF>', '<MID>', '<EOT>'),
  ];
  const repo = {
    repoName: 'demo',
    filePath: 'src/main.py',
    repositoryContext: [
      { path: 'src/a.py', content: 'A = 1\n' },
      { path: 'src/b.py', content: 'B = 2\n' },
    ],
  };
  for (const hasToken of vocabularies) {
    const format = detectFimFormat(hasToken)!;
    const before = promptText(buildFimPrompt(format, { ...repo, prefix: 'x = A', suffix: '\nprint(x)\n' }));
    const typed = promptText(buildFimPrompt(format, { ...repo, prefix: 'x = A +', suffix: '\nprint(x)\n' }));
    const sentinel = format.family === 'codellama' ? '<PRE>' : format.prefix;
    const repoPart = before.slice(0, before.indexOf(sentinel));
    assert.ok(repoPart.includes('src/a.py') && repoPart.includes('B = 2'), `${format.family}: the repository comes first`);
    assert.ok(typed.startsWith(repoPart), `${format.family}: the repository part changed`);
    // Suffix-first formats: typing at the cursor only appends.
    if (format.order === 'spm') assert.ok(typed.startsWith(before), `${format.family}: typing did not only append`);
    else assert.ok(!typed.startsWith(before));
  }
});
