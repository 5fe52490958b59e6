// The pure half of the vscode.lm provider, on random inputs: request messages to chat turns
// (against a reference written the long way), token counts with the model's tokenizer, a
// request cancelled after a random number of chunks, and the selection quoting of the
// context-menu commands.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { GenerateResult } from '../../../src/core/protocol/protocol';
import { TextTokenizer } from '../../../src/core/tokenizer/tokenizer';
import {
  countTokensOf,
  languageModelErrorMessage,
  messageText,
  ROLE_ASSISTANT,
  ROLE_SYSTEM,
  ROLE_USER,
  runWithCancellation,
  toChatMessages,
  type CancellationLike,
  type RequestMessage,
} from '../../../src/vscode/languageModelMessages';
import { quoteSelection } from '../../../src/core/chat/selectionPrompt';
import { random } from '../seededRandom';

const pick = <T>(next: () => number, items: readonly T[]): T => items[Math.floor(next() * items.length)];
const pieces = ['a', 'def ', 'x = 1', '\n', ' ', '```', '`', 'é', '🚨', '<|im_end|>', '\t', 'return', '  '];
const randomText = (next: () => number, max: number) => Array.from({ length: Math.floor(next() * max) }, () => pick(next, pieces)).join('');

// Parts as VS Code builds them: LanguageModelTextPart {value}, LanguageModelToolCallPart
// {callId, name, input}, LanguageModelToolResultPart {callId, content}, a data part, junk.
function randomPart(next: () => number): { part: unknown; text: string } {
  const kind = Math.floor(next() * 6);
  if (kind <= 1) {
    const value = randomText(next, 6);
    return { part: { value }, text: value };
  }
  if (kind === 2) return { part: { callId: 'c1', name: 'search', input: { q: 'x' } }, text: '' };
  if (kind === 3) {
    const values = [randomText(next, 4), randomText(next, 4)];
    const joined = values.join('');
    return { part: { callId: 'c1', content: values.map((value) => ({ value })) }, text: joined ? `Tool result:\n${joined}` : '' };
  }
  if (kind === 4) return { part: { mimeType: 'image/png', data: new Uint8Array([1, 2]) }, text: '' };
  return { part: pick(next, [null, 42, { other: true }]), text: '' };
}

function randomConversation(next: () => number): { messages: RequestMessage[]; texts: string[] } {
  const messages: RequestMessage[] = [];
  const texts: string[] = [];
  const count = Math.floor(next() * 8);
  for (let i = 0; i < count; i++) {
    const parts = Array.from({ length: Math.floor(next() * 4) }, () => randomPart(next));
    messages.push({
      role: pick(next, [ROLE_USER, ROLE_USER, ROLE_ASSISTANT, ROLE_ASSISTANT, ROLE_SYSTEM, 9]),
      content: parts.map((p) => p.part),
      name: undefined,
    });
    texts.push(parts.map((p) => p.text).join(''));
  }
  return { messages, texts };
}

test('toChatMessages: system first as one, alternating turns, every text kept in order (random conversations)', () => {
  for (let seed = 1; seed <= 500; seed++) {
    const next = random(seed);
    const { messages, texts } = randomConversation(next);
    const turns = toChatMessages(messages);
    // Reference: the system texts, then runs of one role folded into one turn.
    const systemTexts = texts.filter((text, i) => messages[i].role === ROLE_SYSTEM && text.trim() !== '');
    const expected: { role: string; parts: string[] }[] = [];
    texts.forEach((text, i) => {
      if (messages[i].role === ROLE_SYSTEM || text.trim() === '') return;
      const role = messages[i].role === ROLE_ASSISTANT ? 'assistant' : 'user';
      if (expected.at(-1)?.role === role) expected.at(-1)!.parts.push(text);
      else expected.push({ role, parts: [text] });
    });
    const want = [
      ...(systemTexts.length > 0 ? [{ role: 'system', content: systemTexts.join('\n\n') }] : []),
      ...expected.map((turn) => ({ role: turn.role, content: turn.parts.join('\n\n') })),
    ];
    assert.deepEqual(turns, want, `seed ${seed}`);
    for (let i = 1; i < turns.length; i++) assert.notEqual(turns[i].role, turns[i - 1].role, `seed ${seed}: two ${turns[i].role} turns in a row`);
    assert.equal(turns.filter((turn) => turn.role === 'system').length <= 1, true);
  }
});

test('toChatMessages: a tool call is left out, a tool result is read as text, a string part as it is', () => {
  const turns = toChatMessages([
    { role: ROLE_USER, content: [{ value: 'What is in a.ts?' }] },
    { role: ROLE_ASSISTANT, content: [{ callId: 'c', name: 'read', input: {} }] },
    { role: ROLE_USER, content: [{ callId: 'c', content: [{ value: 'export const a = 1;' }] }, 'plain'] },
  ]);
  assert.deepEqual(turns, [{ role: 'user', content: 'What is in a.ts?\n\nTool result:\nexport const a = 1;plain' }]);
});

test('countTokensOf: a message counts as its text with the model tokenizer (random messages)', () => {
  const tokenizer = TextTokenizer.fromDirectory('test/fixtures/tokenizers/chatml-byte-bpe');
  const calls: string[] = [];
  const count = (text: string) => {
    calls.push(text);
    return tokenizer.encode(text).length;
  };
  for (let seed = 1; seed <= 200; seed++) {
    const next = random(seed);
    const { messages } = randomConversation(next);
    for (const message of messages) {
      const text = messageText(message);
      const expected = text.length === 0 ? 0 : tokenizer.encode(text).length;
      assert.equal(countTokensOf(message, count), expected, `seed ${seed}`);
      assert.equal(countTokensOf(text, count), expected, `seed ${seed}`);
    }
  }
  assert.equal(
    calls.every((text) => text.length > 0),
    true,
    'the empty text is not sent to the tokenizer',
  );
  assert.ok(countTokensOf('hello world, hello world', count) > countTokensOf('hello', count));
});

class FakeToken implements CancellationLike {
  isCancellationRequested = false;
  private listeners: (() => void)[] = [];
  onCancellationRequested(listener: () => void) {
    this.listeners.push(listener);
    return { dispose: () => (this.listeners = this.listeners.filter((other) => other !== listener)) };
  }
  cancel() {
    this.isCancellationRequested = true;
    for (const listener of this.listeners) listener();
  }
  get listening() {
    return this.listeners.length;
  }
}

const result = (text: string, finishReason: GenerateResult['finishReason'] = 'stop'): GenerateResult => ({
  requestId: 'r',
  text,
  finishReason,
  tokens: text.length,
  promptTokens: 1,
  reusedTokens: 0,
  recomputedTokens: 1,
  timings: { queuedMs: 0, prefillMs: 0, decodeMs: 0, totalMs: 0 },
});

// An engine that streams `chunks` one per tick and stops when aborted, as LocalBackend does.
function fakeEngine(chunks: string[], afterChunk: (index: number) => void) {
  let abortedAt: number | undefined;
  const generate = async (onText: (chunk: string) => void, signal: AbortSignal) => {
    let text = '';
    for (let i = 0; i < chunks.length; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (signal.aborted) {
        abortedAt = i;
        return result(text, 'cancelled');
      }
      text += chunks[i];
      onText(chunks[i]);
      afterChunk(i);
    }
    return result(text);
  };
  return { generate, abortedAt: () => abortedAt };
}

test('runWithCancellation: cancelled after a random chunk, nothing is reported after it and the engine is aborted', async () => {
  for (let seed = 1; seed <= 60; seed++) {
    const next = random(seed);
    const chunks = Array.from({ length: 2 + Math.floor(next() * 20) }, () => randomText(next, 3) || 'x');
    const cancelAfter = Math.floor(next() * (chunks.length - 1));
    const token = new FakeToken();
    const engine = fakeEngine(chunks, (index) => index === cancelAfter && token.cancel());
    const reported: string[] = [];
    const outcome = await runWithCancellation(engine.generate, token, (chunk) => reported.push(chunk));
    assert.equal(outcome.cancelled, true, `seed ${seed}`);
    assert.deepEqual(reported, chunks.slice(0, cancelAfter + 1), `seed ${seed}`);
    assert.equal(engine.abortedAt(), cancelAfter + 1, `seed ${seed}: the engine stopped at the next chunk`);
    assert.equal(token.listening, 0, 'the cancellation listener is removed');
  }
});

test('runWithCancellation: not cancelled, every chunk is reported; cancelled before it starts, the engine is not called', async () => {
  const chunks = ['Hel', 'lo', ' world'];
  const token = new FakeToken();
  const reported: string[] = [];
  const outcome = await runWithCancellation(fakeEngine(chunks, () => undefined).generate, token, (chunk) => reported.push(chunk));
  assert.equal(outcome.cancelled, false);
  assert.equal(outcome.cancelled === false && outcome.result.text, 'Hello world');
  assert.deepEqual(reported, chunks);

  const cancelled = new FakeToken();
  cancelled.cancel();
  let called = false;
  const early = await runWithCancellation(
    async () => {
      called = true;
      return result('x');
    },
    cancelled,
    () => undefined,
  );
  assert.deepEqual(early, { cancelled: true, text: '' });
  assert.equal(called, false);
});

test('runWithCancellation: an engine error is passed on, unless the request was cancelled', async () => {
  const failing = async () => {
    throw new Error('The Tidal engine is not running right now');
  };
  await assert.rejects(
    runWithCancellation(failing, new FakeToken(), () => undefined),
    /not running/,
  );
  const token = new FakeToken();
  const outcome = await runWithCancellation(
    async () => {
      token.cancel();
      throw new Error('connection closed');
    },
    token,
    () => undefined,
  );
  assert.equal(outcome.cancelled, true);
});

test('languageModelErrorMessage: names Tidal once, explains a context overflow', () => {
  assert.equal(languageModelErrorMessage(new Error('boom')), 'Tidal: boom');
  assert.equal(languageModelErrorMessage(new Error('Tidal: no model')), 'Tidal: no model');
  assert.match(languageModelErrorMessage(new Error('prompt of 9000 tokens exceeds the context of 8192')), /does not fit the model's context.*fewer or shorter/);
  assert.equal(languageModelErrorMessage('plain'), 'Tidal: plain');
});

test('quoteSelection: the fence outlasts every backtick run, and the code comes back unchanged (random selections)', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const next = random(seed);
    const text = randomText(next, 30) || 'x';
    const startLine = 1 + Math.floor(next() * 50);
    const endLine = startLine + Math.floor(next() * 5);
    const quoted = quoteSelection({ path: 'src/a.ts', language: pick(next, ['typescript', 'c++', undefined, 'bad lang']), text, startLine, endLine });
    const lines = quoted.split('\n');
    assert.equal(lines[0], `src/a.ts (${startLine === endLine ? `line ${startLine}` : `lines ${startLine}-${endLine}`}):`);
    const fence = /^`+/.exec(lines[1])![0];
    assert.ok(fence.length >= 3);
    assert.equal(lines.at(-1), fence, `seed ${seed}`);
    assert.ok(!/ /.test(lines[1]), 'no space in the info string');
    for (const run of text.match(/`+/g) ?? []) assert.ok(run.length < fence.length, `seed ${seed}: a run of ${run.length} inside a fence of ${fence.length}`);
    const body = lines.slice(2, -1).join('\n');
    assert.equal(body, text.endsWith('\n') ? text.slice(0, -1) : text, `seed ${seed}`);
  }
});
