// The completion cache against a brute-force reference (a list of every entry, newest last,
// trimmed to capacity), under random operations; and typing into a cached suggestion.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CompletionCache } from '../../../src/core/completion/completionCache';

test('random set/get sequences agree with a reference LRU', () => {
  let seed = 11;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const capacity = 5;
  const cache = new CompletionCache({ maxEntries: capacity, maxTypedAhead: 0 });
  const reference: { key: string; value: string }[] = [];
  const keyOf = (doc: string, prefix: string, suffix: string) => `${doc}|${prefix}|${suffix}`;
  for (let step = 0; step < 2000; step++) {
    const doc = `file${Math.floor(random() * 2)}`;
    const prefix = `p${Math.floor(random() * 6)}`;
    const suffix = `s${Math.floor(random() * 2)}`;
    const key = keyOf(doc, prefix, suffix);
    if (random() < 0.5) {
      const value = `v${step}`;
      cache.set({ documentKey: doc, prefix, suffix }, value);
      const at = reference.findIndex((entry) => entry.key === key);
      if (at >= 0) reference.splice(at, 1);
      reference.push({ key, value });
      if (reference.length > capacity) reference.shift();
    } else {
      const at = reference.findIndex((entry) => entry.key === key);
      const expected = at >= 0 ? reference[at].value : undefined;
      if (at >= 0) reference.push(...reference.splice(at, 1));
      assert.equal(cache.get({ documentKey: doc, prefix, suffix }), expected, `step ${step}`);
    }
    assert.equal(cache.size, reference.length);
  }
});

test('keys use the end of the prefix and the start of the suffix, per document', () => {
  const cache = new CompletionCache({ prefixTailChars: 4, suffixHeadChars: 3 });
  cache.set({ documentKey: 'a', prefix: 'xxxx1234', suffix: 'abcdef' }, 'done');
  assert.equal(cache.get({ documentKey: 'a', prefix: 'yyyy1234', suffix: 'abcXYZ' }), 'done', 'only the tail and head count');
  assert.equal(cache.get({ documentKey: 'b', prefix: 'xxxx1234', suffix: 'abcdef' }), undefined);
  assert.equal(cache.get({ documentKey: 'a', prefix: 'xxxx1235', suffix: 'abcdef' }), undefined);
  cache.clear('a');
  assert.equal(cache.size, 0);
});

test('typing the start of a cached suggestion answers with the rest of it', () => {
  const cache = new CompletionCache();
  const parts = { documentKey: 'd', prefix: 'const total = ', suffix: '\n' };
  cache.set(parts, 'add(1, 2);');
  assert.equal(cache.get({ ...parts, prefix: 'const total = ad' }), 'd(1, 2);');
  assert.equal(cache.get({ ...parts, prefix: 'const total = add(1, 2);' }), undefined, 'the whole suggestion typed: nothing left');
  assert.equal(cache.get({ ...parts, prefix: 'const total = x' }), undefined, 'typed something else');
  // An empty completion is remembered too (no second request for the same place).
  cache.set({ ...parts, prefix: 'let y' }, '');
  assert.equal(cache.get({ ...parts, prefix: 'let y' }), '');
  assert.throws(() => new CompletionCache({ maxEntries: 0 }), /room for one entry/);
});
