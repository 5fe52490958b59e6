// PrefixCache against a recording stand-in engine: which tokens get trimmed, prefilled and
// forked, how slots are chosen, and how a cancelled prefill leaves the cache consistent.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { commonPrefixLength, PrefixCache, PrefixEngine } from '../../../src/engine/prefixCache';

class RecordingEngine implements PrefixEngine {
  readonly sequences = new Map<number, number[]>();
  readonly calls: string[] = [];
  failNextPrefillAfter: number | undefined; // keep this many tokens, then reject
  private next = 1;

  async createSequence() {
    this.sequences.set(this.next, []);
    return this.next++;
  }
  async forkSequence(source: number, length?: number) {
    const tokens = this.sequences.get(source)!.slice(0, length);
    this.calls.push(`fork ${source} ${tokens.length}`);
    this.sequences.set(this.next, tokens);
    return this.next++;
  }
  async trimSequence(sequence: number, length: number) {
    this.calls.push(`trim ${sequence} ${length}`);
    this.sequences.set(sequence, this.sequences.get(sequence)!.slice(0, length));
  }
  async releaseSequence(sequence: number) {
    this.sequences.delete(sequence);
  }
  async sequenceTokens(sequence: number) {
    return Int32Array.from(this.sequences.get(sequence)!);
  }
  async prefill(sequence: number, tokens: ArrayLike<number>) {
    const list = Array.from(tokens);
    if (this.failNextPrefillAfter !== undefined) {
      this.sequences.get(sequence)!.push(...list.slice(0, this.failNextPrefillAfter));
      this.failNextPrefillAfter = undefined;
      throw Object.assign(new Error('cancelled'), { code: 'ERR_TIDAL_CANCELLED' });
    }
    this.calls.push(`prefill ${sequence} ${list.length}`);
    this.sequences.get(sequence)!.push(...list);
    return new Float32Array(0);
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

test('only the tokens after the longest common prefix are prefilled; the fork holds the prompt minus its last token', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine);
  const first = await cache.prepare(range(0, 100));
  assert.deepEqual([first.reusedTokens, first.recomputedTokens, first.lastTokens], [0, 100, [99]]);
  assert.deepEqual(engine.sequences.get(first.sequence), range(0, 99));

  const edited = [...range(0, 90), 7, 8, 9];
  const second = await cache.prepare(edited);
  assert.deepEqual([second.reusedTokens, second.recomputedTokens], [90, 3]);
  assert.deepEqual(engine.calls.slice(-3), ['trim 1 90', 'prefill 1 2', 'fork 1 92']);
  assert.equal(commonPrefixLength(edited, engine.sequences.get(second.sequence)!), 92);

  const appended = [...edited, 10, 11];
  const third = await cache.prepare(appended);
  assert.deepEqual([third.reusedTokens, third.recomputedTokens], [92, 3]);
  assert.deepEqual(cache.stats(), {
    slots: 1, cachedTokens: 94, requests: 3, tokensReused: 182, tokensRecomputed: 106, last: { reusedTokens: 92, recomputedTokens: 3 },
  });
});

test('unrelated prompts get their own slot; with every slot taken the least recently used one is replaced', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine, 2);
  await cache.prepare(range(0, 50));      // slot A
  await cache.prepare(range(1000, 1040)); // slot B
  // Each slot holds its last prompt minus the final token.
  assert.equal((await cache.prepare(range(0, 51))).reusedTokens, 49);
  assert.equal((await cache.prepare(range(1000, 1041))).reusedTokens, 39);
  // A third kind of prompt evicts the least recently used (A).
  assert.equal((await cache.prepare(range(2000, 2030))).reusedTokens, 0);
  assert.equal((await cache.prepare(range(1000, 1041))).reusedTokens, 40);
  assert.equal((await cache.prepare(range(0, 51))).reusedTokens, 0);
  assert.equal(cache.stats().slots, 2);
});

test('a prefill that fails part-way leaves the cache matching what the engine holds', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine);
  await cache.prepare(range(0, 20));
  engine.failNextPrefillAfter = 5;
  await assert.rejects(cache.prepare(range(0, 60)), /cancelled/);
  assert.deepEqual(cache.cachedPrompts(), [range(0, 24)]);
  const retry = await cache.prepare(range(0, 60));
  assert.equal(retry.reusedTokens, 24);
  await cache.clear();
  assert.equal(cache.stats().slots, 0);
});
