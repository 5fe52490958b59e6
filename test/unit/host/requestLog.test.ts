// The engine host's line per request: every field there, in words a person reads, and a
// request's purpose named as the extension gave it.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { GenerateResult } from '../../../src/core/protocol/protocol';
import { formatDuration, formatFailedRequestLog, formatRequestLog, purposeOf, requestLogEntry, type RequestPurpose } from '../../../src/host/requestLog';
import { random } from '../seededRandom';

test('durations read as a person says them', () => {
  assert.equal(formatDuration(0), '0 ms');
  assert.equal(formatDuration(849.6), '850 ms');
  assert.equal(formatDuration(999.4), '999 ms');
  assert.equal(formatDuration(1000), '1.0 s');
  assert.equal(formatDuration(1234), '1.2 s');
  assert.equal(formatDuration(9949), '9.9 s');
  assert.equal(formatDuration(9950), '10 s');
  assert.equal(formatDuration(54_197), '54 s');
  assert.equal(formatDuration(60_000), '1 min');
  assert.equal(formatDuration(125_400), '2 min 5 s');
  assert.equal(formatDuration(-1), '?');
  assert.equal(formatDuration(Number.NaN), '?');
});

test('the line names the purpose, prompt and cached tokens, files, first token, total and finish reason', () => {
  const result: GenerateResult = {
    requestId: 'chat-1',
    text: 'x',
    finishReason: 'length',
    tokens: 64,
    promptTokens: 14_239,
    reusedTokens: 13_900,
    recomputedTokens: 339,
    contextFiles: 13,
    timings: { queuedMs: 3, prefillMs: 900, decodeMs: 4000, totalMs: 5_300, firstTokenMs: 1_234 },
  };
  assert.equal(
    formatRequestLog(requestLogEntry({ requestId: 'chat-1', kind: 'chat', purpose: 'ask' }, result)),
    'request chat-1: ask, 14,239 prompt tokens (13,900 cached), 13 files, first token 1.2 s, total 5.3 s, 64 tokens, finish length',
  );
  const none = { ...result, tokens: 1, contextFiles: undefined, finishReason: 'cancelled' as const, timings: { ...result.timings, firstTokenMs: undefined } };
  assert.equal(
    formatRequestLog(requestLogEntry({ requestId: 'c-2', kind: 'completion' }, none)),
    'request c-2: completion, 14,239 prompt tokens (13,900 cached), 0 files, no token, total 5.3 s, 1 token, finish cancelled',
  );
  assert.equal(
    formatFailedRequestLog({ requestId: 'e-3', kind: 'chat', purpose: 'edit' }, 12, 'The prompt has 9 tokens\nsecond line'),
    'request e-3: edit, failed after 12 ms, finish error: The prompt has 9 tokens',
  );
});

test('random results: each field comes back out of the line', () => {
  const next = random(22);
  const purposes: RequestPurpose[] = ['completion', 'chat', 'ask', 'edit', 'raw'];
  const reasons = ['stop', 'length', 'cancelled', 'repetition', 'context_full'] as const;
  for (let i = 0; i < 300; i++) {
    const purpose = purposes[Math.floor(next() * purposes.length)];
    const kind = purpose === 'completion' || purpose === 'raw' ? purpose : 'chat';
    const promptTokens = Math.floor(next() * 200_000);
    const cached = Math.floor(next() * (promptTokens + 1));
    const files = Math.floor(next() * 2000);
    const tokens = Math.floor(next() * 5000);
    const finishReason = reasons[Math.floor(next() * reasons.length)];
    const result: GenerateResult = {
      requestId: `r-${i}`,
      text: '',
      finishReason,
      tokens,
      promptTokens,
      reusedTokens: cached,
      recomputedTokens: promptTokens - cached,
      contextFiles: files,
      timings: { queuedMs: 0, prefillMs: 0, decodeMs: 0, totalMs: next() * 300_000, firstTokenMs: next() < 0.2 ? undefined : next() * 60_000 },
    };
    const line = formatRequestLog(requestLogEntry({ requestId: result.requestId, kind, purpose: kind === purpose ? undefined : purpose }, result));
    const match =
      /^request (\S+): (\w+), ([\d,]+) prompt tokens \(([\d,]+) cached\), ([\d,]+) files?, (no token|first token [^,]+), total [^,]+, ([\d,]+) tokens?, finish (\w+)$/.exec(
        line,
      );
    assert.ok(match, line);
    const number = (text: string) => Number(text.replace(/,/g, ''));
    assert.deepEqual(
      [match[1], match[2], number(match[3]), number(match[4]), number(match[5]), match[6] === 'no token', number(match[7]), match[8]],
      [result.requestId, purpose, promptTokens, cached, files, result.timings.firstTokenMs === undefined, tokens, finishReason],
      line,
    );
  }
  assert.equal(purposeOf({ kind: 'raw' }), 'raw');
});
