// Integration tests of the editor features a person expects from a code assistant, in the real
// VS Code: the keybindings (each command exists; no key collides with one of VS Code's own
// defaults, read from VS Code's Default Keybindings), completions switched off per language,
// and a manual trigger pressed as keys (Alt+\) asking for alternatives that Alt+] cycles. They
// run after completions.test.js, in the same window, with the embedded model on the CPU.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');

const { test, waitFor, captureWorkbench } = require('./harness');

const EXTENSION_ID = 'tidal-code.tidal-code';
const repoRoot = path.resolve(__dirname, '..', '..', '..');

function tidalExtension() {
  const extension = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(extension, `extension ${EXTENSION_ID} is not installed in this VS Code`);
  return extension;
}

/** @returns {Promise<import('../../../src/vscode/testApi').TidalApi>} */
const tidalApi = () => tidalExtension().activate();
const tidal = () => vscode.workspace.getConfiguration('tidal');

/** The key of a keybinding on this platform (code-server runs on Linux). */
const platformKey = (binding) => (process.platform === 'darwin' ? binding.mac : process.platform === 'win32' ? binding.win : binding.linux) ?? binding.key;

/** Every { key, command } of VS Code's Default Keybindings (built-in and installed extensions). */
async function defaultKeybindings() {
  await vscode.commands.executeCommand('workbench.action.openDefaultKeybindingsFile');
  const editor = await waitFor(
    () => {
      const active = vscode.window.activeTextEditor;
      return active && /keybindings/i.test(active.document.uri.toString()) && active.document.getText().length > 1000 ? active : undefined;
    },
    { timeoutMs: 20_000 },
  );
  assert.ok(editor, 'VS Code did not open its Default Keybindings');
  const text = editor.document.getText();
  await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  const string = '"((?:[^"\\\\]|\\\\.)*)"';
  const entry = new RegExp(`\\{\\s*"key":\\s*${string},\\s*"command":\\s*${string}(?:,\\s*"when":\\s*${string})?`, 'g');
  return [...text.matchAll(entry)].map((match) => ({
    key: JSON.parse(`"${match[1]}"`),
    command: JSON.parse(`"${match[2]}"`),
    when: match[3] === undefined ? undefined : JSON.parse(`"${match[3]}"`),
  }));
}

async function openFixture(relative, afterText) {
  const folder = vscode.workspace.workspaceFolders[0];
  const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, ...relative.split('/')));
  const editor = await vscode.window.showTextDocument(document, { preview: false });
  const offset = document.getText().indexOf(afterText);
  assert.ok(offset >= 0, `"${afterText}" is not in ${relative}`);
  const position = document.positionAt(offset + afterText.length);
  editor.selection = new vscode.Selection(position, position);
  return editor;
}

async function noCompletionInFlight(api) {
  const settled = await waitFor(() => api.completionStats().inFlight === 0, { timeoutMs: 60_000, intervalMs: 20 });
  assert.ok(settled, `completion requests still in flight: ${JSON.stringify(api.completionStats())}`);
}

/** Text without its white space: the DOM splits ghost text into pieces and lines. */
const squeeze = (text) => text.replace(/[\s\u00a0]+/g, '');

test(
  'keybindings: every bound command exists, and no key collides with a default VS Code keybinding',
  async () => {
    const ours = tidalExtension().packageJSON.contributes.keybindings;
    assert.ok(Array.isArray(ours) && ours.length >= 4, 'the manifest contributes no keybindings');
    const commands = new Set(await vscode.commands.getCommands(false));
    for (const binding of ours) assert.ok(commands.has(binding.command), `keybinding ${binding.key} runs ${binding.command}, which no one registered`);

    const defaults = await defaultKeybindings();
    assert.ok(defaults.length > 300, `read only ${defaults.length} default keybindings`);
    // For the report: the list checked against (this platform's keys).
    fs.mkdirSync(path.join(repoRoot, '.test-artifacts', 'integration'), { recursive: true });
    fs.writeFileSync(path.join(repoRoot, '.test-artifacts', 'integration', 'default-keybindings.json'), JSON.stringify(defaults, null, 1));
    const isOurs = (entry) => ours.some((binding) => binding.command === entry.command && platformKey(binding) === entry.key);
    for (const binding of ours) {
      const key = platformKey(binding);
      // Our own entries are in the list too; so are chords that begin with our key.
      const taken = defaults.filter((entry) => !isOurs(entry) && (entry.key === key || entry.key.startsWith(`${key} `)));
      assert.deepEqual(taken, [], `${key} (${binding.command}) is already VS Code's`);
    }
    // What we bind of VS Code's own commands had no key of its own.
    for (const binding of ours.filter((b) => !b.command.startsWith('tidal.'))) {
      const own = defaults.filter((entry) => entry.command === binding.command && !isOurs(entry));
      assert.deepEqual(own, [], `${binding.command} already has a default key`);
    }
  },
  { timeoutMs: 60_000 },
);

test(
  'per-language switch: no request in a language switched off; the toggle command turns it back on',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(60_000), 'ready');
    const before = tidal().inspect('inlineCompletions.languages')?.globalValue;
    try {
      await tidal().update('inlineCompletions.languages', { '*': true, python: false }, vscode.ConfigurationTarget.Global);
      const editor = await openFixture('src/select_top_k.py', 'def select_top_k(');
      assert.equal(editor.document.languageId, 'python');
      await noCompletionInFlight(api);
      const off = api.completionStats();
      // The trigger resolves once every provider answered: ours answers at once with nothing.
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      const afterOff = api.completionStats();
      assert.equal(afterOff.started, off.started, 'a request was sent for a language switched off');
      assert.equal(afterOff.cacheHits, off.cacheHits, 'the cache answered for a language switched off');

      assert.equal(await vscode.commands.executeCommand('tidal.toggleInlineCompletionsForLanguage'), true);
      // VS Code merges an object setting with its default: the other entries are the default's.
      assert.equal(tidal().get('inlineCompletions.languages').python, true);
      assert.equal(tidal().inspect('inlineCompletions.languages').globalValue.python, true);
      // VS Code asks again once the cursor moved (a second trigger at the same place reuses the first's answer).
      await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
      const moved = editor.document.lineAt(editor.selection.active.line).range.end;
      editor.selection = new vscode.Selection(moved, moved);
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      const on = await waitFor(
        () => {
          const now = api.completionStats();
          return (now.started > afterOff.started || now.cacheHits > afterOff.cacheHits) && now.inFlight === 0 ? now : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 20 },
      );
      assert.ok(on, `no request once python was switched back on: ${JSON.stringify(api.completionStats())}`);
    } finally {
      await tidal().update('inlineCompletions.languages', before, vscode.ConfigurationTarget.Global);
    }
  },
  { timeoutMs: 200_000 },
);

test(
  'Alt+\\ asks the engine for alternatives (sampled, distinct); Alt+] shows the next one',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(60_000), 'ready');
    const editor = await openFixture('src/select_top_k.py', 'print(select_top_k([0.1, 0.7, 0.05, 0.9, 0.3], 2))\n');
    const original = editor.document.getText();
    try {
      // The small model may answer a position with one distinct completion only; a few starts
      // of a line give it room.
      let shown;
      for (const typed of ['def ', '    scores = ', 'print(', 'import ']) {
        const line = editor.selection.active.line;
        await editor.edit((edit) => edit.replace(new vscode.Range(line, 0, line, editor.document.lineAt(line).text.length), typed));
        const end = new vscode.Position(line, typed.length);
        editor.selection = new vscode.Selection(end, end);
        await noCompletionInFlight(api);
        const before = api.completionStats();
        const seen = await captureWorkbench(`integration-alternatives-${shown === undefined ? 'first' : 'again'}`, { press: ['Alt+Backslash'] });
        // Under the electron runner nothing is pressed: trigger it as the keybinding would.
        if (!seen) await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
        const answered = await waitFor(
          () => {
            const now = api.completionStats();
            return now.started >= before.started + 2 && now.inFlight === 0 ? now : undefined;
          },
          { timeoutMs: 180_000, intervalMs: 20 },
        );
        assert.ok(answered, `Alt+\\ did not ask for alternatives (two sampled requests at least): ${JSON.stringify(api.completionStats())}`);
        assert.equal(answered.failed, before.failed, `a request failed: ${answered.lastError}`);
        const alternatives = answered.lastAlternatives ?? [];
        assert.equal(new Set(alternatives.map((text) => text.trimEnd())).size, alternatives.length, `repeated alternatives: ${JSON.stringify(alternatives)}`);
        assert.ok(
          alternatives.every((text) => text.trim().length > 0),
          `an empty alternative: ${JSON.stringify(alternatives)}`,
        );
        if (alternatives.length >= 2) {
          shown = { typed, alternatives };
          break;
        }
      }
      assert.ok(shown, 'no position gave two distinct alternatives');

      // VS Code shows the first; Alt+] shows another (the alternatives are distinct).
      const first = await captureWorkbench('integration-alternatives-first-shown', { waitForGhostText: true });
      if (!first) return;
      assert.equal(first.workbench.ghostTextVisible, true, 'no ghost text after Alt+\\');
      const matches = (ghost) => shown.alternatives.findIndex((text) => squeeze(text).startsWith(squeeze(ghost)) && squeeze(ghost).length > 0);
      const firstIndex = matches(first.workbench.ghostText);
      assert.ok(firstIndex >= 0, `the ghost text ${JSON.stringify(first.workbench.ghostText)} is none of ${JSON.stringify(shown.alternatives)}`);
      const next = await captureWorkbench('integration-alternatives-next', { press: ['Alt+BracketRight'], waitForGhostText: true });
      const nextIndex = matches(next.workbench.ghostText);
      assert.ok(
        nextIndex >= 0 && nextIndex !== firstIndex,
        `after Alt+] the ghost text ${JSON.stringify(next.workbench.ghostText)} is not another of ${JSON.stringify(shown.alternatives)}`,
      );
    } finally {
      await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
      await vscode.window.showTextDocument(editor.document);
      await vscode.commands.executeCommand('workbench.action.files.revert');
      // Revert acts on the active editor; where the text is still changed, write it back.
      if (editor.document.getText() !== original) {
        const edit = new vscode.WorkspaceEdit();
        edit.replace(editor.document.uri, new vscode.Range(0, 0, editor.document.lineCount, 0), original);
        await vscode.workspace.applyEdit(edit);
        await editor.document.save();
      }
    }
  },
  { timeoutMs: 600_000 },
);

test(
  'the chat keybinding opens the chat view',
  async () => {
    const api = await tidalApi();
    await vscode.commands.executeCommand('workbench.action.closeSidebar');
    const binding = tidalExtension().packageJSON.contributes.keybindings.find((b) => b.command === 'tidal.openChat');
    const key = platformKey(binding);
    // Playwright's names: ctrl+shift+alt+x -> Control+Shift+Alt+KeyX.
    const press = key
      .split('+')
      .map((part) => ({ ctrl: 'Control', alt: 'Alt', shift: 'Shift', cmd: 'Meta' })[part] ?? (part.length === 1 ? `Key${part.toUpperCase()}` : part))
      .join('+');
    const seen = await captureWorkbench('integration-chat-keybinding', { press: [press], waitForChatView: true });
    if (!seen) return;
    assert.equal(await waitFor(() => api.getState().chatViewVisible, { timeoutMs: 20_000 }), true, `${key} did not open the chat`);
  },
  { timeoutMs: 60_000 },
);
