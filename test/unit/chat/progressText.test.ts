// How a request's prefill progress reads in the chat panel.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { prefillProgressText } from '../../../src/core/progress/progressText';

test('prefill progress: counts with separators, the time left while tokens remain, none when unknown or done', () => {
  assert.equal(prefillProgressText({ done: 6000, total: 14_239, etaMs: 3400 }), 'Reading the context: 6,000 of 14,239 tokens, 3 s left');
  assert.equal(prefillProgressText({ done: 1024, total: 99_000, etaMs: 150_000 }), 'Reading the context: 1,024 of 99,000 tokens, 3 min left');
  assert.equal(prefillProgressText({ done: 1024, total: 4096 }), 'Reading the context: 1,024 of 4,096 tokens');
  assert.equal(prefillProgressText({ done: 4096, total: 4096, etaMs: 0 }), 'Reading the context: 4,096 of 4,096 tokens');
  assert.equal(prefillProgressText({ done: 10, total: 20, etaMs: Number.NaN }), 'Reading the context: 10 of 20 tokens');
});
