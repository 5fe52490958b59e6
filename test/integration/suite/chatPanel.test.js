// Integration tests of the chat panel's place and controls (#22): the view opens in the
// secondary side bar (not in place of the Explorer); its title bar has New Chat, Show Chat
// History and Open Settings, pressed here on screen as a person would; History lists the
// workspace's conversations and reopens an earlier one; the header's model button shows the
// model's name and opens Select Model; code blocks have icon buttons.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { withFakeServer } = require('./fakeServer');
const { test, waitFor, captureWorkbench, tidalApi } = require('./harness');

/** @typedef {import('../../../src/vscode/testApi').TidalApi} TidalApi */

const VIEW_ACTIONS = ['New Chat', 'Show Chat History', 'Open Settings'];
const CODE_ANSWER = [
  '`trim` drops the positions from the end. In `src/kvCache.ts`:',
  '',
  '```ts',
  'trim(position: number): void {',
  '  this.length = Math.min(this.length, position);',
  '}',
  '```',
  '',
].join('\n');

/** Asks `question` through the command and waits until the panel shows the answer. */
async function askAndShow(api, question) {
  await vscode.commands.executeCommand('tidal.askAboutRepo', question);
  assert.equal(api.chat.lastAnswer()?.error, undefined, `the answer failed: ${api.chat.lastAnswer()?.error}`);
  const answer = api.chat.lastAnswer()?.text;
  const shown = await waitFor(() => api.chat.panel()?.turns.at(-1)?.text === answer, { timeoutMs: 30_000 });
  assert.ok(shown, `the panel does not show the answer to "${question}"`);
}

test(
  'the chat opens in the secondary side bar with New Chat, History and Settings in its title bar, and icon buttons on code blocks',
  async () => {
    const api = await tidalApi();
    await withFakeServer(api, async (server) => {
      server.answer = CODE_ANSWER;
      await vscode.commands.executeCommand('tidal.openChat');
      assert.ok(await waitFor(() => api.chat.panel() !== undefined, { timeoutMs: 30_000 }), 'the chat panel never reported a render');
      await vscode.commands.executeCommand('tidal.newChat');
      await askAndShow(api, 'How is the KV cache trimmed?');
      const seen = await captureWorkbench('integration-chat-panel', { waitForChatView: true });
      if (!seen) return; // the electron runner takes no screenshots
      assert.equal(seen.workbench.chatLocation, 'auxiliarybar', `the chat is not in the secondary side bar: ${JSON.stringify(seen.workbench)}`);
      for (const label of VIEW_ACTIONS)
        assert.ok(
          seen.workbench.viewTitleActions.some((action) => action.startsWith(label)),
          `no "${label}" action in the view's title bar: ${seen.workbench.viewTitleActions}`,
        );
      // The code block's buttons are icons whose labels are there for a screen reader; no text button New chat.
      assert.match(seen.workbench.chatWebviewText, /How is the KV cache trimmed\?/);
      assert.doesNotMatch(seen.workbench.chatWebviewText, /^New chat$/m);
      // The Explorer keeps its place in the primary side bar.
      assert.notEqual(seen.workbench.sidebarTitle?.toLowerCase().includes('tidal'), true, `the primary side bar shows ${seen.workbench.sidebarTitle}`);
    });
  },
  { timeoutMs: 240_000 },
);

test(
  'New Chat empties the panel; History lists the conversations and reopens an earlier one; Settings opens the Tidal settings',
  async () => {
    const api = await tidalApi();
    await withFakeServer(api, async (server) => {
      await vscode.commands.executeCommand('tidal.openChat');
      await vscode.commands.executeCommand('tidal.newChat');
      server.answer = 'First answer.';
      await askAndShow(api, 'First question about the cache?');
      const pressed = await captureWorkbench('integration-chat-new-chat', { clickViewAction: 'New Chat' });
      if (!pressed) return;
      assert.equal(pressed.clickedViewAction, true, 'no New Chat action on screen');
      assert.ok(
        await waitFor(() => api.chat.turns().length === 0 && api.chat.panel()?.turns.length === 0, { timeoutMs: 20_000 }),
        `New Chat left ${api.chat.turns().length} turns`,
      );

      server.answer = 'Second answer.';
      await askAndShow(api, 'Second question about the index?');
      assert.equal((await captureWorkbench('integration-chat-new-chat-2', { clickViewAction: 'New Chat' })).clickedViewAction, true);
      assert.ok(await waitFor(() => api.chat.turns().length === 0, { timeoutMs: 20_000 }));

      const history = await captureWorkbench('integration-chat-history', { clickViewAction: 'Show Chat History', waitForQuickInput: 'Chat History' });
      assert.equal(history.clickedViewAction, true, 'no Show Chat History action on screen');
      const items = history.workbench.quickInput?.items ?? [];
      assert.ok(items.length >= 2, `the history lists ${JSON.stringify(history.workbench.quickInput)}`);
      assert.match(items[0], /Second question about the index\?/);
      assert.match(items[1], /First question about the cache\?/);

      // The second row, as a person would: down, Enter.
      await captureWorkbench('integration-chat-history-opened', { press: ['ArrowDown', 'Enter'], waitForChatView: true });
      const reopened = await waitFor(
        () => {
          const texts = api.chat.panel()?.turns.map((turn) => turn.text) ?? [];
          return texts.length === 2 && texts[0] === 'First question about the cache?' && texts[1] === 'First answer.';
        },
        { timeoutMs: 20_000 },
      );
      assert.ok(reopened, `History did not reopen the first conversation: ${JSON.stringify(api.chat.turns())}`);
      assert.deepEqual(
        api.chat.turns().map((turn) => turn.text),
        ['First question about the cache?', 'First answer.'],
      );

      const settings = await captureWorkbench('integration-chat-settings', { clickViewAction: 'Open Settings' });
      assert.equal(settings.clickedViewAction, true, 'no Open Settings action on screen');
      const tab = await waitFor(
        () => {
          const active = vscode.window.tabGroups.activeTabGroup.activeTab;
          return active?.label === 'Settings' ? active : undefined;
        },
        { timeoutMs: 20_000 },
      );
      assert.ok(tab, `Open Settings did not open the Settings editor (active tab: ${vscode.window.tabGroups.activeTabGroup.activeTab?.label})`);
      await vscode.window.tabGroups.close(tab);
    });
  },
  { timeoutMs: 300_000 },
);

test(
  "the header's model button shows the model's name and opens Select Model",
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(120_000), 'ready', `model: ${JSON.stringify(api.getState().model)}`);
    await vscode.commands.executeCommand('tidal.openChat');
    const shown = await captureWorkbench('integration-chat-model-button', { waitForChatView: true, clickInChat: '#model', waitForQuickInput: 'Select Model' });
    if (!shown) return;
    assert.equal(shown.clickedInChat, true, 'no model button in the chat header');
    assert.match(shown.workbench.chatWebviewText, /tidal-code-mini \(demo model\)/, 'the header does not name the model as the demo it is');
    assert.ok(shown.workbench.quickInput, 'the model button opened no quick pick');
    assert.match(shown.workbench.quickInput.title, /Select Model/);
    // Each recommended model in its weight formats: bf16 safetensors, then Q8_0 and Q4_K_M GGUF.
    const rows = shown.workbench.quickInput.items;
    for (const format of ['', ' Q8_0', ' Q4_K_M'])
      assert.ok(
        rows.some((row) => row.trim().endsWith(`Qwen2.5-Coder 0.5B Instruct${format}`)),
        `no row for Qwen2.5-Coder 0.5B Instruct${format}: ${JSON.stringify(rows)}`,
      );
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
  },
  { timeoutMs: 180_000 },
);
