// Integration test of a workspace of two folders (the runner opens a .code-workspace naming
// fixtures/workspace and fixtures/helpers; suite/multiRoot.json): the repository context holds
// the files of both, each named '<folder name>/<path>'; a `#` mention offers and attaches a file
// of the second folder by that name; the answer's "Used N files" lists files of both folders;
// and inline completions work in a file of the second folder. Screenshot of the answer.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { test, waitFor, captureWorkbench, tidalApi } = require('./harness');

/** @typedef {import('../../../src/vscode/testApi').TidalApi} TidalApi */

const tidal = () => vscode.workspace.getConfiguration('tidal');
const normalise = (text) => text.replace(/\s+/g, ' ').trim();
const ANSWER_TOKENS = 24;
const SECOND = 'helpers';
const SOFTMAX = `${SECOND}/src/softmax.py`;

/** The two folders, in the .code-workspace's order. */
function folders() {
  const open = vscode.workspace.workspaceFolders ?? [];
  assert.deepEqual(
    open.map((folder) => folder.name),
    ['workspace', SECOND],
    'expected the two folders of the multi-root fixture',
  );
  return open;
}

/** The file a repository path ('<folder name>/<path>') names, or undefined for no folder of that name. */
function uriOf(repositoryPath) {
  const [name, ...rest] = repositoryPath.split('/');
  const folder = folders().find((candidate) => candidate.name === name);
  return folder && vscode.Uri.joinPath(folder.uri, ...rest);
}

/** The engine and the repository of both folders, ready. */
async function ready(api) {
  assert.equal(await api.waitForModel(180_000), 'ready', `model: ${JSON.stringify(api.getState().model)}`);
  const repository = await waitFor(() => (api.repositoryStatus()?.state === 'ready' ? api.repositoryStatus() : undefined), { timeoutMs: 180_000 });
  assert.ok(repository, `repository: ${JSON.stringify(api.repositoryStatus())}`);
  return repository;
}

test('multi-root: the window has both folders and the extension reads both', async () => {
  const api = await tidalApi();
  const open = folders();
  assert.ok(vscode.workspace.workspaceFile, 'the window did not open the .code-workspace');
  const repository = await ready(api);
  // README.md and two sources in the first folder, README.md and one source in the second.
  assert.equal(repository.files + repository.droppedFiles + repository.skippedFiles, 5, `repository: ${JSON.stringify(repository)}`);
  assert.equal(vscode.workspace.asRelativePath(vscode.Uri.joinPath(open[1].uri, 'src', 'softmax.py'), true), SOFTMAX);
});

test(
  'multi-root: a # mention attaches a file of the second folder by folder and path, and the answer used files of both folders',
  async () => {
    const api = await tidalApi();
    await ready(api);
    await tidal().update('chat.maxTokens', ANSWER_TOKENS, vscode.ConfigurationTarget.Global);
    try {
      await vscode.commands.executeCommand('tidal.openChat');
      assert.ok(await waitFor(() => api.chat.panel() !== undefined, { timeoutMs: 30_000 }), 'the chat panel never reported a render');
      await vscode.commands.executeCommand('tidal.newChat').then(undefined, () => undefined);

      // `#softm` in the composer: the list offers the second folder's file by its repository path.
      const question = 'How do softmax and select_top_k fit together?';
      api.chat.composer({ text: `${question} #softm` });
      const offered = await waitFor(() => (api.chat.mentionOptions()[0] === SOFTMAX ? api.chat.mentionOptions() : undefined), { timeoutMs: 30_000 });
      assert.ok(offered, `the # list offers ${JSON.stringify(api.chat.mentionOptions())}`);
      api.chat.composer({ press: 'Enter' });
      assert.ok(
        await waitFor(() => api.chat.composerAttachments().join() === SOFTMAX && api.chat.mentionOptions().length === 0, { timeoutMs: 30_000 }),
        `chips after Enter: ${JSON.stringify(api.chat.composerAttachments())}`,
      );

      const turnsBefore = api.chat.turns().length;
      api.chat.composer({ press: 'Enter' });
      const ended = await waitFor(() => api.chat.turns().length >= turnsBefore + 2 && !api.chat.busy() && api.chat.turns().at(-1).status !== 'streaming', {
        timeoutMs: 240_000,
        intervalMs: 50,
      });
      assert.ok(ended, `the answer did not end: ${JSON.stringify(api.chat.turns().slice(-2))}`);
      const answer = api.chat.lastAnswer();
      assert.equal(answer.error, undefined, `the answer failed: ${answer.error}`);
      const [userTurn, answerTurn] = api.chat.turns().slice(-2);
      assert.equal(userTurn.text, question);
      assert.deepEqual(userTurn.attachments, [SOFTMAX]);
      assert.equal(answerTurn.status, 'done', `answer: ${JSON.stringify(answerTurn)}`);

      // The attached file, whole, under its folder-and-path name.
      const prompt = answer.messages?.at(-1)?.content ?? '';
      const softmax = new TextDecoder().decode(await vscode.workspace.fs.readFile(uriOf(SOFTMAX)));
      assert.ok(prompt.includes(`Attached file ${SOFTMAX}:`), `no header for the attached file: ${prompt.slice(0, 400)}`);
      assert.ok(prompt.includes(softmax.trim()), 'the attached file is not in the prompt whole');

      // "Used N files": repository paths of both folders, each a file there.
      const used = answerTurn.meta?.contextPaths ?? [];
      assert.equal(answerTurn.meta?.contextFiles, used.length, `meta ${JSON.stringify(answerTurn.meta)}`);
      assert.ok(
        used.some((file) => file.startsWith('workspace/')),
        `no file of the first folder in ${JSON.stringify(used)}`,
      );
      assert.ok(
        used.some((file) => file.startsWith(`${SECOND}/`)),
        `no file of the second folder in ${JSON.stringify(used)}`,
      );
      for (const file of used) {
        const uri = uriOf(file);
        assert.ok(uri, `${file} names no workspace folder`);
        await vscode.workspace.fs.stat(uri);
      }
      assert.equal(used.length, api.repositoryStatus().files, `used ${JSON.stringify(used)}; repository ${JSON.stringify(api.repositoryStatus())}`);

      const seen = await captureWorkbench('integration-multi-root-chat', { waitForChatView: true });
      if (seen) {
        const shown = normalise(seen.workbench.chatWebviewText);
        assert.ok(shown.includes(`Used ${used.length} files`), `the panel text lacks "Used ${used.length} files": ${shown.slice(-400)}`);
        assert.ok(shown.includes(question), 'the panel text lacks the question');
      }
    } finally {
      await tidal().update('chat.maxTokens', undefined, vscode.ConfigurationTarget.Global);
    }
  },
  { timeoutMs: 480_000 },
);

test(
  'multi-root: inline completions work in a file of the second folder',
  async () => {
    const api = await tidalApi();
    await ready(api);
    const editorSettings = vscode.workspace.getConfiguration('editor');
    await editorSettings.update('quickSuggestions', { other: 'off', comments: 'off', strings: 'off' }, vscode.ConfigurationTarget.Global);
    await editorSettings.update('suggestOnTriggerCharacters', false, vscode.ConfigurationTarget.Global);
    await tidal().update('inlineCompletions.debounceMs', 50, vscode.ConfigurationTarget.Global);
    const document = await vscode.workspace.openTextDocument(uriOf(SOFTMAX));
    const original = document.getText();
    const editor = await vscode.window.showTextDocument(document, { preview: false });
    try {
      // A new line at the end of softmax(), then a few starts of a line: the small model may
      // answer some positions with nothing.
      const anchor = original.indexOf('    return [value / total for value in exps]\n');
      assert.ok(anchor >= 0, 'the fixture changed');
      let outcome;
      for (const typed of ['    # ', '    return ', 'def ']) {
        const before = api.completionStats();
        await editor.edit((edit) =>
          edit.replace(new vscode.Range(0, 0, document.lineCount, 0), original.slice(0, anchor) + typed + '\n' + original.slice(anchor)),
        );
        const position = document.positionAt(anchor + typed.length);
        editor.selection = new vscode.Selection(position, position);
        await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
        const answered = await waitFor(
          () => {
            const now = api.completionStats();
            return (now.cacheHits > before.cacheHits || now.started > before.started) && now.inFlight === 0 ? now : undefined;
          },
          { timeoutMs: 90_000, intervalMs: 20 },
        );
        assert.ok(answered, `VS Code did not ask for a completion: ${JSON.stringify(api.completionStats())}`);
        assert.equal(answered.failed, before.failed, `the completion request failed: ${answered.lastError}`);
        if ((answered.lastText ?? '').trim().length > 0) {
          outcome = { typed, ...answered };
          break;
        }
      }
      assert.ok(outcome, `the engine completed none of the positions with text: ${JSON.stringify(api.completionStats())}`);
      assert.ok(outcome.lastRepositoryTokens > 0, `no repository in the completion's prompt: ${JSON.stringify(outcome)}`);
      const seen = await captureWorkbench('integration-multi-root-completion', { waitForGhostText: true });
      if (seen) assert.equal(seen.workbench.ghostTextVisible, true, 'no ghost text on screen');
    } finally {
      await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
      if (document.getText() !== original) {
        const edit = new vscode.WorkspaceEdit();
        edit.replace(document.uri, new vscode.Range(0, 0, document.lineCount, 0), original);
        await vscode.workspace.applyEdit(edit);
      }
      await document.save();
      await tidal().update('inlineCompletions.debounceMs', undefined, vscode.ConfigurationTarget.Global);
      await editorSettings.update('quickSuggestions', undefined, vscode.ConfigurationTarget.Global);
      await editorSettings.update('suggestOnTriggerCharacters', undefined, vscode.ConfigurationTarget.Global);
    }
  },
  { timeoutMs: 300_000 },
);
