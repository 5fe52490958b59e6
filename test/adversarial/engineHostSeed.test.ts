// Sampling at temperature 1 without a seed must be random (Regenerate gives another answer), and
// the seed it drew comes back in the result; a given seed reproduces the same text.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { generateRequest, type GenerateParams } from '../../src/core/protocol/protocol';
import { loadEmbeddedModel, startHost } from './hostFixture';

const prompt = '<|file_sep|>src/names.py\n# A list of names for the examples below.\nNAMES = [\n';

test('cause 7: temperature 1 without a seed draws a fresh seed per request and reports it; a given seed repeats', { timeout: 90_000 }, async () => {
  const host = startHost();
  try {
    const { connection } = host;
    await loadEmbeddedModel(connection);
    const request = (requestId: string, sampling: GenerateParams['sampling']) =>
      connection.sendRequest(generateRequest, { requestId, kind: 'raw', prompt, maxTokens: 24, sampling });

    const unseeded = [];
    for (let index = 0; index < 3; index++) unseeded.push(await request(`free-${index}`, { temperature: 1 }));
    const seeds = unseeded.map((result) => result.seed);
    for (const seed of seeds) assert.ok(Number.isSafeInteger(seed) && seed! >= 0, `seed ${seed}`);
    assert.equal(new Set(seeds).size, seeds.length, `the same seed twice: ${seeds.join(', ')}`);
    assert.ok(new Set(unseeded.map((result) => result.text)).size > 1, `three unseeded samples gave the same text: ${JSON.stringify(unseeded[0].text)}`);

    // A reported seed, sent back, reproduces its text; so does any fixed seed.
    const replay = await request('replay', { temperature: 1, seed: seeds[0] });
    assert.equal(replay.text, unseeded[0].text);
    assert.equal(replay.seed, seeds[0]);
    const first = await request('fixed-1', { temperature: 1, seed: 1234 });
    const second = await request('fixed-2', { temperature: 1, seed: 1234 });
    assert.equal(first.text, second.text);
    assert.equal(first.seed, 1234);

    // Greedy decoding has no seed to report.
    const greedy = await request('greedy', { temperature: 0 });
    assert.equal(greedy.seed, undefined);
  } finally {
    await host.stop();
  }
});
