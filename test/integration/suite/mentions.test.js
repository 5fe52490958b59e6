// Integration test of mentions in the chat panel: a file (typed as `#kvc` and picked from the
// completion list with Enter), the editor's selection and the active file's problems (a
// diagnostic this test sets) are attached as chips in the composer, a fourth
// chip (the git diff) is removed with its × button, the question is sent with Enter, and
// the prompt that went to the engine holds what was attached, under its headers, and nothing
// of the removed chip. The sent question shows its attachments. Screenshots of the chips and
// of the sent question.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { test, waitFor, captureWorkbench } = require('./harness');

/** @typedef {import('../../../src/vscode/testApi').TidalApi} TidalApi */

async function tidalApi() {
  const extension = vscode.extensions.getExtension('tidal-code.tidal-code');
  assert.ok(extension, 'the Tidal extension is not installed');
  /** @type {TidalApi} */
  const api = await extension.activate();
  assert.ok(api && api.chat && api.chat.attach, 'activate() returned no chat API with attach()');
  return api;
}

const normalise = (text) => text.replace(/\s+/g, ' ').trim();
const sameList = (a, b) => a.length === b.length && a.every((item, i) => item === b[i]);

test(
  'mentions: a file, the selection and problems attached as chips reach the engine; a removed chip does not',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(90_000), 'ready', `model: ${JSON.stringify(api.getState().model)}`);
    const folder = vscode.workspace.workspaceFolders[0];
    const pyUri = vscode.Uri.joinPath(folder.uri, 'src', 'select_top_k.py');
    const document = await vscode.workspace.openTextDocument(pyUri);
    const editor = await vscode.window.showTextDocument(document);
    editor.selection = new vscode.Selection(0, 0, 2, 0);
    const selectedText = document.getText(editor.selection);
    assert.ok(selectedText.trim().length > 0, 'the fixture file has nothing to select');

    // A problem on line 2 of the active file, as a language server would report it.
    const problemMessage = 'Mention test: k may exceed len(scores)';
    const diagnostics = vscode.languages.createDiagnosticCollection('tidal-mentions-test');
    const diagnostic = new vscode.Diagnostic(new vscode.Range(1, 0, 1, 10), problemMessage, vscode.DiagnosticSeverity.Error);
    diagnostic.source = 'mentions-test';
    diagnostics.set(pyUri, [diagnostic]);
    try {
      assert.ok(await waitFor(() => vscode.languages.getDiagnostics(pyUri).some((d) => d.message === problemMessage)), 'the diagnostic was not published');

      await vscode.commands.executeCommand('tidal.openChat');
      assert.ok(await waitFor(() => api.chat.panel() !== undefined, { timeoutMs: 30_000 }), 'the chat panel never reported a render');
      const turnsAtStart = api.chat.turns().length;
      // The file through `#` completion, typed in the composer: the list offers the file first, Enter picks it.
      const question = 'How do these fit together?';
      api.chat.composer({ text: `${question} #kvc` });
      const offered = await waitFor(() => (api.chat.mentionOptions()[0] === 'src/kvCache.ts' ? api.chat.mentionOptions() : undefined), { timeoutMs: 30_000 });
      assert.ok(offered, `the # list offers ${JSON.stringify(api.chat.mentionOptions())}`);
      const completion = await captureWorkbench('mentions-completion', { waitForChatView: true });
      if (completion) assert.ok(normalise(completion.workbench.chatWebviewText).includes('src/kvCache.ts'), 'the # list is not shown');
      api.chat.composer({ press: 'Enter' });
      assert.ok(
        await waitFor(() => sameList(api.chat.composerAttachments(), ['src/kvCache.ts']) && api.chat.mentionOptions().length === 0, { timeoutMs: 30_000 }),
        `chips after Enter: ${JSON.stringify(api.chat.composerAttachments())}`,
      );
      assert.equal(api.chat.turns().length, turnsAtStart, 'Enter in the # list sent the question');

      // The rest as the paperclip's quick pick adds them. The chat view has the focus now; the selection stays in the editor it was made in.
      const attached = ['src/kvCache.ts', '#selection', '#problems', '#diff'];
      api.chat.attach(attached.slice(1));
      assert.ok(
        await waitFor(() => sameList(api.chat.composerAttachments(), attached), { timeoutMs: 30_000 }),
        `chips: ${JSON.stringify(api.chat.composerAttachments())}`,
      );
      const withChips = await captureWorkbench('mentions-chips', { waitForChatView: true });

      // The git diff chip's × button, pressed in the panel.
      api.chat.composer({ remove: '#diff' });
      const kept = attached.filter((id) => id !== '#diff');
      assert.ok(
        await waitFor(() => sameList(api.chat.composerAttachments(), kept), { timeoutMs: 30_000 }),
        `chips after removing: ${JSON.stringify(api.chat.composerAttachments())}`,
      );

      const turnsBefore = api.chat.turns().length;
      api.chat.composer({ press: 'Enter' });
      // The question is asked; once the engine has streamed a first chunk it has the prompt, and the answer is stopped.
      const started = await waitFor(
        () => {
          const answer = api.chat.lastAnswer();
          const answerTurn = api.chat.turns().length >= turnsBefore + 2 ? api.chat.turns().at(-1) : undefined;
          return answerTurn && answer && (answer.chunks >= 1 || answerTurn.status !== 'streaming');
        },
        { timeoutMs: 120_000, intervalMs: 20 },
      );
      assert.ok(started, `no answer started: ${JSON.stringify(api.chat.turns().slice(-2))}`);
      api.chat.stop();
      await api.chat.idle();
      const answer = api.chat.lastAnswer();
      assert.equal(answer.error, undefined, `the answer failed: ${answer.error}`);
      assert.ok(answer.promptTokens > 0, 'the engine reported no prompt');

      const userTurn = api.chat.turns().at(-2);
      assert.equal(userTurn.text, question);
      assert.deepEqual(userTurn.attachments, kept);
      assert.deepEqual(api.chat.composerAttachments(), [], 'the chips stay after sending');

      const prompt = answer.messages?.at(-1)?.content ?? '';
      assert.ok(prompt.endsWith(question), `the question is not last: ${prompt.slice(-200)}`);
      const before = prompt.slice(0, prompt.length - question.length);
      const kvCache = new TextDecoder().decode(await vscode.workspace.fs.readFile(vscode.Uri.joinPath(folder.uri, 'src', 'kvCache.ts')));
      assert.ok(before.includes('Attached file src/kvCache.ts:'), 'no header for the attached file');
      assert.ok(before.includes(kvCache.trim()), 'the attached file is not in the prompt whole');
      // The selection ends at column 0 of line 3: that line is not part of it (lines 1-2).
      assert.ok(before.includes('Attached selection in src/select_top_k.py, lines 1-2:'), `no header for the selection: ${before.slice(0, 400)}`);
      assert.ok(before.includes(selectedText.trim()), 'the selection is not in the prompt');
      assert.ok(before.includes('Problems in src/select_top_k.py (VS Code diagnostics):'), 'no header for the problems');
      assert.ok(before.includes(`src/select_top_k.py:2 error: ${problemMessage} [mentions-test]`), `the problem is not in the prompt: ${before}`);
      assert.ok(!before.includes('Git diff'), 'the removed git diff chip still reached the prompt');
      assert.deepEqual(answer.cutToFit, undefined, 'nothing should be cut in this small workspace');

      // The sent question shows its attachments as chips.
      const shown = await waitFor(
        () => {
          const text = normalise(api.chat.panel()?.visibleText ?? '');
          return text.includes(question) && text.includes('Problems (active file)') && text.includes('src/kvCache.ts') ? text : undefined;
        },
        { timeoutMs: 30_000 },
      );
      assert.ok(shown, `the panel does not show the sent attachments: ${normalise(api.chat.panel()?.visibleText ?? '').slice(-400)}`);

      const sent = await captureWorkbench('mentions-sent', { waitForChatView: true });
      if (withChips) {
        const text = normalise(withChips.workbench.chatWebviewText);
        for (const label of ['src/kvCache.ts', 'Selection', 'Problems (active file)', 'Git diff'])
          assert.ok(text.includes(label), `the chips lack ${label}: ${text.slice(-300)}`);
      }
      if (sent) assert.ok(normalise(sent.workbench.chatWebviewText).includes('Problems (active file)'));
    } finally {
      diagnostics.dispose();
    }
  },
  { timeoutMs: 300_000 },
);
