// The chat's behaviour against a scripted backend: answers stream into the panel in order and
// end as the engine's text, Stop aborts the request, Regenerate replaces the last answer, New
// chat starts over, failures reach the user, and the history comes back from the store.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ChatSession, type ChatRequestContext } from '../../../src/core/chat/chatSession';
import { ChatHistory, HISTORY_KEY, type StateStore } from '../../../src/core/chat/historyStore';
import type { GenerateParams, GenerateResult, PrefillProgress } from '../../../src/core/protocol/protocol';
import type { ChatToPanel } from '../../../src/core/chat/chatMessages';
import type { GenerationBackend } from '../../../src/core/backend/generationBackend';
import { chatParams } from '../paramsOfKind';

class MemoryStore implements StateStore {
  readonly values = new Map<string, unknown>();
  writes = 0;
  get<T>(key: string): T | undefined {
    // A real Memento hands back a copy of what was stored (JSON).
    const value = this.values.get(key);
    return value === undefined ? undefined : (JSON.parse(JSON.stringify(value)) as T);
  }
  async update(key: string, value: unknown): Promise<void> {
    this.writes++;
    this.values.set(key, JSON.parse(JSON.stringify(value)));
  }
}

// Streams each answer's chunks one per macrotask; on abort it stops and resolves cancelled.
class ScriptedBackend implements GenerationBackend {
  readonly kind = 'local' as const;
  readonly requests: GenerateParams[] = [];
  signals: (AbortSignal | undefined)[] = [];
  constructor(
    private readonly answers: string[][],
    private readonly holdOpen = false,
    // Prefill progress reported before the text, and fields the result adds (as the local engine's).
    private readonly progress: Omit<PrefillProgress, 'requestId'>[] = [],
    private readonly extra: Partial<GenerateResult> = {},
  ) {}
  async generate(
    params: GenerateParams,
    onText: (chunk: string) => void,
    signal?: AbortSignal,
    onProgress?: (progress: PrefillProgress) => void,
  ): Promise<GenerateResult> {
    this.requests.push(params);
    this.signals.push(signal);
    for (const step of this.progress) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      onProgress?.({ requestId: params.requestId, ...step });
    }
    const chunks = this.answers[this.requests.length - 1] ?? ['ok'];
    let text = '';
    for (const chunk of chunks) {
      if (signal?.aborted) break;
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (signal?.aborted) break;
      text += chunk;
      onText(chunk);
    }
    while (this.holdOpen && !signal?.aborted) await new Promise((resolve) => setTimeout(resolve, 1));
    return {
      requestId: params.requestId,
      text,
      finishReason: signal?.aborted ? 'cancelled' : 'stop',
      tokens: text.length,
      promptTokens: 321,
      reusedTokens: 300,
      recomputedTokens: 21,
      timings: { queuedMs: 0, prefillMs: 1, decodeMs: 10, totalMs: 11 },
      attention: { mode: 'tidal', contextLength: 330, attendedFraction: 0.25 },
      ...this.extra,
    };
  }
}

const context: ChatRequestContext = {
  repository: { files: [{ path: 'src/kvCache.ts', content: 'export class KvCache {}\n' }], tokens: 9 },
  repoName: 'demo',
  editor: { activeFile: { path: 'src/main.ts', content: 'const x = 1;\n', language: 'typescript' }, attached: [] },
  maxContext: 16384,
  conversationBudgetTokens: 8000,
  attention: { mode: 'tidal', tokenBudget: 2048 },
};

function setup(backend: GenerationBackend, store = new MemoryStore(), gather?: (attachments: string[]) => Promise<ChatRequestContext>) {
  const posted: ChatToPanel[] = [];
  const gathered: string[][] = [];
  let id = 0;
  const session = new ChatSession({
    backend: () => backend,
    history: new ChatHistory(store),
    post: (message) => posted.push(JSON.parse(JSON.stringify(message))),
    newRequestId: () => `chat-${++id}`,
    gatherContext: gather ?? (async (attachments) => (gathered.push(attachments), context)),
  });
  return { session, posted, store, gathered };
}

test('a question streams its answer to the panel in order, ends as the engine text, and is saved', async () => {
  const backend = new ScriptedBackend([['The cache ', 'is trimmed ', 'in `trim`.']]);
  const { session, posted, store } = setup(backend);
  await session.ask('  Where is the cache trimmed?  ');

  const request = backend.requests[0];
  assert.equal(request.kind, 'chat');
  assert.deepEqual(request.repositoryContext, [{ path: 'src/kvCache.ts', content: 'export class KvCache {}\n' }]);
  assert.equal(request.repository, undefined);
  assert.equal(request.repoName, 'demo');
  assert.deepEqual(request.attention, context.attention);
  const last = request.messages!.at(-1)!;
  assert.equal(last.role, 'user');
  assert.match(last.content, /^Active file src\/main\.ts:\n```typescript\nconst x = 1;\n```\n\nWhere is the cache trimmed\?$/);
  assert.equal(request.messages![0].role, 'system');

  const deltas = posted.filter((message) => message.type === 'delta').map((message) => (message as { text: string }).text);
  assert.deepEqual(deltas, ['The cache ', 'is trimmed ', 'in `trim`.']);
  const finalTurn = posted.filter((message) => message.type === 'turn').at(-1) as Extract<ChatToPanel, { type: 'turn' }>;
  assert.equal(finalTurn.turn.text, 'The cache is trimmed in `trim`.');
  assert.equal(finalTurn.turn.status, 'done');
  assert.deepEqual(finalTurn.turn.meta, {
    promptTokens: 321,
    maxContext: 16384,
    reusedTokens: 300,
    tokens: 31,
    contextFiles: 1,
    contextPaths: ['src/kvCache.ts'],
    attention: { mode: 'tidal', attendedFraction: 0.25 },
    decodeMs: 10,
    finishReason: 'stop',
  });
  assert.deepEqual(posted.at(-1), { type: 'busy', busy: false });
  assert.equal(session.lastAnswer?.streamed, 'The cache is trimmed in `trim`.');
  assert.equal(session.lastAnswer?.chunks, 3);

  // What the store holds comes back as the same conversation in a new session.
  const reloaded = new ChatHistory(store);
  assert.deepEqual(
    reloaded.current.turns.map((turn) => [turn.role, turn.text, turn.status]),
    [
      ['user', 'Where is the cache trimmed?', 'done'],
      ['assistant', 'The cache is trimmed in `trim`.', 'done'],
    ],
  );
  assert.equal(reloaded.current.turns[1].meta?.attention?.mode, 'tidal');
});

test('Stop aborts the request into the backend; the answer keeps what came and is marked stopped', async () => {
  const backend = new ScriptedBackend([['one ', 'two ', 'three']], true);
  const { session, posted } = setup(backend);
  const answering = session.ask('Tell me everything');
  while (!posted.some((message) => message.type === 'delta')) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.equal(session.busy, true);
  // A second question while answering is refused with a notice, not queued.
  await session.ask('another');
  assert.equal(posted.at(-1)?.type, 'notice');
  session.stop();
  await answering;
  assert.equal(backend.signals[0]?.aborted, true);
  assert.equal(session.busy, false);
  const answer = session.turns.at(-1)!;
  assert.equal(answer.status, 'stopped');
  assert.equal(answer.meta?.finishReason, 'cancelled');
  assert.ok('one two three'.startsWith(answer.text) && answer.text.length > 0, answer.text);
  assert.equal(backend.requests.length, 1);
});

test('Regenerate answers the last question again and replaces its answer; earlier exchanges go into the prompt', async () => {
  const backend = new ScriptedBackend([['first'], ['second'], ['third']]);
  const { session, posted } = setup(backend);
  await session.ask('Q1');
  await session.ask('Q2 #file:src/kvCache.ts.');
  assert.deepEqual(chatParams(backend.requests[1]).messages.slice(1, 3), [
    { role: 'user', content: 'Q1' },
    { role: 'assistant', content: 'first' },
  ]);
  await session.regenerate();
  assert.deepEqual(
    session.turns.map((turn) => turn.text),
    ['Q1', 'first', 'Q2 #file:src/kvCache.ts.', 'third'],
  );
  assert.deepEqual(chatParams(backend.requests[2]).messages, chatParams(backend.requests[1]).messages);
  // The attachment named in the question is asked for again on regenerate.
  assert.deepEqual(session.turns[2].attachments, ['src/kvCache.ts']);
  const conversation = posted.filter((message) => message.type === 'conversation').at(-1) as Extract<ChatToPanel, { type: 'conversation' }>;
  assert.deepEqual(
    conversation.turns.map((turn) => turn.text),
    ['Q1', 'first', 'Q2 #file:src/kvCache.ts.'],
  );
});

test('New chat starts an empty conversation and keeps the old one in the stored history', async () => {
  const backend = new ScriptedBackend([['a']]);
  const { session, store, posted } = setup(backend);
  await session.ask('Q1');
  await session.newChat();
  assert.deepEqual(session.turns, []);
  assert.deepEqual(posted.at(-1), { type: 'conversation', turns: [], busy: false });
  const stored = store.get<{ conversations: { turns: unknown[] }[] }>(HISTORY_KEY)!;
  assert.deepEqual(
    stored.conversations.map((conversation) => conversation.turns.length),
    [0, 2],
  );
});

test('a failure reaches the user as an error turn, and the session can ask again', async () => {
  let fail = true;
  const backend = new ScriptedBackend([['fine']]);
  const { session } = setup(backend, new MemoryStore(), async () => {
    if (fail) throw new Error('#file:nope.ts is not a file in this workspace. Attach files with the Attach button.');
    return context;
  });
  await session.ask('Q #file:nope.ts');
  assert.equal(session.turns.at(-1)?.status, 'error');
  assert.match(session.turns.at(-1)?.error ?? '', /not a file in this workspace/);
  assert.equal(session.busy, false);
  assert.equal(backend.requests.length, 0);
  fail = false;
  await session.ask('Q again');
  assert.equal(session.turns.at(-1)?.text, 'fine');
  // The failed exchange is left out of the next prompt.
  assert.deepEqual(
    chatParams(backend.requests[0]).messages.map((message) => message.role),
    ['system', 'user'],
  );
});

test("with the engine host's own repository part the request says `repository: true` and carries no files", async () => {
  const backend = new ScriptedBackend([['It is ', 'in kvCache.ts.']]);
  const hostContext: ChatRequestContext = { ...context, repository: { source: 'host', files: 42, tokens: 50_000 } };
  const { session, posted } = setup(backend, new MemoryStore(), async () => hostContext);
  await session.ask('Where is the cache?');
  const request = chatParams(backend.requests[0]);
  assert.equal(request.repository, true);
  assert.equal('repositoryContext' in request, false, 'no repositoryContext field at all');
  assert.ok(posted.some((message) => message.type === 'busy' && message.status === 'Answering with 42 repository files in context…'));
  const finalTurn = posted.filter((message) => message.type === 'turn').at(-1) as Extract<ChatToPanel, { type: 'turn' }>;
  assert.equal(finalTurn.turn.meta?.contextFiles, 42);
});

test("a long prompt's prefill shows as progress in the panel; the answer lists the files the engine put into its prompt", async () => {
  const progress = [
    { done: 4096, total: 14_239, etaMs: 3200 },
    { done: 8192, total: 14_239, etaMs: 1900 },
    { done: 14_239, total: 14_239 },
  ];
  const used = ['src/a.ts', 'lib/b.py', 'README.md'];
  const backend = new ScriptedBackend([['It is ', 'in a.ts.']], false, progress, { contextFiles: 3, contextPaths: used });
  const hostContext: ChatRequestContext = { ...context, repository: { source: 'host', files: 42, tokens: 50_000 } };
  const { session, posted, store } = setup(backend, new MemoryStore(), async () => hostContext);
  await session.ask('Where is it?');
  const statuses = posted.filter((message) => message.type === 'busy' && message.busy).map((message) => (message as { status?: string }).status);
  assert.deepEqual(statuses, [
    'Reading the repository…',
    'Answering with 42 repository files in context…',
    'Reading the context: 4,096 of 14,239 tokens, 3 s left…',
    'Reading the context: 8,192 of 14,239 tokens, 2 s left…',
    'Answering with 42 repository files in context…',
  ]);
  const finalTurn = posted.filter((message) => message.type === 'turn').at(-1) as Extract<ChatToPanel, { type: 'turn' }>;
  // What the engine says it put into the prompt, not the extension's last count.
  assert.equal(finalTurn.turn.meta?.contextFiles, 3);
  assert.deepEqual(finalTurn.turn.meta?.contextPaths, used);
  // Stored with the answer.
  assert.deepEqual(new ChatHistory(store).current.turns.at(-1)?.meta?.contextPaths, used);
});

test('History: an earlier conversation opens in the panel and can be asked on; deleting the one shown empties the panel', async () => {
  const backend = new ScriptedBackend([['a1'], ['a2'], ['a3']]);
  const { session, store, posted } = setup(backend);
  await session.ask('Q1');
  const first = session.conversations[0].id;
  await session.newChat();
  await session.ask('Q2');
  assert.deepEqual(
    session.conversations.map((conversation) => conversation.turns.length),
    [2, 2],
  );

  assert.equal(await session.openConversation(first), true);
  assert.deepEqual(
    session.turns.map((turn) => turn.text),
    ['Q1', 'a1'],
  );
  assert.deepEqual(posted.at(-1), { type: 'conversation', turns: session.turns.map((turn) => ({ ...turn })), busy: false });
  const stored = store.get<{ conversations: { id: string }[] }>(HISTORY_KEY)!;
  assert.equal(stored.conversations[0].id, first, 'the opened conversation is not stored as the current one');
  // Asking goes on in the opened conversation, with its earlier exchange in the prompt.
  await session.ask('Q3');
  assert.deepEqual(
    session.turns.map((turn) => turn.text),
    ['Q1', 'a1', 'Q3', 'a3'],
  );
  assert.ok(
    chatParams(backend.requests[2]).messages.some((message) => message.content === 'a1'),
    'the earlier answer is not in the prompt',
  );
  assert.equal(await session.openConversation('no-such-conversation'), false);

  await session.deleteConversation(first);
  assert.deepEqual(session.turns, []);
  assert.deepEqual(posted.at(-1), { type: 'conversation', turns: [], busy: false });
  assert.deepEqual(
    session.conversations.map((conversation) => conversation.turns.map((turn) => turn.text)),
    [[], ['Q2', 'a2']],
  );
});
