// An engine host that is alive but deaf (stuck, or past input it cannot read) must count as
// crashed: the extension pings it, and one that leaves a ping unanswered is killed and goes
// through the restart policy. First the watchdog on a fake connection and a clock the test
// moves; then EngineClient with a real host that the test freezes with SIGSTOP.
import Module from 'node:module';
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ResponseWatchdog, type WatchdogTimers } from '../../src/vscode/restartPolicy';
import { hostScript } from './hostFixture';

/** Timers on a clock that only moves when the test says so. */
class ManualTimers implements WatchdogTimers {
  now = 0;
  private pending = new Map<number, { at: number; callback: () => void }>();
  private nextHandle = 1;

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.nextHandle++;
    this.pending.set(handle, { at: this.now + ms, callback });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Moves the clock by `ms`, running each timer that falls due (and the promise callbacks after it). */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.pending.entries()].filter(([, timer]) => timer.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
      for (let turn = 0; turn < 5; turn++) await Promise.resolve();
    }
    this.now = until;
  }
}

/** A connection whose answers to pings the test switches on and off. */
function fakeConnection() {
  const state = { answering: true, pings: 0 };
  const ping = () => {
    state.pings++;
    return state.answering ? Promise.resolve({ text: 'ping' }) : new Promise<never>(() => undefined);
  };
  return { state, ping };
}

test('cause 12: the watchdog stays quiet while pings are answered and fires once when one goes unanswered', async () => {
  const timers = new ManualTimers();
  const connection = fakeConnection();
  const unresponsive: number[] = [];
  const watchdog = new ResponseWatchdog({
    ping: connection.ping,
    onUnresponsive: (ms) => unresponsive.push(timers.now - ms),
    intervalMs: 1_000,
    timeoutMs: 5_000,
    timers,
  });
  watchdog.start();
  await timers.advance(60_000);
  assert.equal(connection.state.pings, 60);
  assert.deepEqual(unresponsive, []);
  connection.state.answering = false;
  await timers.advance(1_000); // the next ping goes out, unanswered
  await timers.advance(4_999);
  assert.deepEqual(unresponsive, []);
  await timers.advance(1);
  assert.deepEqual(unresponsive, [61_000], 'fired 5 s after the unanswered ping was sent');
  await timers.advance(60_000);
  assert.equal(unresponsive.length, 1, 'fires once, then stays stopped');
  assert.equal(connection.state.pings, 61);
});

test('cause 12: a ping that fails is no answer; a stopped watchdog never fires; a late answer does not revive it', async () => {
  const timers = new ManualTimers();
  let fired = 0;
  const failing = new ResponseWatchdog({
    ping: () => Promise.reject(new Error('Connection is disposed')),
    onUnresponsive: () => fired++,
    intervalMs: 100,
    timeoutMs: 500,
    timers,
  });
  failing.start();
  await timers.advance(600);
  assert.equal(fired, 1);

  const connection = fakeConnection();
  connection.state.answering = false;
  const stopped = new ResponseWatchdog({ ping: connection.ping, onUnresponsive: () => fired++, intervalMs: 100, timeoutMs: 500, timers });
  stopped.start();
  await timers.advance(300);
  stopped.stop();
  await timers.advance(10_000);
  assert.equal(fired, 1);

  let answerLate!: () => void;
  let pings = 0;
  const late = new ResponseWatchdog({
    ping: () => {
      pings++;
      return new Promise<void>((resolve) => (answerLate = resolve));
    },
    onUnresponsive: () => fired++,
    intervalMs: 100,
    timeoutMs: 500,
    timers,
  });
  late.start();
  await timers.advance(600);
  assert.equal(fired, 2);
  answerLate();
  await timers.advance(10_000);
  assert.equal(pings, 1, 'no pings after it fired');
  assert.equal(fired, 2);
});

// ---- EngineClient over a real host, with a stand-in for the few `vscode` pieces it uses ----

class EventEmitter<T> {
  private listeners = new Set<(value: T) => void>();
  event = (listener: (value: T) => void) => {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  };
  fire(value: T): void {
    for (const listener of this.listeners) listener(value);
  }
  dispose(): void {
    this.listeners.clear();
  }
}
const shownErrors: string[] = [];
const fakeVscode = {
  EventEmitter,
  window: { showErrorMessage: async (message: string) => void shownErrors.push(message) },
};
const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const load = loader._load;
loader._load = function (request: string, ...rest: unknown[]) {
  return request === 'vscode' ? fakeVscode : load.call(this, request, ...rest);
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { EngineClient } = require('../../src/vscode/engineClient') as typeof import('../../src/vscode/engineClient');
import type { EngineStatus } from '../../src/vscode/engineClient';

test('cause 12: EngineClient kills a host that stops answering and the restart policy starts a new one', { timeout: 60_000 }, async () => {
  const lines: string[] = [];
  const log = {
    info: (line: string) => lines.push(line),
    warn: (line: string) => lines.push(line),
    error: (line: string) => lines.push(line),
    show: () => undefined,
  };
  const client = new EngineClient(hostScript, log as never, { intervalMs: 200, timeoutMs: 3_000 });
  const statuses: EngineStatus[] = [];
  client.onDidChangeStatus((status) => statuses.push(status));
  const ready = () =>
    new Promise<EngineStatus>((resolve) => {
      const subscription = client.onDidChangeStatus((status) => {
        if (status.state === 'ready') {
          subscription.dispose();
          resolve(status);
        }
      });
    });
  let firstPid: number | undefined;
  try {
    const first = ready();
    await client.start();
    const frozenPid = (await first).info!.pid;
    firstPid = frozenPid;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(client.currentStatus.state, 'ready', 'a host that answers is left alone');

    const second = ready();
    process.kill(frozenPid, 'SIGSTOP'); // alive, and deaf
    const restarted = await second;
    assert.notEqual(restarted.info!.pid, frozenPid);
    assert.ok(
      statuses.some((status) => status.state === 'error' && /did not answer for 3 s/.test(status.message ?? '')),
      JSON.stringify(statuses),
    );
    assert.ok(
      lines.some((line) => /stopped answering/.test(line)),
      lines.join('\n'),
    );
    assert.throws(() => process.kill(frozenPid, 0), 'the frozen host was killed');
    assert.deepEqual(shownErrors, []);
  } finally {
    client.dispose();
    // A frozen host the client failed to kill must not outlive the test.
    try {
      if (firstPid !== undefined) process.kill(firstPid, 'SIGKILL');
    } catch {
      // already gone
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
});
