// The History quick pick's data: one item per saved conversation with turns, most recent first,
// titled by its first question, with when it started and its turn count; opening one makes it
// the conversation shown (an empty one shown before is dropped), deleting one removes it.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Conversation, Turn } from '../../../src/core/chat/conversation';
import { historyItems, startedAt, turnCount } from '../../../src/core/chat/historyItems';
import { ChatHistory, HISTORY_KEY, type StateStore } from '../../../src/core/chat/historyStore';

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

const turn = (role: Turn['role'], text: string): Turn => ({ id: `${role}-${text}`, role, text, status: 'done' });
const conversation = (id: string, createdAt: Date, ...questions: string[]): Conversation => ({
  id,
  createdAt: createdAt.getTime(),
  turns: questions.flatMap((question) => [turn('user', question), turn('assistant', `answer to ${question}`)]),
});

// Local times, as the quick pick shows them.
const now = new Date(2026, 11, 5, 21, 30).getTime();

test('when a conversation started: today, yesterday, else the date, in local time', () => {
  assert.equal(startedAt(new Date(2026, 11, 5, 9, 5).getTime(), now), 'today, 09:05');
  assert.equal(startedAt(new Date(2026, 11, 4, 23, 59).getTime(), now), 'yesterday, 23:59');
  assert.equal(startedAt(new Date(2026, 11, 3, 14, 0).getTime(), now), '2026-12-03 14:00');
  // Across a month and a year boundary.
  assert.equal(startedAt(new Date(2026, 0, 1, 0, 0).getTime(), new Date(2026, 0, 2, 8, 0).getTime()), 'yesterday, 00:00');
  assert.equal(startedAt(new Date(2025, 11, 31, 7, 1).getTime(), new Date(2026, 0, 1, 8, 0).getTime()), 'yesterday, 07:01');
  assert.equal(startedAt(new Date(2025, 11, 30, 7, 1).getTime(), new Date(2026, 0, 1, 8, 0).getTime()), '2025-12-30 07:01');
  assert.equal(turnCount(1), '1 turn');
  assert.equal(turnCount(4), '4 turns');
});

test('items: conversations with turns, in stored order, titled by the first question; the shown one is marked', () => {
  const long = `Why ${'does the cache '.repeat(6)}grow?`;
  const conversations = [
    { id: 'empty', createdAt: now, turns: [] },
    conversation('c2', new Date(2026, 11, 5, 20, 15), 'Where is the KV cache trimmed?', 'And on save?'),
    conversation('c1', new Date(2026, 11, 1, 8, 0), `${long}\n\nsecond line`),
  ];
  const items = historyItems(conversations, 'c2', now);
  assert.deepEqual(
    items.map((item) => item.id),
    ['c2', 'c1'],
  );
  assert.deepEqual(items[0], { id: 'c2', label: 'Where is the KV cache trimmed?', description: 'today, 20:15 · 4 turns · open now', current: true });
  assert.equal(items[1].description, '2026-12-01 08:00 · 2 turns');
  assert.equal(items[1].current, false);
  // One line, cut to 60 characters.
  assert.ok(items[1].label.length <= 60 && !items[1].label.includes('\n') && items[1].label.endsWith('…'), items[1].label);
  assert.deepEqual(historyItems([{ id: 'empty', createdAt: now, turns: [] }], 'empty', now), []);
});

test('open: the picked conversation becomes the one shown; an empty one shown before is dropped, a full one kept', async () => {
  const store = new MemoryStore();
  const history = new ChatHistory(store);
  history.current.turns.push(turn('user', 'first'), turn('assistant', 'one'));
  const first = history.current.id;
  const second = history.startNew();
  second.turns.push(turn('user', 'second'));
  const empty = history.startNew();
  assert.deepEqual(
    history.all.map((c) => c.id),
    [empty.id, second.id, first],
  );

  assert.equal(history.open(first), true);
  assert.deepEqual(
    history.all.map((c) => c.id),
    [first, second.id],
    'the empty conversation was kept',
  );
  assert.equal(history.open(second.id), true);
  assert.deepEqual(
    history.all.map((c) => c.id),
    [second.id, first],
    'a conversation with turns was lost',
  );
  assert.equal(history.open(second.id), true);
  assert.equal(history.open('no-such-conversation'), false);
  assert.deepEqual(
    history.all.map((c) => c.id),
    [second.id, first],
  );
  await history.save();
  assert.deepEqual(
    new ChatHistory(store).all.map((c) => c.id),
    [second.id, first],
    'the order is not what was stored',
  );
});

test('remove: a past conversation goes; removing the one shown leaves a new, empty one shown', async () => {
  const store = new MemoryStore();
  const history = new ChatHistory(store);
  history.current.turns.push(turn('user', 'a'));
  const a = history.current.id;
  const b = history.startNew();
  b.turns.push(turn('user', 'b'));
  const c = history.startNew();
  c.turns.push(turn('user', 'c'));

  assert.equal(history.remove(b.id), true);
  assert.deepEqual(
    history.all.map((x) => x.id),
    [c.id, a],
  );
  assert.equal(history.remove(c.id), true);
  assert.equal(history.current.turns.length, 0);
  assert.notEqual(history.current.id, c.id);
  assert.deepEqual(
    history.all.slice(1).map((x) => x.id),
    [a],
  );
  assert.equal(history.remove('no-such-conversation'), false);
  await history.save();
  const stored = store.get<{ conversations: { id: string }[] }>(HISTORY_KEY)!;
  assert.deepEqual(stored.conversations.map((x) => x.id).slice(1), [a]);
});
