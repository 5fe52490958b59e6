// The context-menu commands on a selection, through to the chat messages sent: "Ask Tidal about
// the selection", "Explain" and "Add to Tidal chat" quote the selected code in the question, and
// the chat's editor context (gatherChatContext) then leaves its own copy out, so the code is in
// the prompt exactly once. The chat's selection ends on whole lines as the commands' quote does.
// Runs over a stand-in for the few `vscode` parts these modules use.
import Module from 'node:module';
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

interface FakeUri {
  scheme: string;
  authority: string;
  path: string;
  fsPath: string;
}
interface FakePosition {
  line: number;
  character: number;
}

const fileUri = (path: string): FakeUri => ({ scheme: 'file', authority: '', path, fsPath: path });
const offsetOf = (text: string, position: FakePosition) =>
  text.split('\n').slice(0, position.line).join('\n').length + (position.line > 0 ? 1 : 0) + position.character;

/** An editor on `text` with the selection from `start` to `end`. */
function fakeEditor(uri: FakeUri, text: string, start: FakePosition, end: FakePosition, languageId = 'typescript') {
  const selection = { start, end, isEmpty: start.line === end.line && start.character === end.character };
  const document = {
    uri,
    fileName: uri.fsPath,
    isUntitled: false,
    languageId,
    getText: (range?: { start: FakePosition; end: FakePosition }) => (range ? text.slice(offsetOf(text, range.start), offsetOf(text, range.end)) : text),
  };
  return { document, selection };
}

const state = {
  editor: undefined as ReturnType<typeof fakeEditor> | undefined,
  folders: [] as { uri: FakeUri; name: string; index: number }[],
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  inputBoxAnswer: undefined as string | undefined,
  shown: [] as string[],
};

const fakeVscode = {
  FileType: { File: 1, Directory: 2 },
  DiagnosticSeverity: { Error: 0, Warning: 1, Information: 2, Hint: 3 },
  Uri: { joinPath: (base: FakeUri, ...parts: string[]) => fileUri([base.path, ...parts].join('/')) },
  window: {
    get activeTextEditor() {
      return state.editor;
    },
    showInformationMessage: async (message: string) => void state.shown.push(message),
    showInputBox: async () => state.inputBoxAnswer,
  },
  workspace: {
    get workspaceFolders() {
      return state.folders;
    },
    name: undefined,
    textDocuments: [],
    asRelativePath: (uri: FakeUri) => uri.path,
    getConfiguration: () => ({ get: () => undefined }),
  },
  commands: {
    registerCommand: (id: string, handler: (...args: unknown[]) => unknown) => {
      state.commands.set(id, handler);
      return { dispose() {} };
    },
  },
};
const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const load = loader._load;
loader._load = function (request: string, ...rest: unknown[]) {
  return request === 'vscode' ? fakeVscode : load.call(this, request, ...rest);
};

/* eslint-disable @typescript-eslint/no-require-imports */
const { registerSelectionCommands } = require('../../../src/vscode/selectionCommands') as typeof import('../../../src/vscode/selectionCommands');
const { gatherChatContext } = require('../../../src/vscode/vscodeChatContext') as typeof import('../../../src/vscode/vscodeChatContext');
/* eslint-enable @typescript-eslint/no-require-imports */
import { buildChatMessages } from '../../../src/core/chat/promptAssembly';
import { DEFAULT_SETTINGS, type TidalSettings } from '../../../src/vscode/settings';
import type { ChatViewProvider } from '../../../src/vscode/chatViewProvider';
import type { ModelController } from '../../../src/vscode/modelController';
import { NO_REPOSITORY } from '../../../src/core/backend/repositoryPart';

const SOURCE = [
  'export function total(items: number[]): number {',
  '  let sum = 0;',
  '  for (const item of items) sum += item;',
  '  return sum;',
  '}',
  '',
  'export const answer = total([1, 2, 3]);',
  '',
].join('\n');
/** Lines 2-4 of SOURCE, as selected from column 0 of line 2 to column 0 of line 5. */
const LOOP = '  let sum = 0;\n  for (const item of items) sum += item;\n  return sum;\n';

// The remote backend: gatherChatContext asks nothing of the model then.
const settings: TidalSettings = { ...DEFAULT_SETTINGS, backend: 'remote' };
const model = {} as ModelController;
const repositoryPart = async () => NO_REPOSITORY;

/** What the chat does with a question: gathers the editor context, then builds the messages. */
async function promptFor(question: string, attachments: string[] = []): Promise<string> {
  const context = await gatherChatContext(attachments, state.editor as never, model, repositoryPart, settings);
  const messages = buildChatMessages([], question.trim(), context.editor, context.conversationBudgetTokens);
  return messages[messages.length - 1].content;
}

const occurrences = (text: string, part: string) => text.split(part).length - 1;
/** Times the prompt has the selected lines outside the active file's block (which holds them as any file does). */
const selectionCount = (prompt: string) => occurrences(prompt.replace(`\n${SOURCE}`, '\n'), LOOP);

/** The commands over a chat that records what it is asked and given. */
function registerCommands() {
  const asked: string[] = [];
  const drafts: string[] = [];
  const chat = {
    ask: async (question: string) => void asked.push(question),
    addToDraft: async (text: string) => void drafts.push(text),
  } as unknown as ChatViewProvider;
  registerSelectionCommands(chat);
  const run = (id: string, ...args: unknown[]) => state.commands.get(id)!(...args);
  return { asked, drafts, run };
}

beforeEach(() => {
  state.folders = [{ uri: fileUri('/work/app'), name: 'app', index: 0 }];
  state.editor = fakeEditor(fileUri('/work/app/src/total.ts'), SOURCE, { line: 1, character: 0 }, { line: 4, character: 0 });
  state.commands.clear();
  state.inputBoxAnswer = undefined;
  state.shown.length = 0;
});

test('Ask Tidal about the selection: the selected code is in the prompt once, with the question', async () => {
  const { asked, run } = registerCommands();
  await run('tidal.askAboutSelection', 'Why start the sum at 0?');
  assert.equal(asked.length, 1);
  assert.match(asked[0], /^Why start the sum at 0\?\n\nsrc\/total\.ts \(lines 2-4\):\n```typescript\n/);
  const prompt = await promptFor(asked[0]);
  assert.equal(selectionCount(prompt), 1, prompt);
  assert.equal(occurrences(prompt, 'Selection in'), 0, prompt);
  // The active file is still there, as for any question.
  assert.match(prompt, /Active file src\/total\.ts/);
});

test('Ask Tidal about the selection: the question typed in the input box', async () => {
  const { asked, run } = registerCommands();
  state.inputBoxAnswer = 'What does this return for []?';
  await run('tidal.askAboutSelection');
  assert.equal(asked.length, 1);
  assert.equal(selectionCount(await promptFor(asked[0])), 1);
});

test('Explain: the selected code is in the prompt once', async () => {
  const { asked, run } = registerCommands();
  await run('tidal.explainSelection');
  assert.equal(asked.length, 1);
  const prompt = await promptFor(asked[0]);
  assert.equal(selectionCount(prompt), 1, prompt);
  assert.match(prompt, /^Explain what this code does/m);
});

test('Add to Tidal chat, then send: the selected code is in the prompt once', async () => {
  const { drafts, run } = registerCommands();
  await run('tidal.addSelectionToChat');
  assert.equal(drafts.length, 1);
  const prompt = await promptFor(`${drafts[0]}\n\nCan this overflow?`);
  assert.equal(selectionCount(prompt), 1, prompt);
});

test('a selection within one line, asked about: once in the prompt, on its line', async () => {
  state.editor = fakeEditor(fileUri('/work/app/src/total.ts'), SOURCE, { line: 6, character: 22 }, { line: 6, character: 38 });
  const { asked, run } = registerCommands();
  await run('tidal.askAboutSelection', 'Is this evaluated at import?');
  assert.match(asked[0], /src\/total\.ts \(line 7\):/);
  const prompt = await promptFor(asked[0]);
  assert.equal(occurrences(prompt, 'total([1, 2, 3])'), 2, prompt); // the quote and the active file
  assert.equal(occurrences(prompt, 'Selection in'), 0, prompt);
});

test('a question that does not quote the selection still gets it, once, with its whole lines', async () => {
  const prompt = await promptFor('Why start the sum at 0?');
  assert.equal(selectionCount(prompt), 1, prompt);
  // Ends at column 0 of line 5, so the selection is lines 2-4, as the commands' quote says.
  assert.match(prompt, /Selection in src\/total\.ts, lines 2-4/);
});

test('#selection with a question that quotes it: once in the prompt', async () => {
  const { drafts, run } = registerCommands();
  await run('tidal.addSelectionToChat');
  const prompt = await promptFor(`${drafts[0]}\n\nWhy?`, ['#selection']);
  assert.equal(occurrences(prompt, 'Attached selection'), 0, prompt);
  assert.equal(selectionCount(prompt), 1, prompt);
});

test('with two folders the quote and the chat name the file by folder and path', async () => {
  state.folders = [
    { uri: fileUri('/work/app'), name: 'app', index: 0 },
    { uri: fileUri('/work/lib'), name: 'lib', index: 1 },
  ];
  state.editor = fakeEditor(fileUri('/work/lib/src/total.ts'), SOURCE, { line: 1, character: 0 }, { line: 4, character: 0 });
  const { asked, run } = registerCommands();
  await run('tidal.explainSelection');
  assert.match(asked[0], /lib\/src\/total\.ts \(lines 2-4\):/);
  const prompt = await promptFor(asked[0]);
  assert.equal(selectionCount(prompt), 1, prompt);
  assert.match(prompt, /Active file lib\/src\/total\.ts/);
});

test('with nothing selected the commands say so and ask nothing', async () => {
  state.editor = fakeEditor(fileUri('/work/app/src/total.ts'), SOURCE, { line: 1, character: 0 }, { line: 1, character: 0 });
  const { asked, drafts, run } = registerCommands();
  await run('tidal.askAboutSelection', 'Why?');
  await run('tidal.explainSelection');
  await run('tidal.addSelectionToChat');
  assert.deepEqual([asked, drafts], [[], []]);
  assert.equal(state.shown.length, 3);
  assert.match(state.shown[0], /select some code/);
});
