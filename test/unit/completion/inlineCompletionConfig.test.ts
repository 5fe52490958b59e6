// Budgets of a completion request from the settings and the model's context size.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { completionBudget, readCompletionMode, sparsePrefillApplies } from '../../../src/vscode/inlineCompletionConfig';
import { DEFAULT_SETTINGS } from '../../../src/vscode/settings';

test('the file window is a quarter of the context up to 2048 tokens, the suffix at most 768 characters; the repository gets the rest', () => {
  const small = completionBudget(DEFAULT_SETTINGS, 'auto', 4096);
  assert.equal(small.config.maxPrefixChars + small.config.maxSuffixChars, 1024 * 3);
  assert.equal(small.repositoryTokens, 4096 - (1024 + 128 + 64));
  const large = completionBudget(DEFAULT_SETTINGS, 'auto', 131072, 'repo');
  assert.equal(large.config.maxSuffixChars, 768, 'the suffix is capped: it is recomputed on every keystroke');
  assert.equal(large.config.maxPrefixChars, 2048 * 3 - 768);
  assert.equal(small.config.maxSuffixChars, 768);
  assert.equal(large.repositoryTokens, 131072 - (2048 + 128 + 64));
  assert.equal(large.config.repoName, 'repo');
  // tidal.context.maxTokens caps the whole prompt.
  const capped = completionBudget({ ...DEFAULT_SETTINGS, context: { ...DEFAULT_SETTINGS.context, maxTokens: 8192 } }, 'auto', 131072);
  assert.equal(capped.repositoryTokens, 8192 - (2048 + 128 + 64));
  assert.equal(completionBudget(DEFAULT_SETTINGS, 'auto', 0).repositoryTokens, 32768 - (2048 + 128 + 64));
  assert.deepEqual(large.config.attention, { mode: 'tidal', tokenBudget: 2048, selectionLayers: [] });
});

test('a sparse prefill is asked for only where the engine runs it', () => {
  const on = (attention: Partial<typeof DEFAULT_SETTINGS.attention>, kvCache: 'bf16' | 'fp8' = 'bf16') => ({
    ...DEFAULT_SETTINGS,
    attention: { ...DEFAULT_SETTINGS.attention, sparsePrefill: true, ...attention },
    engine: { ...DEFAULT_SETTINGS.engine, kvCache },
  });
  const asked = (settings: typeof DEFAULT_SETTINGS, backend?: string) =>
    completionBudget(settings, 'auto', 131072, 'repo', backend).config.attention?.sparsePrefill === true;
  assert.equal(asked(DEFAULT_SETTINGS, 'cuda'), false); // off by default
  assert.equal(asked(on({}), 'cuda'), true);
  assert.equal(asked(on({}), 'cpu'), true);
  assert.equal(asked(on({ mode: 'quest' }), 'cpu'), true);
  assert.equal(asked(on({ mode: 'quest' }), 'cuda'), false); // the CUDA backend prefills Quest densely only
  assert.equal(asked(on({}, 'fp8'), 'cuda'), false); // nor over an FP8 cache
  assert.equal(asked(on({ mode: 'full' }), 'cpu'), false);
  assert.equal(asked(on({}), 'webgpu'), false);
  assert.equal(asked(on({}), undefined), false); // no local model (a remote engine)
  assert.equal(sparsePrefillApplies(on({}), 'cuda'), true);
});

test('on the CPU backend the repository context stops at 16K tokens unless the setting asks for more', () => {
  const reserve = 2048 + 128 + 64;
  assert.equal(completionBudget(DEFAULT_SETTINGS, 'auto', 131072, 'repo', 'cpu').repositoryTokens, 16384 - reserve);
  assert.equal(completionBudget(DEFAULT_SETTINGS, 'auto', 131072, 'repo', 'cuda').repositoryTokens, 131072 - reserve);
  assert.equal(completionBudget(DEFAULT_SETTINGS, 'auto', 131072, 'repo', 'webgpu').repositoryTokens, 131072 - reserve);
  // A model shorter than the cap keeps its own length; a number in the setting goes past the cap.
  assert.equal(completionBudget(DEFAULT_SETTINGS, 'auto', 8192, 'repo', 'cpu').repositoryTokens, 8192 - reserve);
  const asked = { ...DEFAULT_SETTINGS, context: { ...DEFAULT_SETTINGS.context, maxTokens: 65536 } };
  assert.equal(completionBudget(asked, 'auto', 131072, 'repo', 'cpu').repositoryTokens, 65536 - reserve);
});

test('the mode setting falls back to auto when it is not one of the three', () => {
  assert.equal(readCompletionMode('single-line'), 'single-line');
  assert.equal(readCompletionMode('multi-line'), 'multi-line');
  assert.equal(readCompletionMode('lines'), 'auto');
  assert.equal(readCompletionMode(undefined), 'auto');
});
