// Integration tests of the chat panel in a real VS Code: "Tidal: Ask About This Repository"
// streams the engine's answer into the panel, Stop cancels it in the engine, and the history
// is read back from the workspace state when the panel is re-created. Screenshots of the
// panel with an answer, in the light and the dark theme.
//
// Where a test needs to see an answer half written (the panel rendering it, Stop), it holds the
// engine as soon as the first chunks have arrived (engineHold.js): from then on the answer
// cannot go on until the test releases it, however fast the engine decodes.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { holdEngine } = require('./engineHold');
const { test, waitFor, captureWorkbench } = require('./harness');

/** @typedef {import('../../../src/vscode/testApi').TidalApi} TidalApi */

async function tidalApi() {
  const extension = vscode.extensions.getExtension('tidal-code.tidal-code');
  assert.ok(extension, 'the Tidal extension is not installed');
  /** @type {TidalApi} */
  const api = await extension.activate();
  assert.ok(api && api.chat, 'activate() returned no chat API');
  return api;
}

const normalise = (text) => text.replace(/\s+/g, ' ').trim();

/** A stretch of plain words from an answer, which any Markdown rendering shows as is. */
function plainFragment(text) {
  const runs = text.match(/[A-Za-z][A-Za-z ]{11,}[A-Za-z]/g) ?? [];
  return runs
    .sort((a, b) => b.length - a.length)[0]
    ?.slice(0, 40)
    .trim();
}

async function screenshotInTheme(theme, name) {
  const light = theme.includes('Light');
  await vscode.workspace.getConfiguration('workbench').update('colorTheme', theme, vscode.ConfigurationTarget.Global);
  const applied = await waitFor(() => vscode.window.activeColorTheme.kind === (light ? vscode.ColorThemeKind.Light : vscode.ColorThemeKind.Dark), {
    timeoutMs: 30_000,
  });
  assert.ok(applied, `VS Code did not switch to ${theme}`);
  // The runner waits until the webview has taken the theme before it looks.
  return captureWorkbench(name, { waitForChatView: true, waitForTheme: light ? 'vscode-light' : 'vscode-dark' });
}

/**
 * Asks `question` and holds the engine once its answer has streamed `chunks` chunks: polled
 * every millisecond, so the engine is stopped a few tokens later, long before the answer ends
 * (under greedy decoding both questions of this file are answered up to the 1024-token limit).
 * Returns the command's promise (it resolves once the answer ends) and the hold.
 */
async function askAndHoldAfterChunks(api, question, chunks) {
  const turnsBefore = api.chat.turns().length;
  const asking = vscode.commands.executeCommand('tidal.askAboutRepo', question);
  // The answer's turn exists (question and answer pushed); then its chunks, or its end.
  const streaming = await waitFor(
    () => {
      const answerTurn = api.chat.turns().length >= turnsBefore + 2 ? api.chat.turns().at(-1) : undefined;
      if (!answerTurn) return false;
      return answerTurn.status !== 'streaming' || (api.chat.lastAnswer()?.chunks ?? 0) >= chunks;
    },
    { timeoutMs: 120_000, intervalMs: 1 },
  );
  const hold = holdEngine(api);
  assert.ok(streaming && api.chat.busy(), `the answer was not streaming when the engine was to be held: ${JSON.stringify(api.chat.lastAnswer())}`);
  return { asking, hold };
}

test(
  'chat: Ask About This Repository streams the engine answer into the panel, with the repository in context',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(90_000), 'ready', `model: ${JSON.stringify(api.getState().model)}`);
    const folder = vscode.workspace.workspaceFolders[0];
    const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, 'src', 'select_top_k.py'));
    const editor = await vscode.window.showTextDocument(document);
    editor.selection = new vscode.Selection(0, 0, 1, 0);
    await vscode.commands.executeCommand('tidal.openChat');
    assert.ok(await waitFor(() => api.chat.panel() !== undefined, { timeoutMs: 30_000 }), 'the chat panel never reported a render');

    const question = 'What does select_top_k do?';
    // The answer half written, held there: the panel renders it as it stands.
    const { asking, hold } = await askAndHoldAfterChunks(api, question, 1);
    let partial;
    try {
      partial = await waitFor(
        () => {
          const streamed = api.chat.lastAnswer()?.streamed ?? '';
          const shown = api.chat.panel()?.turns.at(-1);
          return api.chat.busy() && shown?.role === 'assistant' && shown.text.length > 0 && shown.text === streamed ? shown.text : undefined;
        },
        { timeoutMs: 30_000 },
      );
    } finally {
      hold.release();
    }
    assert.ok(partial, `the panel did not render the partial answer: ${JSON.stringify(api.chat.panel()?.turns.at(-1))}`);
    await asking;
    const answer = api.chat.lastAnswer();
    assert.ok(answer, 'no answer recorded');
    assert.equal(answer.error, undefined, `the answer failed: ${answer.error}`);
    // The embedded demo model may also loop until the repetition stop ends the answer.
    assert.ok(['length', 'stop', 'repetition'].includes(answer.finishReason), `finish reason ${answer.finishReason}`);
    // The engine's text arrived in many chunks and they add up to it.
    assert.ok(answer.chunks >= 2, `${answer.chunks} chunks`);
    assert.equal(answer.streamed, answer.text);
    assert.ok(answer.tokens > 0 && answer.text.length > 0);
    // The repository was in the prompt (its three files are ~400 tokens), with the configured attention.
    assert.ok(answer.promptTokens > 300, `prompt of ${answer.promptTokens} tokens`);
    assert.equal(answer.attention?.mode, 'tidal');
    assert.deepEqual(
      api.chat
        .turns()
        .slice(-2)
        .map((turn) => [turn.role, turn.status]),
      [
        ['user', 'done'],
        ['assistant', 'done'],
      ],
    );
    assert.equal(api.chat.turns().at(-2).text, question);
    assert.equal(api.chat.turns().at(-1).text, answer.text);
    assert.equal(api.getState().chatViewVisible, true, 'the chat panel is not shown');
    // The repository files the engine put into the prompt are listed under the answer: each a file
    // of the workspace, as many as the answer says it used.
    const meta = api.chat.turns().at(-1).meta;
    const used = meta?.contextPaths ?? [];
    assert.ok(used.length >= 2 && used.length === meta.contextFiles, `used ${JSON.stringify(used)} of ${meta?.contextFiles} files`);
    for (const file of used) await vscode.workspace.fs.stat(vscode.Uri.joinPath(folder.uri, ...file.split('/')));

    // The panel rendered the answer growing (the part shown while the engine was held), then whole.
    assert.ok(partial.length < answer.text.length && answer.text.startsWith(partial), `partial ${JSON.stringify(partial)} of ${JSON.stringify(answer.text)}`);
    const rendered = await waitFor(() => api.chat.panel()?.turns.at(-1)?.text === answer.text, { timeoutMs: 30_000 });
    assert.ok(rendered, 'the panel does not show the final answer');

    // What the workbench shows, read from the webview's page by the runner.
    const dark = await screenshotInTheme('Default Dark Modern', 'chat-answer-dark');
    if (dark) {
      const shown = normalise(dark.workbench.chatWebviewText);
      assert.ok(shown.includes(question), `the panel text lacks the question: ${shown.slice(0, 300)}`);
      const fragment = plainFragment(answer.text);
      if (fragment) assert.ok(shown.includes(normalise(fragment)), `the panel text lacks "${fragment}"`);
      assert.match(shown, /[\d,]+ \/ [\d,]+ tokens of context/);
      assert.match(shown, /TidalDecode, \d+% attended/);
      assert.ok(shown.includes(`Used ${used.length} files`), `the panel text lacks "Used ${used.length} files"`);
    }
    const light = await screenshotInTheme('Default Light Modern', 'chat-answer-light');
    if (light) assert.ok(normalise(light.workbench.chatWebviewText).includes(question));
    await vscode.workspace.getConfiguration('workbench').update('colorTheme', undefined, vscode.ConfigurationTarget.Global);
  },
  { timeoutMs: 300_000 },
);

test(
  'chat: Stop cancels the answer in the engine; what came so far stays, marked stopped',
  async () => {
    const api = await tidalApi();
    const queueBefore = (await api.engineStats())?.queue;
    assert.ok(queueBefore, 'the engine host did not answer engine/stats');
    // Stop is pressed while the answer is half written: the engine is held there, so the answer
    // cannot end on its own before the cancellation reaches the engine.
    const { asking, hold } = await askAndHoldAfterChunks(api, 'Write a function that trims the KV cache.', 3);
    try {
      api.chat.stop();
    } finally {
      hold.release();
    }
    await asking;
    const answer = api.chat.lastAnswer();
    assert.equal(answer.finishReason, 'cancelled');
    // The engine stopped decoding: far fewer tokens than the 1024 an answer may have.
    assert.ok(answer.tokens < 1000, `${answer.tokens} tokens after Stop`);
    assert.equal(api.chat.busy(), false);
    assert.equal(api.chat.turns().at(-1).status, 'stopped');
    assert.equal(api.chat.turns().at(-1).text, answer.streamed);
    assert.ok(answer.streamed.length > 0);
    const queueAfter = (await api.engineStats())?.queue;
    assert.ok(queueAfter && queueAfter.cancelled > queueBefore.cancelled, `the engine cancelled nothing: ${JSON.stringify(queueAfter)}`);
    const seen = await captureWorkbench('chat-stopped', { waitForChatView: true });
    if (seen) assert.match(seen.workbench.chatWebviewText, /stopped/, 'the panel does not mark the answer stopped');
  },
  { timeoutMs: 120_000 },
);

test(
  'chat: the history is kept in the workspace state and shown again when the panel is re-created',
  async () => {
    const api = await tidalApi();
    const before = api.chat.turns();
    assert.equal(before.length, 4);
    assert.equal(api.chat.storedTurnCounts()[0], 4, `stored: ${JSON.stringify(api.chat.storedTurnCounts())}`);
    // Drops the chat held in memory, reads it back from the workspace state, reloads the panel page.
    await api.chat.reloadFromStorage();
    assert.deepEqual(api.chat.turns(), before);
    const shown = await waitFor(
      () => {
        const panel = api.chat.panel();
        return panel && panel.turns.length === before.length && panel.turns.every((turn, i) => turn.text === before[i].text && turn.role === before[i].role);
      },
      { timeoutMs: 30_000 },
    );
    assert.ok(shown, `the re-created panel shows ${JSON.stringify(api.chat.panel()?.turns.map((turn) => turn.text.slice(0, 20)))}`);
    const seen = await captureWorkbench('chat-after-reload', { waitForChatView: true });
    if (seen) assert.ok(normalise(seen.workbench.chatWebviewText).includes('What does select_top_k do?'));
  },
  { timeoutMs: 60_000 },
);
