// The parts' lifecycle (src/vscode/lifecycle.ts): what a part registers is disposed with it,
// newest first, once, and a failure in one does not keep the others alive.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Disposable, type IDisposable } from '../../../src/vscode/lifecycle';

class Part extends Disposable {
  take<T extends IDisposable>(value: T): T {
    return this._register(value);
  }
}

const recorder = (disposed: string[], name: string, fail = false): IDisposable => ({
  dispose() {
    disposed.push(name);
    if (fail) throw new Error(`${name} failed`);
  },
});

test('registered values are disposed with the part, newest first, and only once', () => {
  const disposed: string[] = [];
  const part = new Part();
  const first = recorder(disposed, 'first');
  assert.equal(part.take(first), first);
  part.take(recorder(disposed, 'second', true));
  part.take(recorder(disposed, 'third'));
  part.dispose();
  assert.deepEqual(disposed, ['third', 'second', 'first']);
  part.dispose();
  assert.deepEqual(disposed, ['third', 'second', 'first']);
});

test('a value registered on a disposed part is disposed at once', () => {
  const disposed: string[] = [];
  const part = new Part();
  part.dispose();
  part.take(recorder(disposed, 'late'));
  assert.deepEqual(disposed, ['late']);
});
