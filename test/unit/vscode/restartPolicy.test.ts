import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RestartPolicy } from '../../../src/vscode/restartPolicy';

test('delays double per crash up to the cap, then restarting stops', () => {
  const policy = new RestartPolicy(4, 60_000, 100, 500);
  const delays = [0, 1000, 2000, 3000].map((t) => policy.onCrash(t));
  assert.deepEqual(
    delays.map((d) => d.restart),
    [true, true, true, true],
  );
  assert.deepEqual(
    delays.map((d) => d.delayMs),
    [100, 200, 400, 500],
  );
  const fifth = policy.onCrash(4000);
  assert.equal(fifth.restart, false);
  assert.match(fifth.reason, /crashed 5 times/);
});

test('crashes older than the window are forgotten; reset clears everything', () => {
  const policy = new RestartPolicy(2, 10_000, 100, 10_000);
  policy.onCrash(0);
  policy.onCrash(1_000);
  assert.equal(policy.onCrash(20_000).delayMs, 100);
  policy.onCrash(21_000);
  assert.equal(policy.onCrash(22_000).restart, false);
  policy.reset();
  assert.equal(policy.onCrash(23_000).restart, true);
});
