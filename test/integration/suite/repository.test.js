// Integration test of the repository as the engine host holds it (local backend): the host
// opens the workspace after the model loads, a file written to disk reaches it as a watcher
// event, its warm-up shows in the status bar, a save is forwarded, and inline completions
// still work with the host's repository part in their prompts.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { test, waitFor, tidalApi } = require('./harness');

const PROGRESS = /^\$\(sync~spin\) Tidal: (reading repository…|context [\d.]+K?\/[\d.]+K? tokens(, \d+ (s|min) left)?)/;

/**
 * About 3 KB of plain Python: some 1,500 tokens, a few seconds of warm-up on a small CPU (the
 * embedded model prefills a few hundred tokens per second on 2 cores).
 */
function generatedModule() {
  const lines = ['"""Helpers for the attention experiments (generated for the integration test)."""', ''];
  for (let i = 0; i < 16; i++) {
    lines.push(
      `def window_score_${i}(scores: list[float], start: int, width: int = ${4 + (i % 7)}) -> float:`,
      `    """Mean of scores[start:start + width], 0.0 when the window is empty (variant ${i})."""`,
      '    window = scores[start:start + width]',
      `    return sum(window) / len(window) if window else 0.0`,
      '',
    );
  }
  return lines.join('\n');
}

/**
 * Records every repository report the engine host sends and the status bar's text right after
 * it (the extension's event, so no report is missed however short the warm-up).
 */
function recorder(api) {
  const states = [];
  const texts = [];
  const subscription = api.onDidChangeRepositoryStatus((status, text) => {
    const state = status?.state ?? 'none';
    if (states.at(-1) !== state) states.push(state);
    if (texts.at(-1) !== text) texts.push(text);
  });
  return { states, texts, stop: () => subscription.dispose() };
}

const readyWith = (api, accept) => () => {
  const status = api.repositoryStatus();
  return status?.state === 'ready' && accept(status) ? status : undefined;
};

/**
 * Waits until the host has taken every file event sent so far, and returns its status then: a
 * marker file written and deleted on disk, each waited for. The host takes events in the order
 * they come, so once it has taken the marker's, it has taken all earlier ones (a file written
 * in several steps, an edit forwarded by mistake). `files`: the file count without the marker.
 */
async function afterEarlierEvents(api, folder, files) {
  const marker = vscode.Uri.joinPath(folder.uri, 'src', 'zz_marker.py');
  await vscode.workspace.fs.writeFile(marker, Buffer.from('MARKER = 1\n', 'utf8'));
  const added = await waitFor(
    readyWith(api, (status) => status.files === files + 1),
    { timeoutMs: 90_000, intervalMs: 20 },
  );
  assert.ok(added, `the marker file did not reach the host: ${JSON.stringify(api.repositoryStatus())}`);
  await vscode.workspace.fs.delete(marker);
  const removed = await waitFor(
    readyWith(api, (status) => status.files === files),
    { timeoutMs: 90_000, intervalMs: 20 },
  );
  assert.ok(removed, `the deleted marker file is still in the host's repository: ${JSON.stringify(api.repositoryStatus())}`);
  return removed;
}

test(
  'repository: the engine host reads and warms the workspace, the status bar shows it, files on disk follow; completions still work',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(120_000), 'ready', `model: ${JSON.stringify(api.getState().model)}`);
    const folder = vscode.workspace.workspaceFolders[0];

    // Opened once the model was ready; the fixture's three files are small and warm quickly.
    const first = await waitFor(
      readyWith(api, (status) => status.files >= 3),
      { timeoutMs: 120_000 },
    );
    assert.ok(first, `the host's repository did not become ready: ${JSON.stringify(api.repositoryStatus())}; status bar: ${api.statusBarText()}`);
    assert.ok(first.totalTokens > 100 && first.warmTokens === first.totalTokens, JSON.stringify(first));
    assert.match(api.statusBarText(), /^\$\((pulse|sync~spin)\) Tidal CPU/, `status bar: ${api.statusBarText()}`);

    const added = vscode.Uri.joinPath(folder.uri, 'src', 'window_scores.py');
    const watch = recorder(api);
    let reached;
    try {
      // A file written to disk: the watcher's event goes to the host, which warms its tokens.
      await vscode.workspace.fs.writeFile(added, Buffer.from(generatedModule(), 'utf8'));
      reached = await waitFor(
        readyWith(api, (status) => status.files === first.files + 1),
        { timeoutMs: 90_000, intervalMs: 20 },
      );
    } finally {
      watch.stop();
    }
    assert.ok(reached, `the new file did not reach the host's repository: ${JSON.stringify(api.repositoryStatus())}; states seen ${watch.states.join(' → ')}`);
    // The watcher may report the write in steps (created, then changed): the host as it stands
    // once it has taken all of them.
    const grown = await afterEarlierEvents(api, folder, first.files + 1);
    assert.ok(grown.totalTokens > first.totalTokens + 500, `${first.totalTokens} → ${grown.totalTokens} tokens`);
    assert.ok(watch.states.includes('warming'), `no warm-up seen: ${watch.states.join(' → ')}`);
    const progress = watch.texts.filter((text) => PROGRESS.test(text));
    assert.ok(progress.length > 0, `the status bar showed no progress: ${JSON.stringify(watch.texts)}`);
    assert.match(api.statusBarText(), /^\$\((pulse|sync~spin)\) Tidal CPU/, `status bar once ready: ${api.statusBarText()}`);

    // A save is forwarded as a change: the host reads the file as saved.
    const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, 'src', 'select_top_k.py'));
    const editor = await vscode.window.showTextDocument(document, { preview: false });
    const originalText = document.getText();
    try {
      const end = document.lineAt(document.lineCount - 1).range.end;
      await editor.edit((edit) => edit.insert(end, '\n\ndef top_one(scores: list[float]) -> int:\n    return select_top_k(scores, 1)[0]\n'));
      // Nothing is sent for an unsaved edit, so there is nothing to wait for: wait instead until
      // the host has taken what came after it.
      const unchanged = await afterEarlierEvents(api, folder, grown.files);
      assert.equal(
        unchanged.totalTokens,
        grown.totalTokens,
        `an unsaved edit changed the repository part: ${JSON.stringify(grown)} → ${JSON.stringify(unchanged)}`,
      );
      await document.save();
      const saved = await waitFor(
        readyWith(api, (status) => status.totalTokens > grown.totalTokens),
        { timeoutMs: 90_000, intervalMs: 20 },
      );
      assert.ok(saved, `the saved file did not reach the host: ${JSON.stringify(api.repositoryStatus())}`);

      // An inline completion with the host's repository part in front of its prompt.
      await vscode.workspace.getConfiguration('tidal').update('inlineCompletions.debounceMs', 0, vscode.ConfigurationTarget.Global);
      const last = document.lineCount - 1;
      editor.selection = new vscode.Selection(last, 0, last, 0);
      const before = api.completionStats();
      await vscode.commands.executeCommand('type', { text: 'print(' });
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      const done = await waitFor(
        () => {
          const now = api.completionStats();
          return now.finished > before.finished && now.inFlight === 0 && now.lastSource === 'engine' ? now : undefined;
        },
        { timeoutMs: 60_000 },
      );
      assert.ok(done, `no completion finished: ${JSON.stringify(api.completionStats())}`);
      assert.equal(done.lastError, undefined);
      assert.ok(done.lastRepositoryTokens > 0, `the completion's prompt had no repository part: ${JSON.stringify(done)}`);
    } finally {
      await vscode.workspace.getConfiguration('tidal').update('inlineCompletions.debounceMs', undefined, vscode.ConfigurationTarget.Global);
      // Back to the fixture as it was, on disk too.
      await vscode.window.showTextDocument(document);
      await vscode.commands.executeCommand('workbench.action.files.revert');
      await vscode.workspace.fs.writeFile(document.uri, Buffer.from(originalText, 'utf8'));
      await vscode.workspace.fs.delete(added).then(undefined, () => undefined);
    }
    const back = await waitFor(
      readyWith(api, (status) => status.files === first.files),
      { timeoutMs: 90_000 },
    );
    assert.ok(back, `the deleted file is still in the host's repository: ${JSON.stringify(api.repositoryStatus())}`);
  },
  { timeoutMs: 600_000 },
);
