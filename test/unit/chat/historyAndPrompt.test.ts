// History bounds and checks, and the assembly of the chat messages from the conversation and
// the editor context.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Conversation, Turn } from '../../../src/core/chat/conversation';
import { priorExchanges } from '../../../src/core/chat/conversation';
import { bound, ChatHistory, HISTORY_KEY, readHistory } from '../../../src/core/chat/historyStore';
import { parseMentions } from '../../../src/core/chat/mentions';
import { buildChatMessages, clipAround, SYSTEM_PROMPT } from '../../../src/core/chat/promptAssembly';

const turn = (role: Turn['role'], text: string, status: Turn['status'] = 'done'): Turn => ({ id: `${role}-${text}`, role, text, status });
const conversation = (id: string, texts: string[]): Conversation => ({
  id,
  createdAt: 1,
  turns: texts.map((text, i) => turn(i % 2 === 0 ? 'user' : 'assistant', text)),
});

test('the history keeps at most N conversations, M turns each and C characters, dropping the oldest first', () => {
  const many = Array.from({ length: 30 }, (_, i) => conversation(`c${i}`, ['q', 'a']));
  assert.deepEqual(
    bound(many, { conversations: 5, turnsPerConversation: 10, totalChars: 1000 }).map((c) => c.id),
    ['c0', 'c1', 'c2', 'c3', 'c4'],
  );
  const long = conversation(
    'current',
    Array.from({ length: 50 }, (_, i) => `t${i}`),
  );
  assert.deepEqual(
    bound([long], { conversations: 5, turnsPerConversation: 4, totalChars: 1000 })[0].turns.map((t) => t.text),
    ['t46', 't47', 't48', 't49'],
  );
  // Characters: past conversations go first, then the current one's oldest turns.
  const big = [conversation('now', ['x'.repeat(40), 'y'.repeat(40), 'z'.repeat(40)]), conversation('old', ['o'.repeat(50)])];
  const cut = bound(big, { conversations: 5, turnsPerConversation: 10, totalChars: 90 });
  assert.deepEqual(
    cut.map((c) => c.id),
    ['now'],
  );
  assert.deepEqual(
    cut[0].turns.map((t) => t.text[0]),
    ['y', 'z'],
  );
  // One turn alone over the limit keeps its end.
  assert.equal(bound([conversation('one', ['abcdef'])], { conversations: 1, turnsPerConversation: 10, totalChars: 3 })[0].turns[0].text, 'def');
});

test('stored history that is malformed is dropped, not trusted; streaming answers come back stopped', async () => {
  for (const bad of [undefined, null, 3, 'x', [], { version: 2, conversations: [] }, { version: 1, conversations: 'x' }])
    assert.deepEqual(readHistory(bad), []);
  const read = readHistory({
    version: 1,
    conversations: [
      {
        id: 'c',
        createdAt: 5,
        turns: [
          { id: 't1', role: 'user', text: 'q', status: 'done' },
          { id: 't2', role: 'system', text: 'x' },
          { id: 't3', role: 'assistant', text: 'a', status: 'streaming', meta: { promptTokens: 'x' } },
          7,
        ],
      },
      { id: 3, createdAt: 5, turns: [] },
    ],
  });
  assert.deepEqual(read, [
    {
      id: 'c',
      createdAt: 5,
      turns: [
        { id: 't1', role: 'user', text: 'q', status: 'done' },
        { id: 't3', role: 'assistant', text: 'a', status: 'stopped' },
      ],
    },
  ]);

  const values = new Map<string, unknown>();
  const store = {
    get: <T>(key: string) => values.get(key) as T | undefined,
    update: async (key: string, value: unknown) => void values.set(key, JSON.parse(JSON.stringify(value))),
  };
  const history = new ChatHistory(store);
  history.current.turns.push(turn('user', 'q'), turn('assistant', 'partial', 'streaming'));
  await history.save();
  assert.deepEqual(
    (values.get(HISTORY_KEY) as { conversations: Conversation[] }).conversations[0].turns.map((t) => t.status),
    ['done', 'stopped'],
  );
  assert.equal(history.current.turns[1].status, 'streaming', 'saving does not change the live conversation');
});

test('earlier exchanges: failed and empty answers drop their question; the order stays user/assistant', () => {
  const turns = [
    turn('user', 'q1'),
    turn('assistant', 'a1'),
    turn('user', 'q2'),
    turn('assistant', '', 'error'),
    turn('user', 'q3'),
    turn('assistant', 'part', 'stopped'),
    turn('user', 'q4'),
  ];
  assert.deepEqual(priorExchanges(turns), [
    { role: 'user', content: 'q1' },
    { role: 'assistant', content: 'a1' },
    { role: 'user', content: 'q3' },
    { role: 'assistant', content: 'part' },
  ]);
});

test('chat messages: system prompt, newest exchanges that fit, then editor context and the question', () => {
  const history = [turn('user', 'old question'), turn('assistant', 'old answer '.repeat(50)), turn('user', 'recent'), turn('assistant', 'recent answer')];
  const editor = {
    activeFile: { path: 'src/a.py', content: 'def f():\n    return 1\n', language: 'python' },
    selection: { path: 'src/a.py', text: 'return 1', startLine: 2, endLine: 2 },
    attached: [{ path: 'docs/x.md', content: 'has ``` fences' }],
  };
  const roomy = buildChatMessages(history, 'Why 1?', editor, 10_000);
  assert.deepEqual(
    roomy.map((m) => m.role),
    ['system', 'user', 'assistant', 'user', 'assistant', 'user'],
  );
  assert.equal(roomy[0].content, SYSTEM_PROMPT);
  assert.equal(
    roomy.at(-1)!.content,
    'Attached file docs/x.md:\n````\nhas ``` fences\n````\n\n' +
      'Selection in src/a.py, lines 2-2:\n```python\nreturn 1\n```\n\n' +
      'Active file src/a.py:\n```python\ndef f():\n    return 1\n```\n\n' +
      'Why 1?',
  );
  // A tight budget keeps the newest exchange only.
  const tight = buildChatMessages(history, 'Why 1?', editor, 200);
  assert.deepEqual(
    tight.slice(1, -1).map((m) => m.content),
    ['recent', 'recent answer'],
  );
  // No editor context: the question alone.
  assert.equal(buildChatMessages([], 'Hi', { attached: [] }, 100).at(-1)!.content, 'Hi');
});

test('clipAround keeps whole lines around the given line; parseMentions finds #file: paths', () => {
  const text = Array.from({ length: 100 }, (_, i) => `line ${i + 1}`).join('\n');
  const clip = clipAround(text, 50, 60);
  assert.ok(clip.includes('line 50'), clip);
  assert.ok(clip.length <= 60);
  assert.ok(text.includes(clip), 'a contiguous excerpt');
  assert.equal(clipAround(text, 1, 7), 'line 1');
  assert.equal(clipAround('abcdefgh', 1, 3), 'abc');
  assert.deepEqual(parseMentions('see #file:src/a.ts, and #file:b.py? also #file:src/a.ts x#file:no'), ['src/a.ts', 'b.py']);
  assert.deepEqual(parseMentions('#file:README.md'), ['README.md']);
  assert.deepEqual(parseMentions('no mentions #filename'), []);
});
