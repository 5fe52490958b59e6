// Answers that end early, in the chat: an answer cut at its token limit says so and continues
// where it stopped (the same conversation, the answer so far sent as the reply's start, the
// new text appended); an answer stopped for repeating itself says so; Regenerate is offered
// only where asking again can succeed.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { offersContinue, offersRegenerate, stopMarker } from '../../../src/core/chat/answerMarkers';
import { ChatSession, type ChatRequestContext } from '../../../src/core/chat/chatSession';
import type { Turn } from '../../../src/core/chat/conversation';
import { ChatHistory, readHistory, type StateStore } from '../../../src/core/chat/historyStore';
import type { FinishReason, GenerateParams, GenerateResult } from '../../../src/core/protocol/protocol';
import type { ChatToPanel } from '../../../src/core/chat/chatMessages';
import { parsePanelMessage } from '../../../src/core/chat/chatMessages';
import { canRetry, modelUnavailable, type BackendKind, type GenerationBackend } from '../../../src/core/backend/generationBackend';
import { TidalError } from '../../../src/native/errors';
import { random } from '../seededRandom';
import { chatParams } from '../paramsOfKind';

class MemoryStore implements StateStore {
  readonly values = new Map<string, unknown>();
  get<T>(key: string): T | undefined {
    const value = this.values.get(key);
    return value === undefined ? undefined : (JSON.parse(JSON.stringify(value)) as T);
  }
  async update(key: string, value: unknown): Promise<void> {
    this.values.set(key, JSON.parse(JSON.stringify(value)));
  }
}

type Step = { chunks: string[]; finishReason: FinishReason } | { error: Error };

class ScriptedBackend implements GenerationBackend {
  readonly requests: GenerateParams[] = [];
  constructor(
    private readonly steps: Step[],
    readonly kind: BackendKind = 'local',
  ) {}
  async generate(params: GenerateParams, onText: (chunk: string) => void): Promise<GenerateResult> {
    this.requests.push(params);
    const step = this.steps[this.requests.length - 1];
    if (step === undefined) throw new Error('no more answers scripted');
    if ('error' in step) throw step.error;
    for (const chunk of step.chunks) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      onText(chunk);
    }
    const text = step.chunks.join('');
    return {
      requestId: params.requestId,
      text,
      finishReason: step.finishReason,
      tokens: step.chunks.length,
      promptTokens: 500,
      reusedTokens: 480,
      recomputedTokens: 20,
      timings: { queuedMs: 0, prefillMs: 1, decodeMs: 10, totalMs: 11 },
    };
  }
}

const context: ChatRequestContext = {
  repository: { files: [{ path: 'src/kvCache.ts', content: 'export class KvCache {}\n' }], tokens: 9 },
  repoName: 'demo',
  editor: { activeFile: { path: 'src/main.ts', content: 'const x = 1;\n', language: 'typescript' }, attached: [] },
  maxContext: 16384,
  conversationBudgetTokens: 8000,
  attention: { mode: 'full' },
  maxTokens: 3,
};

function setup(backend: GenerationBackend, store = new MemoryStore(), gather: () => Promise<ChatRequestContext> = async () => context) {
  const posted: ChatToPanel[] = [];
  let id = 0;
  const session = new ChatSession({
    backend: () => backend,
    history: new ChatHistory(store),
    post: (message) => posted.push(JSON.parse(JSON.stringify(message))),
    newRequestId: () => `chat-${++id}`,
    gatherContext: gather,
  });
  return { session, posted, store };
}

const lastTurn = (session: ChatSession) => session.turns.at(-1)!;

test('an answer cut at its token limit shows the marker; Continue sends the same conversation with the answer so far and appends', async () => {
  const next = random(11);
  for (let trial = 0; trial < 20; trial++) {
    const pieces = (n: number) =>
      Array.from({ length: n }, () => ['The ', 'cache ', 'is ', 'trim', 'med ', 'in ', '`trim`', '.\n', 'é'][Math.floor(next() * 9)]);
    const first = pieces(3);
    const second = pieces(3);
    const third = pieces(1 + Math.floor(next() * 3));
    const backend = new ScriptedBackend([
      { chunks: first, finishReason: 'length' },
      { chunks: second, finishReason: 'length' },
      { chunks: third, finishReason: 'stop' },
    ]);
    const { session, posted } = setup(backend);
    await session.ask('Where is the cache trimmed?', [], 'ask');
    const answer = lastTurn(session);
    assert.equal(answer.text, first.join(''));
    assert.equal(stopMarker(answer), 'Stopped at the 3-token limit.');
    assert.ok(offersContinue(answer, true));
    assert.ok(!offersContinue(answer, false), 'Continue only on the last answer');
    assert.equal(backend.requests[0].maxTokens, 3);
    assert.equal(backend.requests[0].purpose, 'ask');
    assert.equal(chatParams(backend.requests[0]).stopOnRepetition, true);
    assert.equal(chatParams(backend.requests[0]).answerPrefix, undefined);

    await session.continueAnswer();
    assert.equal(session.turns.length, 2, 'continuing adds no turn');
    assert.equal(lastTurn(session).id, answer.id);
    assert.equal(chatParams(backend.requests[1]).answerPrefix, first.join(''));
    assert.deepEqual(chatParams(backend.requests[1]).messages, chatParams(backend.requests[0]).messages, 'the conversation as sent before');
    assert.equal(lastTurn(session).text, first.join('') + second.join(''));
    // The panel got the continuation as deltas of the same turn.
    const deltas = posted.filter((message) => message.type === 'delta').map((message) => message as { id: string; text: string });
    assert.ok(deltas.every((delta) => delta.id === answer.id));
    assert.equal(deltas.map((delta) => delta.text).join(''), first.join('') + second.join(''));

    await session.continueAnswer();
    const done = lastTurn(session);
    assert.equal(done.text, first.join('') + second.join('') + third.join(''));
    assert.equal(chatParams(backend.requests[2]).answerPrefix, first.join('') + second.join(''));
    assert.equal(stopMarker(done), undefined, 'an answer that ended on its own has no marker');
    assert.ok(!offersContinue(done, true));
    // Nothing more to continue: no request is sent.
    await session.continueAnswer();
    assert.equal(backend.requests.length, 3);
  }
});

test('Continue needs the local engine, and survives a reload of the history', async () => {
  const remote = new ScriptedBackend([{ chunks: ['a', 'b', 'c'], finishReason: 'length' }], 'remote');
  const { session: remoteSession } = setup(remote);
  await remoteSession.ask('q');
  assert.equal(stopMarker(lastTurn(remoteSession)), 'Stopped at the 3-token limit.');
  assert.ok(!offersContinue(lastTurn(remoteSession), true), 'no Continue where the backend cannot continue');

  const store = new MemoryStore();
  const backend = new ScriptedBackend([
    { chunks: ['a', 'b', 'c'], finishReason: 'length' },
    { chunks: ['d'], finishReason: 'stop' },
  ]);
  const { session } = setup(backend, store);
  await session.ask('q');
  const reloaded = readHistory(store.values.get([...store.values.keys()][0]));
  const stored = reloaded[0].turns.at(-1)!;
  assert.ok(offersContinue(stored, true), 'the stored answer keeps its Continue');
  const { session: again } = setup(backend, store);
  await again.continueAnswer();
  assert.equal(lastTurn(again).text, 'abcd');
  assert.equal(chatParams(backend.requests[1]).answerPrefix, 'abc');
});

test('an answer stopped for repeating itself says so, and offers Regenerate, not Continue', async () => {
  const backend = new ScriptedBackend([{ chunks: ['again ', 'again ', 'again '], finishReason: 'repetition' }]);
  const { session } = setup(backend);
  await session.ask('q');
  const answer = lastTurn(session);
  assert.equal(stopMarker(answer), 'Stopped: the answer kept repeating itself.');
  assert.ok(!offersContinue(answer, true));
  assert.ok(offersRegenerate(answer, true));
});

test('Regenerate only where asking again can succeed', async () => {
  const failures: [Error, boolean][] = [
    [new TidalError('ERR_TIDAL_CONFIGURATION', 'No model is configured.'), false],
    [modelUnavailable(new Error('tidal.modelPath: /nowhere does not exist.')), false],
    [modelUnavailable(new Error('The model is still loading; try again in a moment.')), true],
    [Object.assign(new Error('The model has no chat template'), { code: -32603, data: { code: 'ERR_TIDAL_REQUEST' } }), false],
    [Object.assign(new Error('tokenizer broken'), { code: -32603, data: { code: 'ERR_TIDAL_MODEL' } }), false],
    [Object.assign(new Error('CUDA failed'), { code: -32603, data: { code: 'ERR_TIDAL_ENGINE' } }), true],
    [new TidalError('ERR_TIDAL_NOT_READY', 'The Tidal engine stopped while answering; it is being restarted.'), true],
    [new Error('fetch failed'), true],
  ];
  for (const [error, retry] of failures) {
    assert.equal(canRetry(error), retry, error.message);
    const { session } = setup(new ScriptedBackend([{ error }]));
    await session.ask('q');
    const answer = lastTurn(session);
    assert.equal(answer.status, 'error');
    assert.equal(offersRegenerate(answer, true), retry, error.message);
  }
  // A configuration error found while gathering the context (the model cannot chat).
  const { session } = setup(new ScriptedBackend([]), new MemoryStore(), async () => {
    throw new TidalError('ERR_TIDAL_CONFIGURATION', 'The model has no chat template.');
  });
  await session.ask('q');
  assert.equal(offersRegenerate(lastTurn(session), true), false);

  // After a normal answer and after Stop: yes.
  const normal: Turn = { id: 'a', role: 'assistant', text: 'x', status: 'done' };
  assert.ok(offersRegenerate(normal, true));
  assert.ok(offersRegenerate({ ...normal, status: 'stopped' }, true));
  assert.ok(!offersRegenerate({ ...normal, status: 'streaming' }, true));
  assert.ok(!offersRegenerate(normal, false));
});

test('the panel may send continue', () => {
  assert.deepEqual(parsePanelMessage({ type: 'continue' }), { type: 'continue' });
});
