// A steady stream of inline completions must not starve a chat request: completions go first,
// but a request that has waited long enough runs next. The queue's clock is a plain number the
// test moves, so no test sleeps and every run sees the same order.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PRIORITY_BACKGROUND, PRIORITY_CHAT, PRIORITY_COMPLETION, RequestQueue } from '../../src/host/requestQueue';
import type { CancelToken } from '../../src/native/addon';

class FlagToken implements CancelToken {
  cancelled = false;
  cancel(): void {
    this.cancelled = true;
  }
}

/** Jobs that run until the test finishes them, recording the order they start in. */
function manualJobs() {
  const started: string[] = [];
  const finishers = new Map<string, () => void>();
  const job = (id: string, priority: number, group?: string) => ({
    id,
    priority,
    group,
    run: () =>
      new Promise<string>((resolve) => {
        started.push(id);
        finishers.set(id, () => resolve(id));
      }),
  });
  const finish = async (id: string) => {
    finishers.get(id)!();
    // Let the queue see the job end and start the next one (promise callbacks only).
    for (let turn = 0; turn < 5; turn++) await Promise.resolve();
  };
  return { started, job, finish };
}

test('cause 5: a chat request behind a stream of completions runs once it has waited 2 s', async () => {
  let now = 0;
  const queue = new RequestQueue(() => new FlagToken(), { now: () => now });
  const { started, job, finish } = manualJobs();
  const done: Promise<string>[] = [queue.enqueue(job('completion-0', PRIORITY_COMPLETION, 'a'))];
  done.push(queue.enqueue(job('chat', PRIORITY_CHAT)));
  done.push(queue.enqueue(job('warm-up', PRIORITY_BACKGROUND)));
  // Every 400 ms a new completion (another editor, so nothing supersedes) arrives and the running
  // one ends: completions keep arriving faster than they are served one at a time.
  for (let index = 1; index <= 8; index++) {
    now += 400;
    done.push(queue.enqueue(job(`completion-${index}`, PRIORITY_COMPLETION, `client-${index}`)));
    await finish(started.at(-1)!);
  }
  // At 400 … 1600 ms the chat had waited less than 2 s: completions went first. At 2000 ms it
  // had waited 2 s and ran next; the completions then resumed in their order.
  assert.deepEqual(started.slice(0, 7), ['completion-0', 'completion-1', 'completion-2', 'completion-3', 'completion-4', 'chat', 'completion-5']);
  // Background work does not age: it runs when no request waits.
  for (let index = 0; index < 10 && started.length < 11; index++) await finish(started.at(-1)!);
  assert.equal(started.at(-1), 'warm-up');
  await finish('warm-up');
  assert.equal((await Promise.all(done)).length, 11);
});

test('cause 5: completions still run first while the chat request has waited less than 2 s', async () => {
  let now = 0;
  const queue = new RequestQueue(() => new FlagToken(), { now: () => now });
  const { started, job, finish } = manualJobs();
  const done = [queue.enqueue(job('running', PRIORITY_CHAT)), queue.enqueue(job('chat', PRIORITY_CHAT)), queue.enqueue(job('completion', PRIORITY_COMPLETION))];
  now += 1_999;
  await finish('running');
  assert.equal(started.at(-1), 'completion');
  now += 5_000;
  await finish('completion');
  await finish('chat');
  assert.deepEqual(started, ['running', 'completion', 'chat']);
  await Promise.all(done);
});

test('cause 5: two requests that both waited past the limit run in arrival order, whatever their priority', async () => {
  let now = 0;
  const queue = new RequestQueue(() => new FlagToken(), { now: () => now, agingMs: 1_000 });
  const { started, job, finish } = manualJobs();
  const done = [queue.enqueue(job('running', PRIORITY_COMPLETION))];
  done.push(queue.enqueue(job('chat', PRIORITY_CHAT)));
  now += 500;
  done.push(queue.enqueue(job('completion', PRIORITY_COMPLETION)));
  now += 2_000;
  await finish('running');
  await finish('chat');
  await finish('completion');
  assert.deepEqual(started, ['running', 'chat', 'completion']);
  await Promise.all(done);
});
