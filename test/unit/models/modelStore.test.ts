// The progress and catalogue text the picker shows.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CATALOGUE, catalogueFacts } from '../../../src/core/models/catalogue';
import { formatBytes } from '../../../src/core/models/modelShape';
import { catalogueDescription, formatDuration, progressMessage } from '../../../src/core/models/modelStore';

test('progress reads bytes of total, speed and time left', () => {
  assert.equal(
    progressMessage({ file: 'model.safetensors', receivedBytes: 1.25e9, totalBytes: 3.1e9, bytesPerSecond: 25e6, etaSeconds: 74 }),
    'model.safetensors: 1.3 GB of 3.1 GB, 25.0 MB/s, 1 min left',
  );
  assert.equal(
    progressMessage({ file: 'config.json', receivedBytes: 0, totalBytes: 659, bytesPerSecond: 0, etaSeconds: undefined }),
    'config.json: 0 B of 659 B',
  );
  assert.equal(progressMessage({ file: 'a', receivedBytes: 10, totalBytes: 10, bytesPerSecond: 5, etaSeconds: 0 }), 'a: 10 B of 10 B, 5 B/s');
  assert.deepEqual([0.2, 59, 61, 3599, 3600, 7260].map(formatDuration), ['1 s', '59 s', '1 min', '60 min', '1 h 0 min', '2 h 1 min']);
  assert.deepEqual([999, 1000, 15_230_000_000, 123_456_789].map(formatBytes), ['999 B', '1.0 KB', '15.2 GB', '123 MB']);
});

test('catalogue entries say downloaded, partly downloaded or the download size, and the memory needed', () => {
  const model = CATALOGUE.find((m) => m.id === 'qwen2.5-coder-7b-instruct')!;
  const facts = catalogueFacts(model, 8192);
  assert.equal(catalogueDescription(model, facts, 'absent'), `7.62B · 15.2 GB download · needs ~${formatBytes(facts.memory.totalBytes)} at 8192 tokens`);
  assert.match(catalogueDescription(model, facts, 'partial', 2e9), /^7\.62B · 2\.0 GB of 15\.2 GB downloaded, resumes · /);
  assert.match(catalogueDescription(model, facts, 'downloaded'), /^7\.62B · downloaded · needs ~\d/);
  // 7B at 8k: 15.2 GB weights + 8192 x 28 layers x 2 x 4 heads x 128 x 4 B x 17/16 = 998 MB of KV.
  assert.equal(formatBytes(facts.memory.kvBytes), '998 MB');
});

test('with the room where the model would run, entries say whether it fits and which one is recommended', () => {
  const model = CATALOGUE.find((m) => m.id === 'qwen2.5-coder-7b-instruct')!;
  const facts = catalogueFacts(model, 8192, 'bf16');
  const need = formatBytes(facts.memory.totalBytes);
  assert.equal(
    catalogueDescription(model, facts, 'absent', 0, { freeBytes: 80e9, where: 'GPU', recommended: true }),
    `Recommended for this machine · 7.62B · 15.2 GB download · needs ~${need} at 8192 tokens (bf16 KV cache) · fits the 80.0 GB free on the GPU`,
  );
  assert.equal(
    catalogueDescription(model, catalogueFacts(model, 8192), 'downloaded', 0, { freeBytes: 12e9, where: 'memory', recommended: false }),
    `7.62B · downloaded · needs ~${formatBytes(catalogueFacts(model, 8192).memory.totalBytes)} at 8192 tokens (f32 KV cache) · more than the 12.0 GB of free memory`,
  );
  // On a GPU where only the FP8 KV cache lets it fit, the entry says so and names the setting.
  const long = catalogueFacts(model, 32768, 'bf16');
  const fp8 = catalogueFacts(model, 32768, 'fp8').memory;
  const room = (long.memory.totalBytes + fp8.totalBytes) / 2 / 0.9;
  assert.match(
    catalogueDescription(model, long, 'absent', 0, { freeBytes: room, where: 'GPU', recommended: false, withFp8: fp8 }),
    new RegExp(` · more than the .* free on the GPU · fits with an FP8 KV cache \\(~${formatBytes(fp8.totalBytes)}; tidal\\.engine\\.kvCache\\)$`),
  );
  // Where bf16 fits, nothing more is said.
  assert.doesNotMatch(catalogueDescription(model, long, 'absent', 0, { freeBytes: 80e9, where: 'GPU', recommended: false, withFp8: fp8 }), /FP8/);
});
