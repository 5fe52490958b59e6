// Messages between the chat panel and the extension: every valid message passes its parser
// unchanged, anything else (random JSON, wrong types, oversized text) is refused, never thrown.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  MAX_CODE_BUTTONS,
  MAX_ATTACHMENTS,
  MAX_INFO_CHARS,
  MAX_LINE_BEFORE_CHARS,
  MAX_TEXT_CHARS,
  parseChatMessage,
  parsePanelMessage,
  type ChatToPanel,
  type PanelToChat,
} from '../../../src/core/chat/chatMessages';

const panelMessages: PanelToChat[] = [
  { type: 'ready' },
  { type: 'ask', text: 'Where is the KV cache trimmed?', attachments: [] },
  { type: 'ask', text: 'and here? #file:src/a.ts', attachments: ['src/b.ts', 'README.md'] },
  { type: 'stop' },
  { type: 'regenerate' },
  { type: 'selectModel' },
  { type: 'pickAttachment' },
  { type: 'openFile', path: 'src/kvCache.ts' },
  { type: 'openFile', path: 'frontend/src/app (2).tsx' },
  { type: 'codeAction', action: 'copy', code: 'const a = 1;\n', language: 'ts' },
  { type: 'codeAction', action: 'insert', code: 'x', language: '' },
  { type: 'codeAction', action: 'newFile', code: 'print(1)', language: 'python' },
  { type: 'codeAction', action: 'apply', code: 'trim() {}\n', language: 'ts', info: 'ts src/kvCache.ts', lineBefore: 'In `src/kvCache.ts`:' },
  { type: 'codeAction', action: 'apply', code: 'x', language: '', info: '', lineBefore: '' },
  { type: 'codeAction', action: 'apply', code: 'x', language: '' },
  {
    type: 'rendered',
    turns: [
      { role: 'user', text: 'q' },
      { role: 'assistant', text: 'a' },
    ],
    visibleText: 'You q Tidal a',
  },
  {
    type: 'rendered',
    turns: [{ role: 'assistant', text: '```ts\nx' }],
    visibleText: 'Tidal x',
    draft: '',
    codeButtons: [
      { block: 0, action: 'copy', disabled: false },
      { block: 0, action: 'apply', disabled: true },
    ],
  },
];

const chatMessages: ChatToPanel[] = [
  { type: 'engine', summary: 'tidal-code-mini · llama · CPU' },
  { type: 'conversation', turns: [], busy: false },
  {
    type: 'conversation',
    busy: true,
    turns: [
      { id: 'u1', role: 'user', text: 'q', status: 'done', attachments: ['a.ts'] },
      { id: 'a1', role: 'assistant', text: '', status: 'streaming' },
    ],
  },
  { type: 'turn', turn: { id: 'a1', role: 'assistant', text: 'x', status: 'error', error: 'failed' } },
  { type: 'delta', id: 'a1', text: 'tok' },
  { type: 'busy', busy: true, status: 'Reading the repository…' },
  { type: 'busy', busy: false },
  { type: 'attach', paths: ['src/kvCache.ts'] },
  { type: 'notice', text: 'Stop it first.' },
  { type: 'codeButton', action: 'apply', block: 0 },
  { type: 'codeButton', action: 'copy', block: 3 },
];

test('every message of either direction passes its parser unchanged (after a JSON round trip)', () => {
  for (const message of panelMessages) assert.deepEqual(parsePanelMessage(JSON.parse(JSON.stringify(message))), message);
  for (const message of chatMessages) assert.deepEqual(parseChatMessage(JSON.parse(JSON.stringify(message))), message);
  // An ask without attachments (older panels) gets an empty list.
  assert.deepEqual(parsePanelMessage({ type: 'ask', text: 'q' }), { type: 'ask', text: 'q', attachments: [] });
});

test('malformed messages are refused', () => {
  const badPanel: unknown[] = [
    null,
    undefined,
    42,
    'ask',
    [],
    {},
    { type: 'nope' },
    { type: 'ask' },
    { type: 'ask', text: 7 },
    { type: 'ask', text: 'x'.repeat(MAX_TEXT_CHARS + 1) },
    { type: 'ask', text: 'q', attachments: 'src/a.ts' },
    { type: 'ask', text: 'q', attachments: [''] },
    { type: 'ask', text: 'q', attachments: [1] },
    { type: 'ask', text: 'q', attachments: Array.from({ length: MAX_ATTACHMENTS + 1 }, (_, i) => `f${i}`) },
    { type: 'codeAction', action: 'delete', code: 'x', language: '' },
    { type: 'codeAction', action: 'copy', code: 3, language: '' },
    { type: 'codeAction', action: 'copy', code: 'x', language: 'l'.repeat(65) },
    { type: 'codeAction', action: 'Apply', code: 'x', language: '' },
    { type: 'codeAction', action: 'apply', code: 'x', language: '', info: 7 },
    { type: 'codeAction', action: 'apply', code: 'x', language: '', info: ['ts'] },
    { type: 'codeAction', action: 'apply', code: 'x', language: '', lineBefore: null },
    { type: 'codeAction', action: 'apply', code: 'x', language: '', info: 'i'.repeat(MAX_INFO_CHARS + 1) },
    { type: 'codeAction', action: 'apply', code: 'x', language: '', lineBefore: 'l'.repeat(MAX_LINE_BEFORE_CHARS + 1) },
    { type: 'rendered', turns: [{ role: 'system', text: 'x' }], visibleText: '' },
    { type: 'rendered', turns: 'x', visibleText: '' },
    { type: 'rendered', turns: [] },
    { type: 'rendered', turns: [], visibleText: '', codeButtons: [{ block: 0, action: 'delete', disabled: false }] },
    { type: 'rendered', turns: [], visibleText: '', codeButtons: [{ block: -1, action: 'copy', disabled: false }] },
    { type: 'rendered', turns: [], visibleText: '', codeButtons: [{ block: 0, action: 'copy', disabled: 'no' }] },
    { type: 'rendered', turns: [], visibleText: '', codeButtons: 'copy' },
    {
      type: 'rendered',
      turns: [],
      visibleText: '',
      codeButtons: Array.from({ length: MAX_CODE_BUTTONS + 1 }, () => ({ block: 0, action: 'copy', disabled: false })),
    },
  ];
  for (const value of badPanel) assert.equal(parsePanelMessage(value), undefined, JSON.stringify(value)?.slice(0, 80));
  const badChat: unknown[] = [
    null,
    { type: 'delta', id: 'a' },
    { type: 'turn', turn: { id: 'a', role: 'assistant', text: 'x', status: 'thinking' } },
    { type: 'turn', turn: { id: 'a', role: 'system', text: 'x', status: 'done' } },
    { type: 'conversation', turns: [{}], busy: false },
    { type: 'conversation', turns: [] },
    { type: 'busy', busy: 'yes' },
    { type: 'attach', paths: [3] },
    { type: 'engine' },
    { type: 'codeButton', action: 'apply' },
    { type: 'codeButton', action: 'apply', block: -1 },
    { type: 'codeButton', action: 'apply', block: 1.5 },
    { type: 'codeButton', action: 'apply', block: '0' },
    { type: 'codeButton', action: 'delete', block: 0 },
  ];
  for (const value of badChat) assert.equal(parseChatMessage(value), undefined, JSON.stringify(value));
});

test('random values never throw and are either refused or a well-formed message', () => {
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const types = [
    'ready',
    'ask',
    'stop',
    'regenerate',
    'selectModel',
    'pickAttachment',
    'codeAction',
    'codeButton',
    'rendered',
    'engine',
    'conversation',
    'turn',
    'delta',
    'busy',
    'attach',
    'notice',
  ];
  const value = (depth: number): unknown => {
    const pick = Math.floor(random() * 8);
    if (depth > 2) return pick % 2 === 0 ? 'text' : 3;
    switch (pick) {
      case 0:
        return null;
      case 1:
        return random() > 0.5;
      case 2:
        return Math.floor(random() * 100) - 50;
      case 3:
        return ['', 'x', 'copy', 'apply', 'user', 'assistant', 'done', 'streaming'][Math.floor(random() * 8)];
      case 4:
        return Array.from({ length: Math.floor(random() * 3) }, () => value(depth + 1));
      default: {
        const record: Record<string, unknown> = { type: types[Math.floor(random() * types.length)] };
        for (const key of [
          'text',
          'attachments',
          'action',
          'code',
          'language',
          'info',
          'lineBefore',
          'block',
          'turns',
          'visibleText',
          'summary',
          'busy',
          'turn',
          'id',
          'paths',
          'status',
          'role',
        ]) {
          if (random() < 0.4) record[key] = value(depth + 1);
        }
        return record;
      }
    }
  };
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    const candidate = value(0);
    const panel = parsePanelMessage(candidate);
    const chat = parseChatMessage(candidate);
    if (panel) {
      accepted++;
      assert.deepEqual(parsePanelMessage(JSON.parse(JSON.stringify(panel))), panel);
    }
    if (chat) {
      accepted++;
      assert.deepEqual(parseChatMessage(JSON.parse(JSON.stringify(chat))), chat);
    }
  }
  assert.ok(accepted > 100, `only ${accepted} random messages were well formed`);
});

test('openFile needs a non-empty path of at most 4096 characters', () => {
  assert.equal(parsePanelMessage({ type: 'openFile', path: '' }), undefined);
  assert.equal(parsePanelMessage({ type: 'openFile' }), undefined);
  assert.equal(parsePanelMessage({ type: 'openFile', path: 7 }), undefined);
  assert.equal(parsePanelMessage({ type: 'openFile', path: 'a'.repeat(4097) }), undefined);
  assert.deepEqual(parsePanelMessage({ type: 'openFile', path: 'a'.repeat(4096) }), { type: 'openFile', path: 'a'.repeat(4096) });
});
