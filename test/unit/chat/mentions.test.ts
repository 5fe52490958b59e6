// Mentions in the chat composer: the ids a question names, the mention being typed, the
// completion list, the Problems lines, and the prompt with attachments cut to the token budget.
// Fixed cases first, then seeded random inputs checked against simple reference versions.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { random as seededRandom } from '../seededRandom';
import { parseChatMessage, parsePanelMessage } from '../../../src/core/chat/chatMessages';
import { attachmentLabel, CONTEXT_MENTIONS, mentionCandidates, mentionQueryAt, parseMentions, splitAttachments } from '../../../src/core/chat/mentions';
import { formatProblem, formatProblems, type Problem, type ProblemSeverity } from '../../../src/core/chat/problems';
import { buildChatMessages, cutBlock, SYSTEM_PROMPT, type EditorContext } from '../../../src/core/chat/promptAssembly';

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)];
const CONTEXT_IDS = Object.keys(CONTEXT_MENTIONS);

test('parseMentions: #file: paths and the context ids as whole words, in order, once each', () => {
  assert.deepEqual(parseMentions('see #file:src/a.ts, with #selection and #problems. Also #diff? #file:src/a.ts'), [
    'src/a.ts',
    '#selection',
    '#problems',
    '#diff',
  ]);
  assert.deepEqual(parseMentions('#problems:workspace then #problems:'), ['#problems:workspace', '#problems']);
  assert.deepEqual(parseMentions('x#selection #selections #Diff #file: #filename'), []);
  assert.deepEqual(parseMentions('(#diff)'), [], 'a mention follows white space or starts the text');
});

test('parseMentions: random questions, against a word-by-word reference', () => {
  const random = seededRandom(23);
  const words = ['how', 'does', 'this', 'work', '#', '#sel', '@selection', 'x#diff', '#file:', 'a.ts'];
  const paths = ['src/a.ts', 'README.md', 'lib/x-y.py', 'd/e/f.c'];
  for (let round = 0; round < 500; round++) {
    const parts: string[] = [];
    const expected: string[] = [];
    for (let i = Math.floor(random() * 12); i > 0; i--) {
      const kind = random();
      const punctuation = random() < 0.3 ? pick(random, ['.', ',', '?', ')', '!']) : '';
      if (kind < 0.25) {
        const path = pick(random, paths);
        parts.push(`#file:${path}${punctuation}`);
        if (!expected.includes(path)) expected.push(path);
      } else if (kind < 0.45) {
        const id = pick(random, CONTEXT_IDS);
        parts.push(`${id}${punctuation}`);
        if (!expected.includes(id)) expected.push(id);
      } else parts.push(pick(random, words));
    }
    const separators = parts.map(() => pick(random, [' ', '\n', '  ', '\t']));
    const question = parts.map((part, i) => (i === 0 ? part : separators[i] + part)).join('');
    assert.deepEqual(parseMentions(question), expected, JSON.stringify(question));
  }
});

test('splitAttachments and labels: files in order, editor state as flags; workspace problems win', () => {
  assert.deepEqual(splitAttachments(['a.ts', '#selection', '#problems', 'a.ts', '#problems:workspace', '#diff', 'b.ts']), {
    files: ['a.ts', 'b.ts'],
    selection: true,
    problems: 'workspace',
    gitDiff: true,
  });
  assert.deepEqual(splitAttachments(['#problems']), { files: [], selection: false, problems: 'activeFile', gitDiff: false });
  assert.equal(attachmentLabel('#diff'), 'Git diff');
  assert.equal(attachmentLabel('src/#diff'), 'src/#diff');
});

/** The mention at `cursor`, found by walking back from it. */
function referenceQuery(text: string, cursor: number): { start: number; query: string } | undefined {
  for (let i = cursor - 1; i >= 0; i--) {
    if (/\s/.test(text[i])) return undefined;
    if ((text[i] === '#' || text[i] === '@') && (i === 0 || /\s/.test(text[i - 1]))) {
      const query = text.slice(i + 1, cursor);
      return { start: i, query: query.startsWith('file:') ? query.slice(5) : query };
    }
  }
  return undefined;
}

test('mentionQueryAt: the # or @ word before the cursor, on random texts and cursors', () => {
  assert.deepEqual(mentionQueryAt('see #src/a', 10), { start: 4, query: 'src/a' });
  assert.deepEqual(mentionQueryAt('@', 1), { start: 0, query: '' });
  assert.deepEqual(mentionQueryAt('#file:kv', 8), { start: 0, query: 'kv' });
  assert.equal(mentionQueryAt('a#b', 3), undefined);
  assert.equal(mentionQueryAt('#ab cd', 6), undefined);
  const random = seededRandom(5);
  const alphabet = ['a', 'b', '#', '@', ' ', '\n', '/', '.', ':', 'f', 'i', 'l', 'e'];
  for (let round = 0; round < 3000; round++) {
    const text = Array.from({ length: Math.floor(random() * 14) }, () => pick(random, alphabet)).join('');
    const cursor = Math.floor(random() * (text.length + 1));
    const expected = referenceQuery(text, cursor);
    // The reference returns at the nearest # or @ that starts a word; a nearer one inside a word is skipped.
    assert.deepEqual(mentionQueryAt(text, cursor), expected, JSON.stringify([text, cursor]));
  }
});

test('mentionCandidates: context ids first, then paths holding the query in order, best matches first', () => {
  const paths = ['src/kvCache.ts', 'test/kv/cache.test.ts', 'docs/kv.md', 'src/select_top_k.py', 'kvCache.ts'];
  const found = mentionCandidates('kvc', paths).map((item) => item.id);
  assert.deepEqual(found, ['kvCache.ts', 'src/kvCache.ts', 'test/kv/cache.test.ts']);
  assert.deepEqual(
    mentionCandidates('sel', []).map((item) => item.id),
    ['#selection'],
  );
  assert.deepEqual(
    mentionCandidates('prob', []).map((item) => item.id),
    ['#problems', '#problems:workspace'],
  );
  assert.equal(mentionCandidates('', paths, 3).length, 3);

  const random = seededRandom(11);
  const letters = 'abcdk/._';
  for (let round = 0; round < 300; round++) {
    const pool = Array.from({ length: 1 + Math.floor(random() * 30) }, () =>
      Array.from({ length: 1 + Math.floor(random() * 12) }, () => pick(random, [...letters])).join(''),
    );
    const query = Array.from({ length: Math.floor(random() * 3) }, () => pick(random, [...letters])).join('');
    const limit = 1 + Math.floor(random() * 40);
    const items = mentionCandidates(query, pool, limit).filter((item) => !item.id.startsWith('#'));
    const holds = (path: string) => {
      let at = 0;
      for (const char of path.toLowerCase()) if (char === query[at]) at += 1;
      return at === query.length;
    };
    const expected = [...new Set(pool)].filter(holds);
    assert.ok(items.length <= limit);
    assert.ok(
      items.every((item) => holds(item.id)),
      `${query}: ${JSON.stringify(items)}`,
    );
    if (mentionCandidates(query, [], limit).length === 0) assert.equal(items.length, Math.min(limit, expected.length));
    // A file name that starts with the query is never ranked after one that does not.
    const starts = items.map((item) => item.id.slice(item.id.lastIndexOf('/') + 1).startsWith(query));
    assert.ok(starts.indexOf(false) === -1 || starts.lastIndexOf(true) < starts.indexOf(false), `${query}: ${JSON.stringify(items)}`);
  }
});

test('formatProblems: one line each, path:line severity: message [source code], errors first, the rest counted', () => {
  assert.equal(formatProblems([]), 'No problems reported.');
  assert.equal(
    formatProblem({ path: 'a.py', line: 3, severity: 'warning', message: 'unused\n  import', source: 'pylint', code: 'W0611' }),
    'a.py:3 warning: unused import [pylint W0611]',
  );
  const random = seededRandom(7);
  const severities: ProblemSeverity[] = ['error', 'warning', 'info', 'hint'];
  for (let round = 0; round < 200; round++) {
    const problems: Problem[] = Array.from({ length: Math.floor(random() * 30) }, () => ({
      path: pick(random, ['src/a.ts', 'src/b.py', 'z.c']),
      line: 1 + Math.floor(random() * 500),
      severity: pick(random, severities),
      message: pick(random, ['x is unused', 'type mismatch\nexpected int', '  missing ;  ']),
      ...(random() < 0.5 ? { source: 'ts' } : {}),
    }));
    const maxLines = Math.floor(random() * 40);
    const lines = formatProblems(problems, maxLines).split('\n');
    if (problems.length === 0) continue;
    const shown = Math.min(maxLines, problems.length);
    const rest = problems.length - shown;
    assert.equal(lines.length, shown + (rest > 0 ? 1 : 0));
    if (rest > 0) assert.match(lines.at(-1)!, new RegExp(`^… and ${rest} more problems?$`));
    const ranks = lines.slice(0, shown).map((line) => {
      const match = /^(\S+):(\d+) (error|warning|info|hint): (\S.*\S)$/.exec(line);
      assert.ok(match, line);
      assert.ok(!line.includes('\n'));
      return severities.indexOf(match[3] as ProblemSeverity);
    });
    assert.deepEqual(
      ranks,
      [...ranks].sort((a, b) => a - b),
      'errors first',
    );
    // What is shown are the most severe ones.
    const cutoff = problems.map((p) => severities.indexOf(p.severity)).sort((a, b) => a - b)[shown - 1];
    if (shown > 0) assert.equal(ranks.at(-1), cutoff);
  }
});

test('prompt with attachments: headers ahead of the question, in order, and the git diff when it was attached', () => {
  const editor: EditorContext = {
    activeFile: { path: 'src/a.py', content: 'def f():\n    return 1\n', language: 'python' },
    selection: { path: 'src/a.py', text: 'return 1', startLine: 2, endLine: 2 },
    selectionAttached: true,
    attached: [{ path: 'lib/b.ts', content: 'export const b = 2;\n' }],
    attachedText: [
      { label: 'Problems in src/a.py', title: 'Problems in src/a.py (VS Code diagnostics)', text: 'src/a.py:2 error: bad' },
      { label: 'Git diff', title: 'Git diff', text: 'Not available: no git repository is open in this workspace.' },
    ],
  };
  const notes: string[] = [];
  const content = buildChatMessages([], 'Why?', editor, 10_000, notes).at(-1)!.content;
  assert.deepEqual(notes, []);
  const headers = [
    'Attached file lib/b.ts:',
    'Attached selection in src/a.py, lines 2-2:',
    'Problems in src/a.py (VS Code diagnostics):',
    'Git diff:',
    'Active file src/a.py:',
  ];
  const at = headers.map((header) => content.indexOf(header));
  assert.ok(
    at.every((index) => index >= 0),
    content,
  );
  assert.deepEqual(
    at,
    [...at].sort((a, b) => a - b),
    content,
  );
  assert.ok(content.endsWith('\n\nWhy?'));
  assert.ok(content.includes('```\nsrc/a.py:2 error: bad\n```'));
});

test('cutBlock: at most maxChars, the start of the text, the marker with the counts; nothing under 200 characters', () => {
  const random = seededRandom(3);
  for (let round = 0; round < 500; round++) {
    const lines = Array.from(
      { length: Math.floor(random() * 200) },
      (_, i) => `line ${i} ${'x'.repeat(Math.floor(random() * 80))}${random() < 0.05 ? '```' : ''}`,
    );
    const content = lines.join('\n');
    const maxChars = Math.floor(random() * 4000);
    const cut = cutBlock('Attached file', 'a.ts', content, 'ts', maxChars);
    if (cut === undefined) continue;
    assert.ok(cut.block.length <= maxChars, `${cut.block.length} > ${maxChars}`);
    assert.ok(cut.shown >= 200 && cut.shown <= content.length);
    const body = cut.block.slice(cut.block.indexOf('\n') + 1);
    assert.ok(body.slice(body.indexOf('\n') + 1).startsWith(content.slice(0, cut.shown)));
    assert.ok(cut.block.includes(`${cut.shown.toLocaleString('en-US')} of ${content.length.toLocaleString('en-US')} characters shown]`));
  }
  assert.equal(cutBlock('Attached file', 'a.ts', 'x'.repeat(10_000), undefined, 150), undefined);
});

test('prompt budget: random attachments and budgets; each whole, cut with a marker, or left out, and the user is told', () => {
  const random = seededRandom(42);
  for (let round = 0; round < 400; round++) {
    const text = (n: number) => Array.from({ length: n }, (_, i) => `${i}: ${'abc def '.repeat(1 + Math.floor(random() * 6))}`).join('\n');
    const files = Array.from({ length: Math.floor(random() * 4) }, (_, i) => ({ path: `src/f${i}.ts`, content: text(Math.floor(random() * 120)) }));
    const selection = random() < 0.5 ? { path: 'src/a.py', text: text(1 + Math.floor(random() * 60)), startLine: 1, endLine: 9 } : undefined;
    const problems =
      random() < 0.5
        ? [{ label: 'Problems in the workspace', title: 'Problems in the workspace (VS Code diagnostics)', text: text(Math.floor(random() * 80)) }]
        : [];
    const editor: EditorContext = { selection, selectionAttached: selection !== undefined, attached: files, attachedText: problems };
    const question = 'What is wrong here?';
    const budgetTokens = 100 + Math.floor(random() * 3000);
    const notes: string[] = [];
    const user = buildChatMessages([], question, editor, budgetTokens, notes).at(-1)!.content;
    assert.ok(user.endsWith(question));
    // Within the budget: the attachments and their separators take what is left after the system prompt and the question.
    const budgetChars = budgetTokens * 3 - SYSTEM_PROMPT.length - question.length;
    assert.ok(user.length - question.length <= Math.max(0, budgetChars), `${user.length - question.length} > ${budgetChars}`);
    const attachments = [
      ...files.map((file) => ({ label: file.path, content: file.content, header: `Attached file ${file.path}` })),
      ...(selection ? [{ label: 'Selection (src/a.py, lines 1-9)', content: selection.text, header: 'Attached selection in src/a.py, lines 1-9' }] : []),
      ...problems.map((p) => ({ label: p.label, content: p.text, header: p.title })),
    ];
    let said = 0;
    for (const attachment of attachments) {
      const note = notes.find((line) => line.startsWith(`${attachment.label}:`));
      if (user.includes(`${attachment.header}:\n`)) {
        assert.equal(note, undefined, `${attachment.label} is whole but the user is told otherwise`);
        assert.ok(user.includes(attachment.content), `${attachment.label} is whole`);
      } else if (user.includes(`${attachment.header} (cut to fit):\n`)) {
        assert.match(note ?? '', /cut to fit the context \([\d,]+ of [\d,]+ characters\)/);
        assert.match(user, new RegExp(`of ${attachment.content.length.toLocaleString('en-US')} characters shown\\]`));
        said += 1;
      } else {
        assert.match(note ?? '', /left out/, `${attachment.label}: neither in the prompt nor said to be left out`);
        said += 1;
      }
    }
    assert.equal(notes.length, said);
  }
});

test('composer messages: files, chips and composer actions are checked', () => {
  assert.deepEqual(parsePanelMessage({ type: 'listFiles' }), { type: 'listFiles' });
  assert.deepEqual(parsePanelMessage({ type: 'chips', attachments: ['#selection', 'a.ts'] }), { type: 'chips', attachments: ['#selection', 'a.ts'] });
  assert.equal(parsePanelMessage({ type: 'chips', attachments: [3] }), undefined);
  assert.deepEqual(parseChatMessage({ type: 'files', paths: ['a.ts', 'b/c.py'] }), { type: 'files', paths: ['a.ts', 'b/c.py'] });
  assert.equal(parseChatMessage({ type: 'files', paths: 'a.ts' }), undefined);
  assert.deepEqual(parseChatMessage({ type: 'composer', remove: '#diff', submit: true }), { type: 'composer', remove: '#diff', submit: true });
  assert.equal(parseChatMessage({ type: 'composer', submit: 'yes' }), undefined);
  assert.equal(parseChatMessage({ type: 'composer', text: 5 }), undefined);
  assert.deepEqual(parseChatMessage({ type: 'composer', text: '#kv', press: 'Tab' }), { type: 'composer', text: '#kv', press: 'Tab' });
  assert.equal(parseChatMessage({ type: 'composer', press: 'Delete' }), undefined);
  assert.deepEqual(parsePanelMessage({ type: 'chips', attachments: [], offered: ['#selection'] }), { type: 'chips', attachments: [], offered: ['#selection'] });
  assert.equal(parsePanelMessage({ type: 'chips', attachments: [], offered: [''] }), undefined);
});
