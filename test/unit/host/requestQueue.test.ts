// The request queue: one job at a time, completions before chat, cancellation of queued and
// running jobs, and newer completions superseding older ones.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { CancelToken } from '../../../src/native/addon';
import { PRIORITY_BACKGROUND, PRIORITY_CHAT, PRIORITY_COMPLETION, RequestQueue } from '../../../src/host/requestQueue';
import { TidalError } from '../../../src/native/errors';

class FlagToken implements CancelToken {
  cancelled = false;
  cancel(): void {
    this.cancelled = true;
  }
}

// A job that runs until released or cancelled, recording the order jobs start in.
function controllableJob(started: string[]) {
  const releases = new Map<string, () => void>();
  const make = (id: string, priority: number, extra: { group?: string; supersede?: boolean } = {}) => ({
    id,
    priority,
    ...extra,
    run: (cancel: CancelToken) =>
      new Promise<string>((resolve) => {
        started.push(id);
        const timer = setInterval(() => {
          if (cancel.cancelled) {
            clearInterval(timer);
            resolve(`${id}:cancelled`);
          }
        }, 1);
        releases.set(id, () => {
          clearInterval(timer);
          resolve(`${id}:done`);
        });
      }),
  });
  return { make, release: (id: string) => releases.get(id)?.() };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

test('one job at a time; queued completions run before queued chat, each priority in arrival order', async () => {
  const started: string[] = [];
  const queue = new RequestQueue(() => new FlagToken());
  const { make, release } = controllableJob(started);
  const results = [
    queue.enqueue(make('chat-1', PRIORITY_CHAT)),
    queue.enqueue(make('chat-2', PRIORITY_CHAT)),
    queue.enqueue(make('completion-1', PRIORITY_COMPLETION)),
    queue.enqueue(make('completion-2', PRIORITY_COMPLETION)),
  ];
  await tick();
  assert.deepEqual(started, ['chat-1']);
  assert.equal(queue.stats().queued, 3);
  for (const id of ['chat-1', 'completion-1', 'completion-2', 'chat-2']) {
    await tick();
    assert.equal(started.at(-1), id);
    release(id);
  }
  assert.deepEqual(await Promise.all(results), ['chat-1:done', 'chat-2:done', 'completion-1:done', 'completion-2:done']);
  assert.deepEqual(started, ['chat-1', 'completion-1', 'completion-2', 'chat-2']);
  assert.equal(queue.stats().completed, 4);
});

test('cancelling a queued job rejects it without running; cancelling the running one stops it and the next runs', async () => {
  const started: string[] = [];
  const queue = new RequestQueue(() => new FlagToken());
  const { make, release } = controllableJob(started);
  const running = queue.enqueue(make('a', PRIORITY_CHAT));
  const queued = queue.enqueue(make('b', PRIORITY_CHAT));
  const next = queue.enqueue(make('c', PRIORITY_CHAT));
  await tick();
  assert.equal(queue.cancel('b'), true);
  await assert.rejects(queued, (error: Error) => error instanceof TidalError && error.code === 'ERR_TIDAL_CANCELLED' && / was cancelled /.test(error.message));
  assert.equal(queue.cancel('a'), true);
  assert.equal(await running, 'a:cancelled');
  await tick();
  assert.deepEqual(started, ['a', 'c']);
  release('c');
  assert.equal(await next, 'c:done');
  assert.equal(queue.cancel('nope'), false);
});

test('a new completion supersedes the queued and running completions but leaves chat alone', async () => {
  const started: string[] = [];
  const queue = new RequestQueue(() => new FlagToken());
  const { make, release } = controllableJob(started);
  const first = queue.enqueue(make('completion-1', PRIORITY_COMPLETION, { group: 'completion', supersede: true }));
  const chat = queue.enqueue(make('chat', PRIORITY_CHAT));
  await tick();
  const second = queue.enqueue(make('completion-2', PRIORITY_COMPLETION, { group: 'completion', supersede: true }));
  const third = queue.enqueue(make('completion-3', PRIORITY_COMPLETION, { group: 'completion', supersede: true }));
  const secondRejected = assert.rejects(
    second,
    (error: Error) => error instanceof TidalError && error.code === 'ERR_TIDAL_CANCELLED' && / was superseded /.test(error.message),
  );
  assert.equal(await first, 'completion-1:cancelled');
  await secondRejected;
  await tick();
  assert.equal(started.at(-1), 'completion-3');
  release('completion-3');
  assert.equal(await third, 'completion-3:done');
  await tick();
  release('chat');
  assert.equal(await chat, 'chat:done');
  assert.deepEqual(started, ['completion-1', 'completion-3', 'chat']);
});

test('a job that throws rejects its promise and the queue moves on', async () => {
  const queue = new RequestQueue(() => new FlagToken());
  const failing = queue.enqueue({
    id: 'x',
    priority: 0,
    run: () => {
      throw new Error('broken job');
    },
  });
  const ok = queue.enqueue({ id: 'y', priority: 0, run: async () => 'fine' });
  await assert.rejects(failing, /broken job/);
  assert.equal(await ok, 'fine');
  await queue.whenIdle();
  assert.deepEqual(queue.stats(), { queued: 0, running: undefined, completed: 2, cancelled: 0 });
});

test('cancelAll stops everything and whenIdle resolves once the running job has returned', async () => {
  const started: string[] = [];
  const queue = new RequestQueue(() => new FlagToken());
  const { make } = controllableJob(started);
  const running = queue.enqueue(make('a', PRIORITY_CHAT));
  const queued = queue.enqueue(make('b', PRIORITY_COMPLETION));
  const queuedRejected = assert.rejects(queued, { code: 'ERR_TIDAL_CANCELLED' });
  assert.equal(queue.cancelAll(), 2);
  await queue.whenIdle();
  assert.equal(await running, 'a:cancelled');
  await queuedRejected;
  assert.deepEqual(started, ['a']);
});

test('a preemptible background job is cancelled by a request of higher priority; others are not', async () => {
  const started: string[] = [];
  const queue = new RequestQueue(() => new FlagToken());
  const { make, release } = controllableJob(started);
  const save = queue.enqueue({ ...make('save', PRIORITY_BACKGROUND), preemptible: true });
  const completion = queue.enqueue(make('completion', PRIORITY_COMPLETION));
  assert.equal(await save, 'save:cancelled');
  await tick();
  release('completion');
  assert.equal(await completion, 'completion:done');
  // A warm-up step (not preemptible) runs to its end.
  await tick();
  const warm = queue.enqueue(make('warm', PRIORITY_BACKGROUND));
  await tick();
  const chat = queue.enqueue(make('chat', PRIORITY_CHAT));
  await tick();
  assert.deepEqual(started, ['save', 'completion', 'warm'], 'the chat waits for the warm-up step');
  release('warm');
  assert.equal(await warm, 'warm:done');
  await tick();
  release('chat');
  assert.equal(await chat, 'chat:done');
});
