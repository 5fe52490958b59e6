// Integration test of what the context-menu commands send, in the real VS Code (the remote
// backend on a fake OpenAI-compatible server, suite/fakeServer.js, so the request on the wire
// is at hand and answers are instant): "Explain with Tidal" and "Ask Tidal About the
// Selection" quote the selection in the question, and the chat's editor context does not add
// it a second time; a question typed in the panel gets the selection as its own block, its
// lines counted as whole lines (a selection ending at column 0 ends on the line before).
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { withFakeServer } = require('./fakeServer');
const { test, waitFor, tidalApi } = require('./harness');

/** @typedef {import('../../../src/vscode/testApi').TidalApi} TidalApi */

const occurrences = (text, part) => text.split(part).length - 1;

/** Opens src/select_top_k.py with lines 4-6 selected, from column 0 of line 4 to column 0 of line 7. */
async function selectLines() {
  const folder = vscode.workspace.workspaceFolders[0];
  const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, 'src', 'select_top_k.py'));
  const editor = await vscode.window.showTextDocument(document, { preview: false });
  editor.selection = new vscode.Selection(3, 0, 6, 0);
  return document.getText(editor.selection);
}

/** Waits until the chat has answered a new question; returns what the server got for it. */
async function answered(api, server, turnsBefore) {
  const done = await waitFor(() => api.chat.turns().length >= turnsBefore + 2 && !api.chat.busy() && api.chat.turns().at(-1).status === 'done', {
    timeoutMs: 60_000,
  });
  assert.ok(done, `no answer: ${JSON.stringify(api.chat.turns().slice(-2))}`);
  const request = server.chatRequests.at(-1);
  assert.ok(request, 'the server got no request');
  // The question's own message (earlier exchanges come before it).
  return { sent: api.chat.lastAnswer().messages.at(-1).content, wire: request.messages.at(-1).content };
}

test(
  'context menu: Explain and Ask About the Selection send the selected code once; a typed question gets it as whole lines',
  async () => {
    const api = await tidalApi();
    await withFakeServer(api, async (server) => {
      server.answer = 'It picks the k highest scores.';
      const selected = await selectLines();
      assert.match(selected, /^def select_top_k[\s\S]*return sorted\(order\[:k\]\)\n$/);
      await vscode.commands.executeCommand('tidal.openChat');
      assert.ok(await waitFor(() => api.chat.panel() !== undefined, { timeoutMs: 30_000 }), 'the chat panel never reported a render');

      for (const [command, ...args] of [['tidal.explainSelection'], ['tidal.askAboutSelection', 'Why is the order sorted twice?']]) {
        await selectLines();
        const turnsBefore = api.chat.turns().length;
        await vscode.commands.executeCommand(command, ...args);
        const { sent, wire } = await answered(api, server, turnsBefore);
        assert.ok(sent.includes('src/select_top_k.py (lines 4-6):'), `${command}: ${sent}`);
        assert.ok(!sent.includes('Selection in'), `${command}: the selection came a second time:\n${sent}`);
        // Once quoted, once in the active file's block (which holds the whole file).
        assert.ok(sent.includes('Active file src/select_top_k.py:'), `${command}: ${sent.slice(0, 300)}`);
        assert.equal(occurrences(sent, selected), 2, `${command}:\n${sent}`);
        assert.equal(occurrences(wire, selected), 2, `${command}: on the wire\n${wire}`);
      }

      // Typed in the panel: the question does not quote it, so the selection comes as its block.
      await selectLines();
      const turnsBefore = api.chat.turns().length;
      api.chat.composer({ text: 'What does the selected code return?', submit: true });
      const { sent } = await answered(api, server, turnsBefore);
      assert.ok(sent.includes('Selection in src/select_top_k.py, lines 4-6:'), sent);
      assert.equal(occurrences(sent, selected), 2, sent);
    });
  },
  { timeoutMs: 300_000 },
);
