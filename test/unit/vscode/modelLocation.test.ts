import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { FALLBACK_CONTEXT_TOKENS, estimateTokens, repositoryBudget } from '../../../src/core/context/contextBudget';
import { engineBackendFor, missingModelProblem, resolveModelLocation } from '../../../src/vscode/modelLocation';

test('an empty tidal.modelPath means the embedded model; relative paths resolve against the workspace', () => {
  assert.deepEqual(resolveModelLocation('  ', '/ext/models/mini', '/ws'), { modelDir: '/ext/models/mini', embedded: true });
  assert.deepEqual(resolveModelLocation('models/qwen', '/ext/models/mini', '/ws'), { modelDir: '/ws/models/qwen', embedded: false });
  assert.deepEqual(resolveModelLocation('/m/qwen', '/ext/models/mini', '/ws'), { modelDir: '/m/qwen', embedded: false });
  // A GGUF file carries its tokenizer; a tokenizer.json beside it is used instead when present.
  assert.deepEqual(resolveModelLocation('/m/Qwen2.5-Coder-1.5B-Q8_0.GGUF', '/e', '/ws'), { modelDir: '/m/Qwen2.5-Coder-1.5B-Q8_0.GGUF', embedded: false });
  const dir = mkdtempSync(path.join(tmpdir(), 'tidal-gguf-'));
  try {
    writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
    assert.deepEqual(resolveModelLocation(path.join(dir, 'm.gguf'), '/e'), { modelDir: path.join(dir, 'm.gguf'), tokenizerDir: dir, embedded: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('~ in tidal.modelPath is the home folder on every platform (HOME is unset on Windows), ~user is not', () => {
  const home = process.env.HOME;
  delete process.env.HOME;
  try {
    assert.equal(resolveModelLocation('~/models/qwen', '/e', '/ws').modelDir, path.join(homedir(), 'models/qwen'));
    assert.equal(resolveModelLocation('~\\models', '/e', '/ws').modelDir, path.join(homedir(), 'models'));
    assert.equal(resolveModelLocation('~', '/e', '/ws').modelDir, homedir());
    assert.equal(resolveModelLocation('~other/m', '/e', '/ws').modelDir, '/ws/~other/m');
  } finally {
    if (home !== undefined) process.env.HOME = home;
  }
});

test('the backend setting picks CUDA only where it is compiled and usable, unless CUDA is demanded', () => {
  assert.equal(engineBackendFor('auto', true, ['cpu', 'cuda']), 'cuda');
  assert.equal(engineBackendFor('auto', false, ['cpu', 'cuda']), 'cpu');
  assert.equal(engineBackendFor('auto', true, ['cpu']), 'cpu');
  assert.equal(engineBackendFor('cpu', true, ['cpu', 'cuda']), 'cpu');
  // An explicit 'cuda' goes to the engine, which then says why it cannot run there.
  assert.equal(engineBackendFor('cuda', false, ['cpu']), 'cuda');
});

test('a missing or wrong model path gets a message that says what to fix', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tidal-model-'));
  try {
    const folder = path.join(dir, 'model');
    mkdirSync(folder);
    const notAModel = path.join(dir, 'weights.bin');
    writeFileSync(notAModel, 'x');
    assert.equal(missingModelProblem({ modelDir: folder, embedded: false }), undefined);
    assert.match(missingModelProblem({ modelDir: path.join(dir, 'nope'), embedded: false }) ?? '', /does not exist.*Select Model/);
    assert.match(missingModelProblem({ modelDir: path.join(dir, 'nope'), embedded: true }) ?? '', /reinstall/);
    assert.match(missingModelProblem({ modelDir: notAModel, embedded: false }) ?? '', /model folder .* or a \.gguf file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the repository budget is the smaller context limit minus what the request needs', () => {
  assert.equal(repositoryBudget(0, 16384, 4096), 12288);
  assert.equal(repositoryBudget(8000, 16384, 1000), 7000);
  assert.equal(repositoryBudget(100000, 16384, 1000), 15384); // the model's limit wins
  assert.equal(repositoryBudget(0, 0, 768), FALLBACK_CONTEXT_TOKENS - 768); // unknown model context
  assert.equal(repositoryBudget(500, 16384, 1000), 0);
  assert.equal(estimateTokens('héllo wörld'), Math.ceil(13 / 3));
});
