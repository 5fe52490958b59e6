// The repository budget of a completion: the active file (left out of the prompt) does not
// take room from the other files, the result never exceeds the budget, and the budget asked
// for moves only in steps while the active file grows.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ACTIVE_FILE_STEP_TOKENS, fitRepository } from '../../../src/completion/repositoryFit';

// A repository like the context layer's: the active file is taken first, then the others in
// order while they fit; the active file itself is left out of what is returned.
function repository(activeTokens: number, others: number[]) {
  const asked: number[] = [];
  const snapshot = async (budget: number) => {
    asked.push(budget);
    let remaining = budget;
    if (activeTokens <= remaining) remaining -= activeTokens;
    const files: number[] = [];
    for (const tokens of others) {
      if (tokens <= remaining) {
        files.push(tokens);
        remaining -= tokens;
      }
    }
    return { files, tokens: files.reduce((a, b) => a + b, 0) };
  };
  return { snapshot, asked };
}

test('the other files get the whole budget, not what is left after the active file', async () => {
  const { snapshot } = repository(1000, [400, 400, 400, 400]);
  assert.equal((await snapshot(1600)).tokens, 400, 'without the fit the active file takes most of the budget');
  // 1000 tokens estimated, rounded down to 768: three of the four files fit, against one.
  assert.equal((await fitRepository(1600, 1000, snapshot)).tokens, 1200);
  assert.equal((await fitRepository(1600, 1024, repository(1000, [400, 400, 400, 400]).snapshot)).tokens, 1600);
});

test('an overestimate of the active file never pushes the result over the budget', async () => {
  let seed = 3;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  for (let round = 0; round < 300; round++) {
    const active = Math.floor(random() * 3000);
    const others = Array.from({ length: 1 + Math.floor(random() * 12) }, () => 1 + Math.floor(random() * 900));
    const budget = Math.floor(random() * 5000);
    const estimate = Math.floor(active * (0.5 + random() * 1.5));
    const { snapshot, asked } = repository(active, others);
    const fitted = await fitRepository(budget, estimate, snapshot);
    assert.ok(fitted.tokens <= budget, `round ${round}: ${fitted.tokens} > ${budget}`);
    assert.ok(asked.length <= 4);
    for (const value of asked) assert.equal((value - budget) % ACTIVE_FILE_STEP_TOKENS, 0, 'asked budgets move in steps');
  }
});

test('while the active file grows by a few tokens the budget asked for stays the same', async () => {
  const budgets = new Set<number>();
  for (let estimate = 1030; estimate < 1030 + 200; estimate += 3) {
    const { snapshot, asked } = repository(estimate, [300, 300, 300]);
    await fitRepository(900, estimate, snapshot);
    budgets.add(asked[0]);
  }
  assert.equal(budgets.size, 1);
});
