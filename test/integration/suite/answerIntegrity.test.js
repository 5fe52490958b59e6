// Integration tests of answers that end early, in the chat panel of a real VS Code with the
// embedded demo model: an answer cut at tidal.chat.maxTokens shows "Stopped at the N-token
// limit" with Continue, and Continue appends to the same answer; the engine's log gets one line
// per request; the demo model's loops are stopped as repetition.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');

const { test, waitFor, captureWorkbench } = require('./harness');

/** @typedef {import('../../../src/vscode/testApi').TidalApi} TidalApi */

async function tidalApi() {
  const extension = vscode.extensions.getExtension('tidal-code.tidal-code');
  assert.ok(extension, 'the Tidal extension is not installed');
  /** @type {TidalApi} */
  const api = await extension.activate();
  return api;
}

const normalise = (text) => text.replace(/\s+/g, ' ').trim();

/**
 * Sets tidal.chat.maxTokens in the workspace's settings file (written directly: the file is
 * what a person edits, and VS Code reads it whether or not the manifest declares the key).
 */
async function setAnswerTokens(tokens) {
  const folder = vscode.workspace.workspaceFolders[0].uri.fsPath;
  const file = path.join(folder, '.vscode', 'settings.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let settings = {};
  try {
    settings = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    // none yet
  }
  if (tokens === undefined) delete settings['tidal.chat.maxTokens'];
  else settings['tidal.chat.maxTokens'] = tokens;
  fs.writeFileSync(file, JSON.stringify(settings, null, 2));
  // Cleared, the setting reads as its declared default (0: the engine's limit).
  const expected = tokens ?? 0;
  const applied = await waitFor(() => vscode.workspace.getConfiguration('tidal').get('chat.maxTokens') === expected, { timeoutMs: 30_000 });
  assert.ok(applied, `tidal.chat.maxTokens did not become ${expected}: ${vscode.workspace.getConfiguration('tidal').get('chat.maxTokens')}`);
}

/** The Tidal Engine output channel's log file in this window's logs, or undefined (the electron runner names no folder). */
function engineLogText() {
  const extensionsDir = process.env.TIDAL_TEST_EXTENSIONS_DIR;
  if (!extensionsDir) return undefined;
  const logs = path.join(path.dirname(extensionsDir), 'user-data', 'logs');
  const found = [];
  const walk = (dir, depth) => {
    if (depth > 8) return;
    let entries = [];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full, depth + 1);
      else if (/Tidal Engine\.log$/.test(entry.name)) found.push(full);
    }
  };
  walk(logs, 0);
  return found.map((file) => fs.readFileSync(file, 'utf8')).join('\n');
}

test(
  'answers: a chat answer cut at its token limit shows the marker, Continue appends to it, and each request gets a log line',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(90_000), 'ready', `model: ${JSON.stringify(api.getState().model)}`);
    await setAnswerTokens(24);
    try {
      await vscode.commands.executeCommand('tidal.openChat');
      assert.ok(await waitFor(() => api.chat.panel() !== undefined, { timeoutMs: 30_000 }), 'the chat panel never reported a render');
      await api.chat.idle();

      const turnsBefore = api.chat.turns().length;
      await vscode.commands.executeCommand('tidal.askAboutRepo', 'How is the KV cache trimmed after an edit?');
      const first = api.chat.lastAnswer();
      assert.equal(first?.finishReason, 'length', `the answer did not stop at its limit: ${JSON.stringify(first)}`);
      assert.equal(first.tokens, 24);
      const answerTurn = api.chat.turns().at(-1);
      assert.equal(api.chat.turns().length, turnsBefore + 2);
      assert.equal(answerTurn.role, 'assistant');
      const firstText = answerTurn.text;
      assert.ok(firstText.length > 0);

      // The panel shows the marker and the Continue button under the answer.
      const marked = await waitFor(
        () => {
          const visible = api.chat.panel()?.visibleText ?? '';
          return visible.includes('Stopped at the 24-token limit.') && /\bContinue\b/.test(visible);
        },
        { timeoutMs: 30_000 },
      );
      assert.ok(marked, `the panel shows no length marker with Continue: ${api.chat.panel()?.visibleText.slice(-400)}`);
      await captureWorkbench('answer-length-marker', { waitForChatView: true });

      await vscode.commands.executeCommand('tidal.continueAnswer');
      const continued = api.chat.lastAnswer();
      assert.ok(continued && !continued.error, `Continue failed: ${JSON.stringify(continued)}`);
      assert.equal(api.chat.turns().length, turnsBefore + 2, 'Continue added a turn instead of appending');
      const after = api.chat.turns().at(-1);
      assert.ok(after.text.startsWith(firstText), 'the continued answer does not start with the answer so far');
      assert.ok(after.text.length > firstText.length, 'Continue added no text');
      assert.equal(after.text, firstText + continued.streamed, 'the answer is not the first part and the continuation');
      // The conversation was sent again as it was: its prompt's KV came from the cache.
      assert.ok((continued.reusedTokens ?? 0) >= (first.promptTokens ?? 0) - 1, `reused ${continued.reusedTokens} of ${first.promptTokens} tokens`);
      const shown = await waitFor(() => normalise(api.chat.panel()?.turns.at(-1)?.text ?? '') === normalise(after.text), { timeoutMs: 30_000 });
      assert.ok(shown, 'the panel does not show the continued answer');

      // One log line per request: both requests, with their purpose and finish reason.
      const logText = engineLogText();
      if (logText !== undefined) {
        const lines = await waitFor(
          () => {
            const text = engineLogText() ?? '';
            const found = text
              .split('\n')
              .filter((line) =>
                /request chat-\S+: ask, [\d,]+ prompt tokens \([\d,]+ cached\), [\d,]+ files?, first token [^,]+, total [^,]+, [\d,]+ tokens?, finish \w+/.test(
                  line,
                ),
              );
            return found.length >= 1 && text.split('\n').some((line) => /request chat-\S+: chat, .* finish /.test(line)) ? found : undefined;
          },
          { timeoutMs: 30_000 },
        );
        assert.ok(lines, `no per-request log lines in the Tidal Engine log:\n${(engineLogText() ?? '').split('\n').slice(-15).join('\n')}`);
        assert.ok(
          lines.some((line) => /, 24 tokens, finish length$/.test(line)),
          lines.join('\n'),
        );
      }
    } finally {
      await setAnswerTokens(undefined);
    }
  },
  { timeoutMs: 300_000 },
);

test(
  'answers: the demo model looping in an answer is stopped as repetition, with a marker and Regenerate',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(90_000), 'ready');
    await setAnswerTokens(900);
    try {
      await api.chat.idle();
      await vscode.commands.executeCommand('tidal.askAboutRepo', 'List every function in the repository.');
      const answer = api.chat.lastAnswer();
      assert.ok(answer && !answer.error, JSON.stringify(answer));
      assert.equal(answer.finishReason, 'repetition', `finish ${answer.finishReason} after ${answer.tokens} tokens: ${answer.text.slice(-300)}`);
      assert.ok(answer.tokens < 900);
      const marked = await waitFor(
        () => {
          const visible = api.chat.panel()?.visibleText ?? '';
          return visible.includes('Stopped: the answer kept repeating itself.') && /\bRegenerate\b/.test(visible);
        },
        { timeoutMs: 30_000 },
      );
      assert.ok(marked, `no repetition marker: ${api.chat.panel()?.visibleText.slice(-400)}`);
    } finally {
      await setAnswerTokens(undefined);
      // The chat tests that follow count the turns of a conversation of their own.
      await vscode.commands.executeCommand('tidal.newChat');
    }
  },
  { timeoutMs: 300_000 },
);
