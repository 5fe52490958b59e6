// Integration tests of the reviewed edits in a real VS Code (#23): a chat code block's Apply
// button and "Edit Selection with Instruction" (tidal.inlineEdit) both write a proposal into the
// file and show it hunk by hunk with CodeLenses; the tests press those lenses' commands as a
// click would and check the file's text exactly.
//
// The answers are fixed: the extension talks to a small OpenAI-compatible server on loopback
// (tidal.backend = remote) that answers every chat request with the text the test set, and
// records what it was asked. So the whole path runs as in use (panel, messages, command, the
// remote backend, code extraction, placement, review) and only the model's words are chosen.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { withFakeServer } = require('./fakeServer');
const { test, waitFor, captureWorkbench, tidalApi } = require('./harness');

/** @typedef {import('../../../src/vscode/testApi').TidalApi} TidalApi */

async function openFixture(relative) {
  const folder = vscode.workspace.workspaceFolders[0];
  const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, ...relative.split('/')));
  return vscode.window.showTextDocument(document, { preview: false });
}

/** Puts `text` back as the file's content, saved (later tests see the fixture as it was). */
async function restore(document, text) {
  if (document.getText() !== text) {
    const edit = new vscode.WorkspaceEdit();
    edit.replace(document.uri, new vscode.Range(0, 0, document.lineCount, 0), text);
    await vscode.workspace.applyEdit(edit);
  }
  if (document.isDirty) await document.save();
}

// Our own queries for CodeLenses under way; a CodeLens request that comes meanwhile is theirs.
let ownLensQueries = 0;

/** The review's CodeLenses on `uri`, as the editor asks for them: { line, title, command, arguments }. */
async function reviewLenses(uri) {
  ownLensQueries += 1;
  let lenses;
  try {
    lenses = (await vscode.commands.executeCommand('vscode.executeCodeLensProvider', uri)) ?? [];
  } finally {
    ownLensQueries -= 1;
  }
  return lenses
    .filter((lens) => lens.command && lens.command.command.startsWith('tidal.'))
    .map((lens) => ({ line: lens.range.start.line, title: lens.command.title, command: lens.command.command, arguments: lens.command.arguments ?? [] }));
}

/**
 * Counts the editor's own CodeLens requests for `uri` (an empty provider beside the review's:
 * the editor asks every provider at once). The screenshots wait for one after the review
 * started, so that the lenses they show are drawn, not still on their way.
 */
function watchEditorLensRequests(uri) {
  const watch = { requests: 0 };
  const provider = vscode.languages.registerCodeLensProvider(
    { pattern: '**' },
    {
      provideCodeLenses: (document) => {
        if (document.uri.toString() === uri.toString() && ownLensQueries === 0) watch.requests += 1;
        return [];
      },
    },
  );
  return Object.assign(watch, {
    /** Waits (5 s at most: the screenshot is taken either way) for a request after `since`. */
    after: (since) => waitFor(() => watch.requests > since, { timeoutMs: 5_000, intervalMs: 20 }),
    dispose: () => provider.dispose(),
  });
}

/** Does what a click on `lens` does: runs its command with its arguments. */
const click = (lens) => vscode.commands.executeCommand(lens.command, ...lens.arguments);

const KV_CACHE_TRIM = [
  '  // Drops every position from `position` on, e.g. after the user edits the text there.',
  '  trim(position: number): void {',
  '    this.length = Math.min(this.length, Math.max(0, position));',
  '  }',
].join('\n');
const KV_CACHE_TRIM_CHECKED = [
  '  // Drops every position from `position` on, e.g. after the user edits the text there.',
  '  trim(position: number): void {',
  '    if (!Number.isInteger(position)) throw new RangeError(`position must be an integer, not ${position}`);',
  '    this.length = Math.min(this.length, Math.max(0, position));',
  '  }',
].join('\n');

/** Opens the fixture src/kvCache.ts, which must hold KV_CACHE_TRIM: its document and text. */
async function openKvCache() {
  const document = (await openFixture('src/kvCache.ts')).document;
  const original = document.getText();
  assert.ok(original.includes(`${KV_CACHE_TRIM}\n`), 'the fixture src/kvCache.ts changed; update this test');
  return { document, original };
}

test(
  'chat Apply: the code block goes into the file it names, reviewed with CodeLenses; Accept All leaves the new text',
  async () => {
    const api = await tidalApi();
    await withFakeServer(api, async (server) => {
      const { document: kvCache, original } = await openKvCache();
      // Another file in front: the block names src/kvCache.ts, so that is where it must go.
      const python = await openFixture('src/select_top_k.py');
      python.selection = new vscode.Selection(0, 0, 0, 0);
      const lensRequests = watchEditorLensRequests(kvCache.uri);
      try {
        server.answer = [
          '`trim` takes any number today. In `src/kvCache.ts`, refuse a position that is not an integer:',
          '',
          '```ts',
          KV_CACHE_TRIM_CHECKED,
          '```',
          '',
          'The rest of the class stays as it is.',
          '',
        ].join('\n');
        await vscode.commands.executeCommand('tidal.openChat');
        assert.ok(await waitFor(() => api.chat.panel() !== undefined, { timeoutMs: 30_000 }), 'the chat panel never reported a render');
        await vscode.commands.executeCommand('tidal.askAboutRepo', 'Make trim refuse a position that is not an integer.');
        assert.equal(api.chat.lastAnswer()?.error, undefined, `the answer failed: ${api.chat.lastAnswer()?.error}`);
        assert.equal(api.chat.lastAnswer()?.text, server.answer);
        assert.equal(server.chatRequests.length, 1);
        // The panel shows the answer, its code block with the Apply button.
        const shown = await waitFor(
          () => {
            const panel = api.chat.panel();
            return panel?.turns.at(-1)?.text === server.answer && /\bApply\b/.test(panel.visibleText) ? panel : undefined;
          },
          { timeoutMs: 30_000 },
        );
        assert.ok(shown, `the panel does not show the answer with an Apply button: ${api.chat.panel()?.visibleText.slice(-400)}`);

        api.chat.pressCodeButton('apply', 0);
        const review = await waitFor(() => api.review(kvCache.uri), { timeoutMs: 30_000 });
        assert.ok(review, 'pressing Apply started no review in src/kvCache.ts');
        const requestsAtReview = lensRequests.requests;
        assert.equal(vscode.window.activeTextEditor?.document.uri.toString(), kvCache.uri.toString(), 'the file Apply changed is not in front');
        const expected = original.replace(`${KV_CACHE_TRIM}\n`, `${KV_CACHE_TRIM_CHECKED}\n`);
        assert.equal(kvCache.getText(), expected, 'the proposal in the document is not the block in place of trim()');
        // One hunk: the added line, marked inserted.
        const addedLine = expected.split('\n').findIndex((line) => line.includes('RangeError'));
        assert.deepEqual(
          review.hunks.map((hunk) => ({ start: hunk.start, count: hunk.count, original: hunk.original })),
          [{ start: addedLine, count: 1, original: '' }],
        );
        assert.deepEqual(review.insertedLines, [addedLine]);
        assert.equal(python.document.isDirty, false, 'the file in front when Apply was pressed was changed');

        const lenses = await waitFor(
          async () => {
            const found = await reviewLenses(kvCache.uri);
            return found.some((lens) => lens.command === 'tidal.acceptAllHunks') ? found : undefined;
          },
          { timeoutMs: 20_000 },
        );
        assert.ok(lenses, 'no review CodeLenses on src/kvCache.ts');
        assert.deepEqual(
          lenses.map((lens) => [lens.line, lens.title]),
          [
            [addedLine, '$(check-all) Accept All (1)'],
            [addedLine, '$(discard) Reject All'],
            [addedLine, '$(diff) Show Diff'],
            [addedLine, '$(check) Accept'],
            [addedLine, '$(close) Reject (−0 +1)'],
          ],
        );
        vscode.window.activeTextEditor?.revealRange(new vscode.Range(addedLine, 0, addedLine, 0), vscode.TextEditorRevealType.InCenter);
        await lensRequests.after(requestsAtReview);
        const seen = await captureWorkbench('integration-chat-apply-review', { waitForChatView: true });
        if (seen) assert.match(seen.workbench.chatWebviewText, /Apply/);

        assert.equal(await click(lenses.find((lens) => lens.command === 'tidal.acceptAllHunks')), true);
        assert.ok(await waitFor(() => api.review(kvCache.uri) === undefined, { timeoutMs: 10_000 }), 'the review is still running after Accept All');
        assert.deepEqual(await reviewLenses(kvCache.uri), [], 'review CodeLenses left after Accept All');
        assert.equal(kvCache.getText(), expected);
        await kvCache.save();
        assert.equal(Buffer.from(await vscode.workspace.fs.readFile(kvCache.uri)).toString('utf8'), expected, 'the saved file does not hold the new text');
      } finally {
        lensRequests.dispose();
        await restore(kvCache, original);
      }
    });
  },
  { timeoutMs: 300_000 },
);

test(
  'a code block while it streams: Copy takes what is there, Insert, New file and Apply wait for its closing fence; complete, Apply reviews it',
  async () => {
    const api = await tidalApi();
    await withFakeServer(api, async (server) => {
      const { document: kvCache, original } = await openKvCache();
      const checkLine = KV_CACHE_TRIM_CHECKED.split('\n')[2];
      server.answer = [
        'In `src/kvCache.ts`, refuse a position that is not an integer:',
        '',
        '```ts',
        KV_CACHE_TRIM_CHECKED,
        '```',
        '',
        'Nothing else changes.',
        '',
      ].join('\n');
      // The server sends the answer up to the new check, inside the block, and waits there.
      let resume;
      server.pause = { after: `${checkLine}\n`, until: new Promise((resolve) => (resume = resolve)) };
      const partial = server.answer.slice(0, server.answer.indexOf(checkLine) + checkLine.length + 1);
      try {
        await vscode.commands.executeCommand('tidal.openChat');
        assert.ok(await waitFor(() => api.chat.panel() !== undefined, { timeoutMs: 30_000 }), 'the chat panel never reported a render');
        await vscode.commands.executeCommand('tidal.newChat');
        const asked = vscode.commands.executeCommand('tidal.askAboutRepo', 'Make trim refuse a position that is not an integer.');
        const buttonsOf = (panel) =>
          Object.fromEntries(panel.codeButtons.filter((button) => button.block === 0).map((button) => [button.action, button.disabled]));
        const streaming = await waitFor(
          () => {
            const panel = api.chat.panel();
            return panel?.turns.at(-1)?.text === partial && panel.codeButtons.length > 0 ? panel : undefined;
          },
          { timeoutMs: 60_000 },
        );
        assert.ok(streaming, `the panel never showed the half-written block: ${JSON.stringify(api.chat.panel()?.turns.at(-1)?.text)}`);
        assert.equal(api.chat.busy(), true, 'the answer is not running while the server holds it');
        assert.deepEqual(buttonsOf(streaming), { copy: false, insert: true, newFile: true, apply: true }, 'the open block’s buttons');
        const seen = await captureWorkbench('integration-chat-code-block-streaming', { waitForChatView: true });
        if (seen) assert.match(seen.workbench.chatWebviewText, /Number\.isInteger/, 'the half-written block is not on screen');

        // Pressed while disabled, Apply and Insert send nothing; Copy takes the lines written so far.
        const before = api.chat.codeActions().length;
        api.chat.pressCodeButton('apply', 0);
        api.chat.pressCodeButton('insert', 0);
        api.chat.pressCodeButton('copy', 0);
        assert.ok(await waitFor(() => api.chat.codeActions().length > before, { timeoutMs: 10_000 }), 'Copy sent nothing');
        assert.ok(
          await waitFor(async () => (await vscode.env.clipboard.readText()).includes('Number.isInteger'), { timeoutMs: 10_000 }),
          'Copy did not put the block so far on the clipboard',
        );
        assert.deepEqual(api.chat.codeActions().slice(before), ['copy'], 'a disabled button sent its action');
        const copied = await vscode.env.clipboard.readText();
        assert.equal(copied, KV_CACHE_TRIM_CHECKED.split('\n').slice(0, 3).join('\n') + '\n', 'Copy took something else than the lines written so far');
        assert.equal(api.review(kvCache.uri), undefined, 'a review started from a half-written block');
        assert.equal(kvCache.getText(), original, 'the file changed while the block was half written');

        // The rest arrives: the block is closed and every button can be pressed.
        resume();
        await asked;
        assert.equal(api.chat.lastAnswer()?.error, undefined, `the answer failed: ${api.chat.lastAnswer()?.error}`);
        assert.equal(api.chat.lastAnswer()?.text, server.answer);
        const done = await waitFor(
          () => {
            const panel = api.chat.panel();
            return panel?.turns.at(-1)?.text === server.answer && panel.codeButtons.length > 0 ? panel : undefined;
          },
          { timeoutMs: 30_000 },
        );
        assert.ok(done, 'the panel does not show the finished answer');
        assert.deepEqual(buttonsOf(done), { copy: false, insert: false, newFile: false, apply: false }, 'the closed block’s buttons');
        api.chat.pressCodeButton('apply', 0);
        const review = await waitFor(() => api.review(kvCache.uri), { timeoutMs: 30_000 });
        assert.ok(review, 'Apply on the finished block started no review');
        assert.equal(
          kvCache.getText(),
          original.replace(`${KV_CACHE_TRIM}\n`, `${KV_CACHE_TRIM_CHECKED}\n`),
          'the proposal is not the whole block in place of trim()',
        );
        await vscode.commands.executeCommand('tidal.rejectAllHunks', kvCache.uri);
        assert.ok(await waitFor(() => api.review(kvCache.uri) === undefined, { timeoutMs: 10_000 }), 'the review is still running after Reject All');
        assert.equal(kvCache.getText(), original, 'Reject All did not give back the file');
      } finally {
        resume();
        await api.chat.idle();
        await restore(kvCache, original);
      }
    });
  },
  { timeoutMs: 300_000 },
);

const TOP_K = [
  'def select_top_k(scores: list[float], k: int) -> list[int]:',
  '    order = sorted(range(len(scores)), key=lambda position: scores[position], reverse=True)',
  '    return sorted(order[:k])',
].join('\n');
const DOCSTRING = '    """The k positions with the highest scores, in ascending order."""';
const RETURN_CLAMPED = '    return sorted(order[: max(k, 0)])';

test(
  'inline edit: the selected lines rewritten as two hunks; accept one, reject the other, and the file is exactly that',
  async () => {
    const api = await tidalApi();
    await withFakeServer(api, async (server) => {
      const editor = await openFixture('src/select_top_k.py');
      const document = editor.document;
      const original = document.getText();
      const first = original.split('\n').indexOf(TOP_K.split('\n')[0]);
      assert.ok(first >= 0 && original.includes(`${TOP_K}\n`), 'the fixture src/select_top_k.py changed; update this test');
      const lensRequests = watchEditorLensRequests(document.uri);
      try {
        // The model answers with the function documented and k clamped, in a fence after a sentence.
        const [signature, order] = TOP_K.split('\n');
        server.answer = ['Here it is:', '', '```python', signature, DOCSTRING, order, RETURN_CLAMPED, '```', ''].join('\n');
        // The three lines of the function, selected from the middle of the first to the middle of the last.
        editor.selection = new vscode.Selection(first, 4, first + 2, 10);
        const instruction = 'Add a docstring and treat a negative k as 0';
        const requestsBefore = lensRequests.requests;
        // The answer waits until the status bar has been seen busy with the edit.
        let answer;
        server.gate = new Promise((resolve) => (answer = resolve));
        const editing = vscode.commands.executeCommand('tidal.inlineEdit', instruction);
        const spinning = await waitFor(() => api.statusBarText().includes('$(sync~spin)'), { timeoutMs: 20_000 });
        answer();
        server.gate = undefined;
        assert.equal(await editing, true, 'the inline edit proposed nothing');
        assert.ok(spinning, `the status bar did not show the edit at work: ${api.statusBarText()}`);
        assert.ok(await waitFor(() => !api.statusBarText().includes('$(sync~spin)')), `the status bar still spins: ${api.statusBarText()}`);
        const asked = JSON.stringify(server.chatRequests.at(-1)?.messages ?? []);
        assert.ok(asked.includes(instruction), `the instruction is not in the request: ${asked.slice(0, 400)}`);
        assert.ok(asked.includes('reverse=True'), 'the selected lines are not in the request');

        const review = api.review(document.uri);
        assert.ok(review, 'no review after the inline edit');
        // Two hunks, one unchanged line between them: the docstring added, the return replaced.
        assert.deepEqual(
          review.hunks.map((hunk) => ({ start: hunk.start, count: hunk.count, original: hunk.original, proposed: hunk.proposed })),
          [
            { start: first + 1, count: 1, original: '', proposed: `${DOCSTRING}\n` },
            { start: first + 3, count: 1, original: '    return sorted(order[:k])\n', proposed: `${RETURN_CLAMPED}\n` },
          ],
        );
        const lenses = await waitFor(
          async () => {
            const found = await reviewLenses(document.uri);
            return found.filter((lens) => lens.command === 'tidal.acceptHunk').length === 2 ? found : undefined;
          },
          { timeoutMs: 20_000 },
        );
        assert.ok(lenses, `the review shows no Accept lens per hunk: ${JSON.stringify(await reviewLenses(document.uri))}`);
        await lensRequests.after(requestsBefore);
        await captureWorkbench('integration-inline-edit-review');

        const [docstringHunk, returnHunk] = review.hunks;
        const accept = lenses.find((lens) => lens.command === 'tidal.acceptHunk' && lens.arguments[1] === docstringHunk.id);
        assert.ok(accept && accept.line === first + 1, `no Accept lens over the docstring: ${JSON.stringify(lenses)}`);
        assert.equal(await click(accept), true);
        const after = await waitFor(
          async () => {
            const found = await reviewLenses(document.uri);
            return found.filter((lens) => lens.command === 'tidal.acceptHunk').length === 1 ? found : undefined;
          },
          { timeoutMs: 20_000 },
        );
        assert.ok(after, 'the accepted hunk still has its lenses');
        const reject = after.find((lens) => lens.command === 'tidal.rejectHunk' && lens.arguments[1] === returnHunk.id);
        assert.ok(reject && reject.line === first + 3, `no Reject lens over the return: ${JSON.stringify(after)}`);
        assert.equal(reject.title, '$(close) Reject (−1 +1)');
        assert.equal(await click(reject), true);

        assert.ok(
          await waitFor(() => api.review(document.uri) === undefined, { timeoutMs: 10_000 }),
          'the review is still running after both hunks were decided',
        );
        const expected = original.replace(`${TOP_K}\n`, `${[signature, DOCSTRING, order, '    return sorted(order[:k])'].join('\n')}\n`);
        assert.equal(document.getText(), expected);
        assert.notEqual(expected, original);
      } finally {
        lensRequests.dispose();
        await restore(document, original);
      }
    });
  },
  { timeoutMs: 300_000 },
);
