import assert from 'node:assert/strict';
import { test } from 'node:test';

import { explainKvCap } from '../../../src/core/backend/localBackend';

test('an engine error about the KV cache cap names tidal.engine.maxKvMemoryGB; other errors stay as they are', () => {
  const cuda = 'the KV cache needs 9.0 GiB for 70000 positions, over the max_kv_bytes cap of 8.0 GiB; raise the cap or use a shorter context';
  assert.match(explainKvCap(cuda), /^the KV cache needs .* tidal\.engine\.maxKvMemoryGB: raise it/);
  const cpu = 'KV cache page of 65536 bytes would exceed the KV memory cap of 1048576 bytes (1048576 in use); release or trim sequences, or raise max_kv_bytes';
  assert.match(explainKvCap(cpu), /tidal\.engine\.maxKvMemoryGB/);
  assert.equal(explainKvCap(explainKvCap(cpu)), explainKvCap(cpu), 'named once');
  assert.equal(explainKvCap('context too long'), 'context too long');
});
