// What the chat panel's live region says: the start of an answer, its end with the marker
// under it, and errors; nothing while the answer streams, nothing for the user's own turns.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { turnAnnouncement } from '../../../src/core/chat/announcements';
import type { AnswerMeta, Turn } from '../../../src/core/chat/conversation';

const meta = (finishReason: string, extra: Partial<AnswerMeta> = {}): AnswerMeta => ({
  promptTokens: 700,
  maxContext: 16384,
  reusedTokens: 0,
  tokens: 24,
  contextFiles: 4,
  decodeMs: 100,
  finishReason,
  ...extra,
});
const answer = (status: Turn['status'], text = '', more: Partial<Turn> = {}): Turn => ({ id: 'answer-1', role: 'assistant', text, status, ...more });

test('an answer is announced when it starts and when it ends, never while it streams', () => {
  // The turns of one answer as the panel receives them: started, growing, done.
  const seen: Turn[] = [
    answer('streaming'),
    answer('streaming', 'The KV'),
    answer('streaming', 'The KV cache is trimmed in trim().'),
    answer('done', 'The KV cache is trimmed in trim().', { meta: meta('stop') }),
  ];
  const said: string[] = [];
  let before: Turn | undefined;
  for (const turn of seen) {
    const text = turnAnnouncement(before, turn);
    if (text) said.push(text);
    before = turn;
  }
  assert.deepEqual(said, ['Tidal is answering.', 'Answer complete.']);
  // The answer's text is never read out by the live region.
  assert.ok(said.every((text) => !text.includes('KV')));
});

test('the end says how the answer ended: the marker, Continue where it is offered, stopped by the user', () => {
  const streaming = answer('streaming', 'x');
  assert.equal(turnAnnouncement(streaming, answer('done', 'x', { meta: meta('length') })), 'Answer ended. Stopped at the 24-token limit.');
  assert.equal(
    turnAnnouncement(streaming, answer('done', 'x', { meta: meta('length', { canContinue: true }) })),
    'Answer ended. Stopped at the 24-token limit. Continue is available.',
  );
  // Continue is offered only on the last answer.
  assert.equal(
    turnAnnouncement(streaming, answer('done', 'x', { meta: meta('length', { canContinue: true }) }), false),
    'Answer ended. Stopped at the 24-token limit.',
  );
  assert.equal(turnAnnouncement(streaming, answer('done', 'x', { meta: meta('repetition') })), 'Answer ended. Stopped: the answer kept repeating itself.');
  assert.equal(turnAnnouncement(streaming, answer('stopped', 'x')), 'Answer stopped.');
  // Continue restarts a finished answer: announced as a start again.
  assert.equal(turnAnnouncement(answer('done', 'x', { meta: meta('length') }), answer('streaming', 'x')), 'Tidal is answering.');
});

test('errors are announced with their message, once', () => {
  const failed = answer('error', '', { error: 'No model is loaded. Select Model picks one.' });
  assert.equal(turnAnnouncement(answer('streaming'), failed), 'The answer failed. No model is loaded. Select Model picks one.');
  assert.equal(turnAnnouncement(undefined, failed), 'The answer failed. No model is loaded. Select Model picks one.');
  assert.equal(turnAnnouncement(failed, failed), undefined);
  assert.equal(turnAnnouncement(answer('streaming'), answer('error')), 'The answer failed.');
});

test("nothing is said for the user's turns or for a finished answer drawn again", () => {
  assert.equal(turnAnnouncement(undefined, { id: 'user-1', role: 'user', text: 'Where?', status: 'done' }), undefined);
  const done = answer('done', 'x', { meta: meta('stop') });
  assert.equal(turnAnnouncement(done, done), undefined);
  assert.equal(turnAnnouncement(undefined, done), undefined);
  assert.equal(turnAnnouncement(answer('stopped', 'x'), answer('stopped', 'x')), undefined);
});
