// Integration tests of inline completions in the real VS Code: ghost text from the engine,
// accepted with Tab (inlineSuggest.commit); cancellation under fast typing reaching the
// engine; completions off meaning no requests. They run after extension.test.js, in the same
// window, with the embedded model loaded on the CPU.
//
// Nothing here waits a fixed time or races the engine: where a test needs the engine not to
// answer yet, it holds the engine (engineHold.js), and it waits for counters and states it can
// observe; time limits only bound a broken run.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { holdEngine } = require('./engineHold');
const { test, waitFor, captureWorkbench } = require('./harness');

const EXTENSION_ID = 'tidal-code.tidal-code';

/** @returns {Promise<import('../../../src/vscode/testApi').TidalApi>} */
async function tidalApi() {
  const extension = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(extension, `extension ${EXTENSION_ID} is not installed in this VS Code`);
  return extension.activate();
}

const tidal = () => vscode.workspace.getConfiguration('tidal');
const editorSettings = () => vscode.workspace.getConfiguration('editor');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const documentText = (editor) => editor.document.getText();

// Word suggestions popping up while typing would sit over the ghost text; keep them off here.
async function quietEditor() {
  await editorSettings().update('quickSuggestions', { other: 'off', comments: 'off', strings: 'off' }, vscode.ConfigurationTarget.Global);
  await editorSettings().update('suggestOnTriggerCharacters', false, vscode.ConfigurationTarget.Global);
}

// The text each opened fixture had before a test edited it, by URI.
const originals = new Map();

/** Opens src/select_top_k.py (a copy of the fixture) with the cursor at the end of `afterText`. */
async function openAt(afterText) {
  const folder = vscode.workspace.workspaceFolders[0];
  const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, 'src', 'select_top_k.py'));
  if (!originals.has(document.uri.toString())) originals.set(document.uri.toString(), document.getText());
  const editor = await vscode.window.showTextDocument(document, { preview: false });
  const offset = document.getText().indexOf(afterText);
  assert.ok(offset >= 0, `"${afterText}" is not in the file`);
  const position = document.positionAt(offset + afterText.length);
  editor.selection = new vscode.Selection(position, position);
  return editor;
}

/** Puts the file back as it was: VS Code's Revert, and where that left the text changed (it
 * acts on whatever editor is active), the original text written back and saved. */
async function revert(editor) {
  await vscode.window.showTextDocument(editor.document);
  await vscode.commands.executeCommand('workbench.action.files.revert');
  const original = originals.get(editor.document.uri.toString());
  if (original !== undefined && editor.document.getText() !== original) {
    const edit = new vscode.WorkspaceEdit();
    edit.replace(editor.document.uri, new vscode.Range(0, 0, editor.document.lineCount, 0), original);
    await vscode.workspace.applyEdit(edit);
    await editor.document.save();
  }
  assert.equal(editor.document.getText(), original ?? editor.document.getText(), 'the fixture could not be put back');
}

async function typeText(text) {
  for (const ch of text) await vscode.commands.executeCommand('type', { text: ch });
}

async function engineQueue(api) {
  const stats = await api.engineStats();
  assert.ok(stats, 'the engine host did not answer engine/stats');
  return stats.queue;
}

/** Waits until no completion request is in flight (every one started has ended). */
async function noCompletionInFlight(api) {
  const settled = await waitFor(() => api.completionStats().inFlight === 0, { timeoutMs: 60_000, intervalMs: 20 });
  assert.ok(settled, `completion requests still in flight: ${JSON.stringify(api.completionStats())}`);
}

/**
 * The completion VS Code shows at the cursor once typing is over. Asks once more (an explicit
 * trigger: VS Code calls the provider for exactly this cursor, and the command resolves once
 * that call has its answer), then waits until no request is in flight. The answer comes from
 * the extension's cache (the engine's answer to the typing's own request here) or from a new
 * engine request; either way it does not depend on how fast the engine answered the typing.
 */
async function completionAtCursor(api) {
  await noCompletionInFlight(api);
  const before = api.completionStats();
  await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
  const answered = await waitFor(
    () => {
      const now = api.completionStats();
      return (now.cacheHits > before.cacheHits || now.started > before.started) && now.inFlight === 0 ? now : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 20 },
  );
  assert.ok(answered, `VS Code did not ask for a completion after the trigger: ${JSON.stringify(api.completionStats())}`);
  assert.equal(answered.failed, before.failed, `the completion request failed: ${answered.lastError}`);
  return { text: answered.lastText, source: answered.lastSource, requestId: answered.lastRequestId };
}

test(
  'completions: typing produces ghost text from the engine; accepting a word, then the rest, inserts exactly that text',
  async () => {
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
        const line = editor.selection.active.line;
        await editor.edit((edit) => edit.replace(new vscode.Range(line, 0, line, editor.document.lineAt(line).text.length), ''));
        await typeText(typed);
        const shown = await completionAtCursor(api);
        if (shown.text.trim().length > 0) {
          outcome = { typed, ...shown };
          break;
        }
      }
      assert.ok(outcome, `the engine completed none of the positions with text: ${JSON.stringify(api.completionStats())}`);
      if (outcome.source === 'engine') assert.match(outcome.requestId, /^completion-/);
      else assert.equal(outcome.source, 'cache');

      // VS Code shows it (the answer to the last trigger); take a look.
      const seen = await captureWorkbench('integration-completion-ghost-text', { waitForGhostText: true });
      if (seen) assert.equal(seen.workbench.ghostTextVisible, true, 'no ghost text on screen');
      const textBefore = documentText(editor);
      const cursor = editor.document.offsetAt(editor.selection.active);
      const withInserted = (count) => textBefore.slice(0, cursor) + outcome.text.slice(0, count) + textBefore.slice(cursor);
      // While accepting, no newer completion may replace the one shown: the engine is held, so
      // the requests VS Code starts after each edit wait (they end once it is released).
      const hold = holdEngine(api);
      try {
        // Partial accept as VS Code provides it: the next word goes in, the rest stays as ghost
        // text. Repeated until it took (a no-op while the suggestion is not shown yet); a second
        // word taken meanwhile is still the start of the same text.
        const partly = await waitFor(
          async () => {
            if (documentText(editor) === textBefore) await vscode.commands.executeCommand('editor.action.inlineSuggest.acceptNextWord');
            const inserted = documentText(editor).length - textBefore.length;
            return inserted > 0 && documentText(editor) === withInserted(inserted);
          },
          { timeoutMs: 30_000 },
        );
        assert.ok(partly, `accepting the next word did not insert the start of ${JSON.stringify(outcome.text)}:\n${documentText(editor)}`);
        const expected = withInserted(outcome.text.length);
        const accepted = await waitFor(
          async () => {
            if (documentText(editor) !== expected) await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
            return documentText(editor) === expected;
          },
          { timeoutMs: 30_000 },
        );
        assert.ok(accepted, `after accepting, the document is not the text before plus the engine's ${JSON.stringify(outcome.text)}:\n${documentText(editor)}`);
      } finally {
        hold.release();
      }
      await noCompletionInFlight(api);
      const statusBar = await waitFor(() => /Tidal CPU · [\d.K]+ ctx · \d+ ms/.test(api.statusBarText()), { timeoutMs: 30_000 });
      assert.ok(statusBar, `status bar: ${api.statusBarText()}`);
    } finally {
      await revert(editor);
      await tidal().update('inlineCompletions.debounceMs', undefined, vscode.ConfigurationTarget.Global);
    }
  },
  { timeoutMs: 300_000 },
);

test(
  'completions: under fast typing superseded requests are cancelled in the engine and none is left running',
  async () => {
    const api = await tidalApi();
    await tidal().update('inlineCompletions.debounceMs', 0, vscode.ConfigurationTarget.Global);
    await tidal().update('inlineCompletions.mode', 'multi-line', vscode.ConfigurationTarget.Global);
    const editor = await openAt('def select_top_k(scores: list[float], k: int) -> list[int]:\n');
    const typed = '    best = max(scores)';
    try {
      await noCompletionInFlight(api);
      const before = api.completionStats();
      const queueBefore = await engineQueue(api);
      // The engine is held while we type: no request can finish, so each keystroke's request is
      // still waiting when the next keystroke supersedes it, however fast the engine is. The
      // trigger is not awaited: VS Code's trigger command waits for the answer, which only comes
      // once the engine is released.
      const hold = holdEngine(api);
      try {
        for (const ch of typed) {
          const startedBefore = api.completionStats().started;
          await typeText(ch);
          void Promise.resolve(vscode.commands.executeCommand('editor.action.inlineSuggest.trigger')).catch(() => undefined);
          const started = await waitFor(() => api.completionStats().started > startedBefore, { timeoutMs: 30_000, intervalMs: 5 });
          assert.ok(started, `no completion request started after typing ${JSON.stringify(ch)}: ${JSON.stringify(api.completionStats())}`);
        }
      } finally {
        hold.release();
      }
      // Released: the engine reads the requests and cancellations in the order they were sent.
      await noCompletionInFlight(api);
      const queue = await engineQueue(api);
      const stats = api.completionStats();
      const started = stats.started - before.started;
      const cancelled = stats.cancelled - before.cancelled;
      assert.ok(started >= typed.length, `only ${started} requests started for ${typed.length} keystrokes`);
      // Each keystroke's trigger is explicit, so the provider asks for alternatives: the last
      // keystroke's completion (never superseded) may end with up to ALTERNATIVE_COUNT (3) engine
      // requests finished; every earlier one was superseded and cancelled.
      const finished = stats.finished - before.finished;
      assert.ok(finished <= 3, `${finished} requests finished: more than the last completion's greedy one and its two alternatives`);
      assert.ok(cancelled >= started - 3, `only ${cancelled} of the ${started - 3} or more superseded requests were cancelled`);
      assert.equal(started, stats.finished - before.finished + cancelled + (stats.failed - before.failed), 'every started request ended');
      assert.ok(queue.cancelled > queueBefore.cancelled, `the engine cancelled no request (${JSON.stringify(queue)})`);
      assert.ok(queue.running === null || !/^completion-/.test(queue.running), `a completion is still running in the engine: ${queue.running}`);
    } finally {
      await revert(editor);
      await tidal().update('inlineCompletions.debounceMs', undefined, vscode.ConfigurationTarget.Global);
      await tidal().update('inlineCompletions.mode', undefined, vscode.ConfigurationTarget.Global);
    }
  },
  { timeoutMs: 180_000 },
);

test(
  'completions: with tidal.inlineCompletions.enabled=false typing sends no request',
  async () => {
    const api = await tidalApi();
    await tidal().update('inlineCompletions.enabled', false, vscode.ConfigurationTarget.Global);
    const editor = await openAt('    return sorted(order[:k])\n');
    try {
      assert.ok(await waitFor(() => /completions off/.test(api.statusBarText())), `status bar: ${api.statusBarText()}`);
      await noCompletionInFlight(api);
      // The engine's queue also runs the repository's background jobs and prefetches queued
      // before the switch (their ids start with completion- too): start watching once it is idle,
      // when anything new that runs was sent after completions went off.
      const idle = await waitFor(
        async () => {
          const queue = await engineQueue(api);
          return queue.running === null && queue.queued === 0;
        },
        { timeoutMs: 120_000, intervalMs: 50 },
      );
      assert.ok(idle, `the engine did not become idle: ${JSON.stringify(await engineQueue(api))}`);
      const before = api.completionStats();
      const ran = new Set();
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          const running = (await engineQueue(api)).running;
          if (running) ran.add(running);
          await sleep(5);
        }
      })();
      try {
        await typeText('    result = ');
        // VS Code's trigger command resolves once the providers have answered for the cursor
        // (its inline completions model awaits the fetch), after every request the typing made.
        await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      } finally {
        watching = false;
        await watcher;
      }
      const after = api.completionStats();
      assert.equal(after.started, before.started, 'a completion request started');
      assert.equal(after.inFlight, 0);
      assert.equal(after.cacheHits, before.cacheHits);
      assert.deepEqual(
        [...ran].filter((id) => /^completion-/.test(id)),
        [],
        'the engine ran a completion',
      );
    } finally {
      await revert(editor);
      await tidal().update('inlineCompletions.enabled', undefined, vscode.ConfigurationTarget.Global);
      await editorSettings().update('quickSuggestions', undefined, vscode.ConfigurationTarget.Global);
      await editorSettings().update('suggestOnTriggerCharacters', undefined, vscode.ConfigurationTarget.Global);
    }
  },
  { timeoutMs: 240_000 },
);
