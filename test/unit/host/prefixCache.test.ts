// PrefixCache against a recording stand-in engine: which tokens get trimmed, compacted and
// prefilled, how slots are chosen, how generation on a slot is trimmed back, and how a
// cancelled prefill leaves the cache consistent. planReuse is checked on random layouts
// against a brute-force reading of what a compaction keeps.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  commonPrefixLength,
  planReuse,
  PrefixCache,
  SPARSE_PREFILL_MAX_TOKENS,
  SPARSE_PREFILL_MIN_BUDGETS,
  type PromptBlock,
  type PromptLayout,
} from '../../../src/host/prefixCache';
import { RecordingEngine } from './recordingEngine';

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

// A repository layout: a header, then one block per file (each file's tokens distinct).
function layoutOf(header: number[], files: { key: string; tokens: number[] }[], tail: number[] = []): PromptLayout {
  const tokens = [...header];
  const blocks: PromptBlock[] = [];
  for (const file of files) {
    blocks.push({ key: file.key, start: tokens.length, length: file.tokens.length });
    tokens.push(...file.tokens);
  }
  tokens.push(...tail);
  return { tokens: Int32Array.from(tokens), blocks };
}

test('only the tokens after the longest common prefix are prefilled; a request generates on the slot, which is trimmed back after', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine);
  const prompt = range(0, 100);
  const first = await cache.prepare(prompt);
  assert.deepEqual([first.reusedTokens, first.recomputedTokens, first.lastTokens], [0, 100, [99]]);
  assert.deepEqual(engine.sequences.get(first.sequence), range(0, 99));
  engine.generateOn(first.sequence, first.lastTokens, [500, 501, 502]);
  await cache.finish(first.sequence, prompt);
  assert.deepEqual(engine.sequences.get(first.sequence), prompt, 'the generated tokens are trimmed away, the prompt stays');

  const edited = [...range(0, 90), 7, 8, 9];
  const second = await cache.prepare(edited);
  assert.equal(second.sequence, first.sequence, 'no fork: the same slot');
  assert.deepEqual([second.reusedTokens, second.recomputedTokens], [90, 3]);
  assert.deepEqual(engine.calls.slice(-2), ['trim 1 90', 'prefill 1 2']);
  assert.ok(!engine.calls.some((call) => call.startsWith('fork')), 'no KV is copied per request');
  await cache.finish(second.sequence, edited);
  assert.equal(commonPrefixLength(edited, engine.sequences.get(second.sequence)!), 92, 'the last token was never computed: nothing to keep');
});

test('unrelated prompts get their own slot; with every slot taken the least recently used one is replaced', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine, 2);
  await cache.prepare(range(0, 50)); // slot A
  await cache.prepare(range(1000, 1040)); // slot B
  assert.equal((await cache.prepare(range(0, 51))).reusedTokens, 49);
  assert.equal((await cache.prepare(range(1000, 1041))).reusedTokens, 39);
  // A third kind of prompt evicts the least recently used (A).
  assert.equal((await cache.prepare(range(2000, 2030))).reusedTokens, 0);
  assert.equal((await cache.prepare(range(1000, 1041))).reusedTokens, 40);
  assert.equal((await cache.prepare(range(0, 51))).reusedTokens, 0);
  assert.equal(cache.stats().slots, 2);
});

test('a prompt that shares the prefix but would cut a long tail forks a second slot once; both tails stay warm', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine, 2);
  const repository = range(0, 1000);
  const completion = [...repository, ...range(5000, 5200)];
  const chat = [...repository, ...range(7000, 7300)];
  const a = await cache.prepare(completion);
  engine.generateOn(a.sequence, a.lastTokens, [77, 78]);
  await cache.finish(a.sequence, completion);
  const b = await cache.prepare(chat);
  assert.notEqual(b.sequence, a.sequence);
  assert.equal(b.reusedTokens, 1000);
  assert.ok(engine.calls.includes(`fork ${a.sequence} 1000`));
  engine.generateOn(b.sequence, b.lastTokens, [77]);
  await cache.finish(b.sequence, chat);
  // Alternating keeps both: each comes back to its own slot with everything reused.
  assert.equal((await cache.prepare([...completion, 1])).reusedTokens, completion.length);
  assert.equal((await cache.prepare([...chat, 1])).reusedTokens, chat.length);
  assert.equal(cache.stats().forks, 1);
});

test('a changed block in the middle: with shifted reuse the later blocks are compacted down instead of recomputed', async () => {
  const files = Array.from({ length: 6 }, (_, i) => ({ key: `f${i}`, tokens: range(100 * (i + 1), 100 * (i + 1) + 50 + i * 7) }));
  const header = [1, 2, 3];
  const before = layoutOf(header, files, [9, 9, 9]);
  // File 2 is saved: it moves to the end with new tokens.
  const saved = { key: 'f2b', tokens: range(9000, 9070) };
  const after = layoutOf(header, [files[0], files[1], files[3], files[4], files[5], saved], [9, 9, 9]);

  for (const reuseShifted of [false, true]) {
    const engine = new RecordingEngine();
    const cache = new PrefixCache(engine);
    const first = await cache.prepare(before, { reuseShifted });
    await cache.finish(first.sequence, before);
    const second = await cache.prepare(after, { reuseShifted });
    const exactPrefix = after.blocks[2].start; // header + f0 + f1
    if (!reuseShifted) {
      assert.equal(second.reusedTokens, exactPrefix);
      assert.equal(second.shiftedTokens, 0);
      continue;
    }
    const moved = files[3].tokens.length + files[4].tokens.length + files[5].tokens.length;
    assert.equal(second.reusedTokens, exactPrefix + moved);
    assert.equal(second.shiftedTokens, moved);
    assert.equal(second.recomputedTokens, saved.tokens.length + 3);
    const compact = engine.calls.find((call) => call.startsWith('compact'));
    assert.deepEqual(JSON.parse(compact!.split(' ').slice(2).join(' ')), [
      [0, exactPrefix],
      [before.blocks[3].start, moved],
    ]);
    // The slot now holds the new prompt minus its last token, in order.
    assert.deepEqual(engine.sequences.get(second.sequence), Array.from(after.tokens.slice(0, -1)));
  }
});

test('planReuse on random layouts: what a compaction keeps is the new prompt, token for token', () => {
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  for (let trial = 0; trial < 300; trial++) {
    const count = 1 + Math.floor(random() * 8);
    const files = Array.from({ length: count }, (_, i) => ({
      key: `f${i}`,
      tokens: Array.from({ length: 1 + Math.floor(random() * 60) }, () => Math.floor(random() * 50)),
    }));
    const header = random() < 0.5 ? [] : [999];
    const old = layoutOf(header, files, random() < 0.5 ? [7, 7] : []);
    // New layout: some files removed, one maybe changed, some appended, same relative order.
    const kept = files.filter(() => random() < 0.7).map((file) => (random() < 0.15 ? { key: `${file.key}x`, tokens: [...file.tokens, 3] } : file));
    if (random() < 0.5) kept.push({ key: 'new', tokens: [1, 2, 3, 4] });
    const fresh = layoutOf(header, kept, [8]);
    const plan = planReuse(old.tokens, old.blocks, fresh, fresh.tokens.length - 1, true);
    const oldTokens = Array.from(old.tokens);
    const held = plan.ranges ? plan.ranges.flatMap(([start, length]) => oldTokens.slice(start, start + length)) : oldTokens.slice(0, plan.exact);
    assert.ok(plan.kept <= fresh.tokens.length - 1);
    assert.deepEqual(held.slice(0, plan.kept), Array.from(fresh.tokens.slice(0, plan.kept)), `trial ${trial}`);
    assert.ok(plan.kept >= plan.exact);
    if (plan.ranges) {
      for (let i = 1; i < plan.ranges.length; i++)
        assert.ok(plan.ranges[i][0] >= plan.ranges[i - 1][0] + plan.ranges[i - 1][1], 'ranges ascend without overlap');
    }
  }
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

test('a warm-up holds every token; shrink keeps only the most recently used slot', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine, 2);
  const warm = await cache.prepare(range(0, 64), { holdAll: true });
  assert.deepEqual(warm.lastTokens, []);
  assert.deepEqual(engine.sequences.get(warm.sequence), range(0, 64));
  await cache.prepare(range(3000, 3050));
  assert.equal(cache.stats().slots, 2);
  assert.equal(await cache.shrink(), 1);
  assert.deepEqual(cache.cachedPrompts(), [range(3000, 3049)]);
});

test('with both slots holding the repository, a new kind of prompt takes the least recently used one, so the recent tail survives', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine, 2);
  const repository = range(0, 1000);
  const run = async (prompt: number[]) => {
    const prepared = await cache.prepare(prompt);
    engine.generateOn(prepared.sequence, prepared.lastTokens, [1]);
    await cache.finish(prepared.sequence, prompt);
    return prepared;
  };
  await run([...repository, ...range(5000, 5200)]); // completion in file A
  await run([...repository, ...range(7000, 7300)]); // a chat: forks the second slot
  const completionB = [...repository, ...range(6000, 6200)];
  await run(completionB); // a completion in file B: takes the least recently used slot (A's)
  const chat = [...repository, ...range(7000, 7300), 42];
  assert.equal((await run(chat)).reusedTokens, chat.length - 1, 'the chat slot was left alone');
  assert.equal((await run([...completionB, 9])).reusedTokens, completionB.length, "B's window survived the chat");
});

test('finish with keepAtMost keeps no more of the prompt than that (a sparse last entry is not reused)', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine);
  const prompt = range(0, 60);
  const first = await cache.prepare(prompt);
  engine.generateOn(first.sequence, first.lastTokens, [700, 701]);
  await cache.finish(first.sequence, prompt, prompt.length - 1);
  assert.deepEqual(engine.sequences.get(first.sequence), range(0, 59));
  // The next request with the same prompt recomputes only that last token.
  const again = await cache.prepare(prompt);
  assert.deepEqual([again.reusedTokens, again.recomputedTokens, again.lastTokens], [59, 1, [59]]);
});

test('a sparse prefill runs only for a keystroke-sized recompute after a long reuse, and its entries are not kept', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine);
  const attention = { mode: 'tidal' as const, tokenBudget: 256, sparsePrefill: true };
  const repository = range(0, SPARSE_PREFILL_MIN_BUDGETS * 256 + 100);
  // Cold: the whole prompt is recomputed, densely.
  const cold = [...repository, ...range(90_000, 90_300)];
  const first = await cache.prepare(cold, { attention });
  assert.equal(first.sparseFrom, undefined);
  assert.equal(engine.calls.at(-1), `prefill ${first.sequence} ${cold.length - 1}`);
  await cache.finish(first.sequence, cold, first.sparseFrom);
  // A keystroke: 300 tokens after the repository change; they run sparse.
  const typed = [...repository, ...range(91_000, 91_300)];
  const second = await cache.prepare(typed, { attention });
  assert.deepEqual([second.reusedTokens, second.sparseFrom], [repository.length, repository.length]);
  assert.equal(engine.calls.at(-1), `prefill ${second.sequence} 299 sparse`);
  engine.generateOn(second.sequence, second.lastTokens, [5, 6]);
  await cache.finish(second.sequence, typed, second.sparseFrom);
  assert.deepEqual(engine.sequences.get(second.sequence), repository, 'the sparse entries are trimmed away');
  // The same prompt again recomputes them (sparse again); with full attention, densely.
  const again = await cache.prepare(typed, { attention });
  assert.equal(again.reusedTokens, repository.length);
  assert.equal(engine.calls.at(-1), `prefill ${again.sequence} 299 sparse`);
  await cache.finish(again.sequence, typed, again.sparseFrom);
  const dense = await cache.prepare(typed, { attention: { ...attention, mode: 'full' } });
  assert.equal(dense.sparseFrom, undefined);
  assert.equal(engine.calls.at(-1), `prefill ${dense.sequence} 299`);
  await cache.finish(dense.sequence, typed);
  // A context of fewer than SPARSE_PREFILL_MIN_BUDGETS budgets: dense.
  const wide = await cache.prepare([...repository, ...range(93_000, 93_100)], { attention: { ...attention, tokenBudget: repository.length } });
  assert.equal(wide.sparseFrom, undefined);
  assert.equal(engine.calls.at(-1), `prefill ${wide.sequence} 99`);
  // More than SPARSE_PREFILL_MAX_TOKENS recomputed: dense.
  const long = [...repository, ...range(92_000, 92_000 + SPARSE_PREFILL_MAX_TOKENS + 2)];
  const third = await cache.prepare(long, { attention });
  assert.equal(third.sparseFrom, undefined);
  assert.equal(engine.calls.at(-1), `prefill ${third.sequence} ${SPARSE_PREFILL_MAX_TOKENS + 1}`);
});

test('a prefill with a progress listener runs in parts of whole passes and reports each; a short one runs in one call and is not reported', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine);
  const heard: [number, number][] = [];
  // 999 tokens to compute; parts of 300 tokens rounded up to passes of 64: 320.
  const first = await cache.prepare(range(0, 1000), { chunk: 64, progressTokens: 300, onProgress: (done, total) => heard.push([done, total]) });
  assert.deepEqual(
    engine.calls.filter((call) => call.startsWith('prefill')),
    ['prefill 1 320', 'prefill 1 320', 'prefill 1 320', 'prefill 1 39'],
  );
  assert.deepEqual(heard, [
    [320, 999],
    [640, 999],
    [960, 999],
    [999, 999],
  ]);
  assert.deepEqual(engine.sequences.get(first.sequence), range(0, 999));
  await cache.finish(first.sequence, range(0, 1000));

  // 639 more tokens (999 are held): less than two parts of 320, so one prefill and nothing reported.
  heard.length = 0;
  const calls = engine.calls.length;
  await cache.prepare(range(0, 1639), { chunk: 64, progressTokens: 300, onProgress: (done, total) => heard.push([done, total]) });
  assert.deepEqual(engine.calls.slice(calls), ['prefill 1 639']);
  assert.deepEqual(heard, []);

  // Without a listener a long prefill is one call.
  const fresh = new RecordingEngine();
  await new PrefixCache(fresh).prepare(range(0, 5000), { chunk: 64, progressTokens: 300 });
  assert.deepEqual(
    fresh.calls.filter((call) => call.startsWith('prefill')),
    ['prefill 1 4999'],
  );
});

test('a request cancelled between parts of its prefill keeps the parts done, and the next prompt reuses them', async () => {
  const engine = new RecordingEngine();
  const cache = new PrefixCache(engine);
  let cancelled = false;
  const cancel = {
    cancel: () => (cancelled = true),
    get cancelled() {
      return cancelled;
    },
  };
  const throwing = () => {
    throw new Error('a listener that fails');
  };
  await assert.rejects(
    cache.prepare(range(0, 2000), {
      chunk: 100,
      progressTokens: 500,
      cancel,
      onProgress: (done) => {
        if (done >= 1000) cancel.cancel();
        throwing();
      },
    }),
    /cancelled/,
  );
  const slot = [...engine.sequences.values()][0];
  assert.deepEqual(slot, range(0, 1000), 'the two parts before the cancel stay in the slot');
  const again = await cache.prepare(range(0, 2000));
  assert.equal(again.reusedTokens, 1000);
  assert.deepEqual(engine.sequences.get(again.sequence), range(0, 1999));
});
