// Integration tests of inline completions in the real VS Code: ghost text from the engine,
// accepted with Tab (inlineSuggest.commit); cancellation under fast typing reaching the
// engine; completions off meaning no requests. They run after extension.test.js, in the same
// window, with the embedded model loaded on the CPU.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { test, waitFor, captureWorkbench } = require('./harness');

const EXTENSION_ID = 'tidal-code.tidal-code';

/** @returns {Promise<import('../../../src/extension/extension').TidalApi>} */
async function tidalApi() {
  const extension = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(extension, `extension ${EXTENSION_ID} is not installed in this VS Code`);
  return extension.activate();
}

const tidal = () => vscode.workspace.getConfiguration('tidal');
const editorSettings = () => vscode.workspace.getConfiguration('editor');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Word suggestions popping up while typing would sit over the ghost text; keep them off here.
async function quietEditor() {
  await editorSettings().update('quickSuggestions', { other: 'off', comments: 'off', strings: 'off' }, vscode.ConfigurationTarget.Global);
  await editorSettings().update('suggestOnTriggerCharacters', false, vscode.ConfigurationTarget.Global);
}

/** Opens src/select_top_k.py (a copy of the fixture) with the cursor at the end of `afterText`. */
async function openAt(afterText) {
  const folder = vscode.workspace.workspaceFolders[0];
  const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, 'src', 'select_top_k.py'));
  const editor = await vscode.window.showTextDocument(document, { preview: false });
  const offset = document.getText().indexOf(afterText);
  assert.ok(offset >= 0, `"${afterText}" is not in the file`);
  const position = document.positionAt(offset + afterText.length);
  editor.selection = new vscode.Selection(position, position);
  return editor;
}

async function revert(editor) {
  await vscode.window.showTextDocument(editor.document);
  await vscode.commands.executeCommand('workbench.action.files.revert');
}

async function typeText(text, gapMs = 0) {
  for (const ch of text) {
    await vscode.commands.executeCommand('type', { text: ch });
    if (gapMs > 0) await sleep(gapMs);
  }
}

async function engineQueue(api) {
  const stats = await api.engineStats();
  assert.ok(stats, 'the engine host did not answer engine/stats');
  return stats.queue;
}

test('completions: typing produces ghost text from the engine; accepting a word, then the rest, inserts exactly that text', async () => {
  const api = await tidalApi();
  assert.equal(await api.waitForModel(60_000), 'ready', `model: ${JSON.stringify(api.getState().model)}`);
  await quietEditor();
  await tidal().update('inlineCompletions.debounceMs', 50, vscode.ConfigurationTarget.Global);
  const editor = await openAt('print(select_top_k([0.1, 0.7, 0.05, 0.9, 0.3], 2))\n');
  try {
    // The small model may answer some positions with nothing; a few starts of a line give it
    // room (each typed after the last, so the test stays deterministic under greedy decoding).
    let outcome;
    for (const typed of ['    scores = ', 'print(', '    for ', 'def ']) {
      const before = api.completionStats();
      const line = editor.selection.active.line;
      await editor.edit((edit) => edit.replace(new vscode.Range(line, 0, line, editor.document.lineAt(line).text.length), ''));
      await typeText(typed);
      // Settled: a request finished, none is running and no new one started for a while.
      let quietSince = Date.now();
      let lastStarted = api.completionStats().started;
      const done = await waitFor(() => {
        const now = api.completionStats();
        if (now.started !== lastStarted || now.inFlight > 0) {
          lastStarted = now.started;
          quietSince = Date.now();
          return undefined;
        }
        return now.finished > before.finished && now.lastSource === 'engine' && Date.now() - quietSince > 500 ? now : undefined;
      }, { timeoutMs: 30_000 });
      assert.ok(done, `no completion finished after typing "${typed}": ${JSON.stringify(api.completionStats())}`);
      if (done.lastText && done.lastText.trim().length > 0) {
        outcome = { typed, text: done.lastText, requestId: done.lastRequestId };
        break;
      }
    }
    assert.ok(outcome, `the engine completed none of the positions with text: ${JSON.stringify(api.completionStats())}`);
    assert.match(outcome.requestId, /^completion-/);

    // Ask VS Code to show it again (answered from the cache, the same text), take a look, accept.
    const hitsBefore = api.completionStats().cacheHits;
    const textBefore = editor.document.getText();
    const cursor = editor.document.offsetAt(editor.selection.active);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    assert.ok(await waitFor(() => api.completionStats().cacheHits > hitsBefore, { timeoutMs: 10_000 }), 'VS Code did not ask for the completion again');
    await sleep(500);
    await captureWorkbench('integration-completion-ghost-text');
    // Partial accept as VS Code provides it: the next word goes in, the rest stays as ghost text.
    await vscode.commands.executeCommand('editor.action.inlineSuggest.acceptNextWord');
    const partly = await waitFor(() => {
      const inserted = editor.document.getText().length - textBefore.length;
      return inserted > 0 && editor.document.getText() === textBefore.slice(0, cursor) + outcome.text.slice(0, inserted) + textBefore.slice(cursor);
    }, { timeoutMs: 5_000 });
    assert.ok(partly, `accepting the next word did not insert the start of ${JSON.stringify(outcome.text)}:\n${editor.document.getText()}`);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
    const expected = textBefore.slice(0, cursor) + outcome.text + textBefore.slice(cursor);
    const accepted = await waitFor(() => editor.document.getText() === expected, { timeoutMs: 5_000 });
    assert.ok(accepted, `after accepting, the document is not the text before plus the engine's ${JSON.stringify(outcome.text)}:\n${editor.document.getText()}`);
    assert.match(api.statusBarText(), /Tidal CPU · [\d.K]+ ctx · \d+ ms/, `status bar: ${api.statusBarText()}`);
  } finally {
    await revert(editor);
    await tidal().update('inlineCompletions.debounceMs', undefined, vscode.ConfigurationTarget.Global);
  }
}, { timeoutMs: 150_000 });

test('completions: under fast typing superseded requests are cancelled in the engine and none is left running', async () => {
  const api = await tidalApi();
  await tidal().update('inlineCompletions.debounceMs', 0, vscode.ConfigurationTarget.Global);
  await tidal().update('inlineCompletions.mode', 'multi-line', vscode.ConfigurationTarget.Global);
  const editor = await openAt('def select_top_k(scores: list[float], k: int) -> list[int]:\n');
  try {
    const before = api.completionStats();
    const queueBefore = await engineQueue(api);
    // The engine runs one request at a time. A chat answer keeps it busy while we type, so each
    // completion request is still waiting when the next keystroke supersedes it (with the engine
    // idle, the small model could finish a request before the next keystroke, and nothing
    // would be superseded).
    const asking = vscode.commands.executeCommand('tidal.askAboutRepo', 'Write a function that trims the KV cache.');
    const busy = await waitFor(() => api.chat.busy() && (api.chat.lastAnswer()?.chunks ?? 0) >= 1, { timeoutMs: 30_000, intervalMs: 10 });
    assert.ok(busy, `no chat answer to keep the engine busy: ${JSON.stringify(api.chat.lastAnswer())}`);
    await vscode.window.showTextDocument(editor.document, { preview: false, viewColumn: editor.viewColumn });
    // Each keystroke (and an explicit trigger after it) starts a request at once (no pause);
    // the next keystroke comes as soon as it has started, superseding it.
    for (const ch of '    best = max(scores)') {
      const startedBefore = api.completionStats().started;
      await typeText(ch);
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      await waitFor(() => api.completionStats().started > startedBefore, { timeoutMs: 2_000, intervalMs: 5 });
    }
    // Stopping the chat is one more cancellation in the engine's count, not one of ours.
    const chatStopped = api.chat.busy();
    api.chat.stop();
    await asking;
    const settled = await waitFor(async () => {
      const stats = api.completionStats();
      const queue = await engineQueue(api);
      return stats.inFlight === 0 && queue.running === null && queue.queued === 0 ? { stats, queue } : undefined;
    }, { timeoutMs: 30_000, intervalMs: 50 });
    assert.ok(settled, `requests still running: ${JSON.stringify(api.completionStats())} ${JSON.stringify(await engineQueue(api))}`);
    const { stats, queue } = settled;
    const started = stats.started - before.started;
    const cancelled = stats.cancelled - before.cancelled;
    assert.ok(started >= 5, `only ${started} requests started`);
    assert.ok(cancelled >= 1, `no request was cancelled out of ${started}`);
    assert.equal(started, stats.finished - before.finished + cancelled + (stats.failed - before.failed), 'every started request ended');
    assert.ok(queue.cancelled > queueBefore.cancelled + (chatStopped ? 1 : 0), `the engine cancelled no completion (${JSON.stringify(queue)})`);
  } finally {
    await revert(editor);
    await tidal().update('inlineCompletions.debounceMs', undefined, vscode.ConfigurationTarget.Global);
    await tidal().update('inlineCompletions.mode', undefined, vscode.ConfigurationTarget.Global);
  }
}, { timeoutMs: 90_000 });

test('completions: with tidal.inlineCompletions.enabled=false typing sends no request', async () => {
  const api = await tidalApi();
  await tidal().update('inlineCompletions.enabled', false, vscode.ConfigurationTarget.Global);
  const editor = await openAt('    return sorted(order[:k])\n');
  try {
    assert.ok(await waitFor(() => /completions off/.test(api.statusBarText())), `status bar: ${api.statusBarText()}`);
    const before = api.completionStats();
    // The engine's queue also runs the repository's background jobs (warm-up, saving its KV),
    // so its counters may move: watch which jobs run instead, none of them may be a completion.
    const ran = new Set();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const running = (await engineQueue(api)).running;
        if (running) ran.add(running);
        await sleep(5);
      }
    })();
    await typeText('    result = ', 30);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    await sleep(1500);
    watching = false;
    await watcher;
    const after = api.completionStats();
    assert.equal(after.started, before.started, 'a completion request started');
    assert.equal(after.cacheHits, before.cacheHits);
    assert.deepEqual([...ran].filter((id) => /^completion-/.test(id)), [], 'the engine ran a completion');
  } finally {
    await revert(editor);
    await tidal().update('inlineCompletions.enabled', undefined, vscode.ConfigurationTarget.Global);
    await editorSettings().update('quickSuggestions', undefined, vscode.ConfigurationTarget.Global);
    await editorSettings().update('suggestOnTriggerCharacters', undefined, vscode.ConfigurationTarget.Global);
  }
}, { timeoutMs: 30_000 });
