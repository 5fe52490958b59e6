// The chat side panel: a webview view with a strict Content-Security-Policy (a nonce-gated
// script bundled into dist/chat-panel.js, styles from media/, nothing remote), VS Code theme
// colours. It forwards what the user does to the ChatSession (src/core/chat/chatSession.ts) and
// carries out the code-block actions (copy, insert at the cursor, open as a new file, apply to
// the file the block names through tidal.applyCodeBlock and its hunk review).
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';

import { locateRepositoryPath, repositoryPathOf } from '../core/context/workspaceFolders';

import { CONTEXT_MENTIONS, type ContextMention } from '../core/chat/mentions';
import {
  MAX_LISTED_FILES,
  parsePanelMessage,
  type ChatToPanel,
  type CodeAction,
  type CodeButtonState,
  type ComposerKey,
  type PanelToChat,
} from '../core/chat/chatMessages';
import type { ChatSession } from '../core/chat/chatSession';
import { Disposable } from './lifecycle';

/** What the panel last said it shows (its report after each render). */
export interface PanelSnapshot {
  turns: { role: 'user' | 'assistant'; text: string }[];
  visibleText: string;
  /** The question being written in the composer. */
  draft: string;
  /** Length of the last turn's text in each report so far (the last 500), to see an answer grow. */
  lastTurnLengths: number[];
  /** The last answer's code-block buttons as drawn. */
  codeButtons: CodeButtonState[];
}

// Fence languages to VS Code language ids, where they differ.
const LANGUAGE_IDS: Record<string, string> = {
  js: 'javascript',
  ts: 'typescript',
  py: 'python',
  sh: 'shellscript',
  bash: 'shellscript',
  shell: 'shellscript',
  'c++': 'cpp',
  rs: 'rust',
  yml: 'yaml',
  md: 'markdown',
};

export class ChatViewProvider extends Disposable implements vscode.WebviewViewProvider {
  static readonly viewId = 'tidal.chat';
  private view?: vscode.WebviewView;
  private lastEditor?: vscode.TextEditor;
  private snapshot?: PanelSnapshot;
  private codeActionsSeen: CodeAction[] = [];
  private readyListeners: (() => void)[] = [];
  /** The attachments the composer's chips show, as the panel last said. */
  private chips: string[] = [];
  /** The ids the composer's `#`/`@` list offers, as the panel last said (empty: no list). */
  private offered: string[] = [];
  /** Whether the panel's page has said it is ready (messages posted before that are lost). */
  private pageReady = false;
  private pendingDrafts: string[] = [];
  /** The busy state last posted to the panel, with its status line. */
  private busyPosted: { busy: boolean; status?: string } = { busy: false };
  private readonly statusesPosted: string[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly session: () => ChatSession,
    private readonly engineSummary: () => string,
  ) {
    super();
    this.lastEditor = vscode.window.activeTextEditor;
    this._register(
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        if (editor) this.lastEditor = editor;
      }),
    );
    // The view keeps its page while hidden, so a conversation in progress goes on streaming into it.
    this._register(vscode.window.registerWebviewViewProvider(ChatViewProvider.viewId, this, { webviewOptions: { retainContextWhenHidden: true } }));
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.pageReady = false;
    view.webview.options = {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, 'media'), vscode.Uri.joinPath(this.extensionUri, 'dist')],
    };
    view.webview.html = this.html(view.webview);
    this._register(
      view.webview.onDidReceiveMessage((message: unknown) => {
        const parsed = parsePanelMessage(message);
        if (parsed) void this.receive(parsed).catch((error) => this.post({ type: 'notice', text: (error as Error).message }));
      }),
    );
    this._register(
      view.onDidDispose(() => {
        if (this.view === view) this.view = undefined;
      }),
    );
  }

  get isVisible(): boolean {
    return this.view?.visible ?? false;
  }

  /** The panel's last report of what it shows; undefined before it rendered anything. */
  get panelSnapshot(): PanelSnapshot | undefined {
    return this.snapshot;
  }

  /** The editor the user worked in last (the panel has the focus while its buttons are used). */
  get editor(): vscode.TextEditor | undefined {
    const active = vscode.window.activeTextEditor;
    if (active) return active;
    return this.lastEditor && vscode.window.visibleTextEditors.includes(this.lastEditor) ? this.lastEditor : undefined;
  }

  /** Shows the panel and asks `question` in it (from the command palette); resolves when answered. */
  async ask(question: string, attachments: string[] = []): Promise<void> {
    await this.reveal();
    await this.session().ask(question, attachments, 'ask');
  }

  /** The chat the panel shows (the view-title actions act on it). */
  get chatSession(): ChatSession {
    return this.session();
  }

  /** Starts a new, empty chat (the view-title action); the one shown stays in the history. */
  async newChat(): Promise<void> {
    if (!this.isVisible) await this.reveal();
    await this.session().newChat();
  }

  /** Continues the last answer where it stopped at its token limit (its Continue button); resolves when answered. */
  async continueAnswer(): Promise<void> {
    await this.reveal();
    await this.session().continueAnswer();
  }

  /** Shows the panel and adds `text` to the question being written there (not sent). */
  async addToDraft(text: string): Promise<void> {
    await this.reveal();
    if (this.view && this.pageReady) this.post({ type: 'draft', text });
    else this.pendingDrafts.push(text);
  }

  /** The attachments the composer's chips show, as the panel last said. */
  get composerAttachments(): readonly string[] {
    return this.chips;
  }

  /** The ids the composer's `#`/`@` completion list offers now, best first; empty when it is closed. */
  get mentionOptions(): readonly string[] {
    return this.offered;
  }

  /** Adds attachments (file paths or mention ids such as '#selection') to the composer's chips. */
  attach(ids: string[]): void {
    if (ids.length > 0) this.post({ type: 'attach', paths: ids });
  }

  /** Drives the composer as a person would: text, a chip's remove button, Send. */
  driveComposer(action: { text?: string; press?: ComposerKey; remove?: string; submit?: boolean }): void {
    this.post({ type: 'composer', ...action });
  }

  async reveal(): Promise<void> {
    await vscode.commands.executeCommand(`${ChatViewProvider.viewId}.focus`);
  }

  /** Loads the panel's page again, as when the view is re-created; resolves once it is ready. */
  async reloadPanel(): Promise<void> {
    if (!this.view) return;
    const ready = new Promise<void>((resolve) => this.readyListeners.push(resolve));
    this.snapshot = undefined;
    this.pageReady = false;
    this.view.webview.html = this.html(this.view.webview);
    await ready;
  }

  refreshEngine(): void {
    this.post({ type: 'engine', summary: this.engineSummary() });
  }

  /** The busy state last posted to the panel and its status line (for the integration tests). */
  get busyStatus(): { busy: boolean; status?: string } {
    return this.busyPosted;
  }

  /** The last 200 status lines posted to the panel, oldest first (for the integration tests). */
  get statusLines(): readonly string[] {
    return this.statusesPosted;
  }

  post(message: ChatToPanel): void {
    if (message.type === 'busy') {
      this.busyPosted = { busy: message.busy, status: message.status };
      if (message.status && message.status !== this.statusesPosted.at(-1)) {
        this.statusesPosted.push(message.status);
        if (this.statusesPosted.length > 200) this.statusesPosted.shift();
      }
    }
    void this.view?.webview.postMessage(message);
  }

  private async receive(message: PanelToChat): Promise<void> {
    const session = this.session();
    switch (message.type) {
      case 'ready':
        this.pageReady = true;
        this.refreshEngine();
        session.showConversation();
        for (const text of this.pendingDrafts.splice(0)) this.post({ type: 'draft', text });
        for (const listener of this.readyListeners.splice(0)) listener();
        return;
      case 'ask':
        await session.ask(message.text, message.attachments);
        return;
      case 'stop':
        session.stop();
        return;
      case 'regenerate':
        await session.regenerate();
        return;
      case 'continue':
        await session.continueAnswer();
        return;
      case 'selectModel':
        await vscode.commands.executeCommand('tidal.selectModel');
        return;
      case 'pickAttachment':
        await this.pickAttachment();
        return;
      case 'listFiles':
        this.post({ type: 'files', paths: (await this.workspaceFiles()).map((file) => file.label) });
        return;
      case 'openFile':
        await this.openFile(message.path);
        return;
      case 'chips':
        this.chips = message.attachments;
        this.offered = message.offered ?? [];
        return;
      case 'codeAction':
        this.codeActionsSeen = [...this.codeActionsSeen, message.action].slice(-50);
        await this.codeAction(message);
        return;
      case 'rendered':
        this.snapshot = {
          turns: message.turns,
          visibleText: message.visibleText,
          draft: message.draft ?? '',
          lastTurnLengths: [...(this.snapshot?.lastTurnLengths ?? []), message.turns.at(-1)?.text.length ?? 0].slice(-500),
          codeButtons: message.codeButtons ?? [],
        };
        return;
    }
  }

  /** The Add context button: files, or the editor's selection, problems or git diff. */
  private async pickAttachment(): Promise<void> {
    const file = this.editor?.document;
    const items: (vscode.QuickPickItem & { id?: ContextMention })[] = [
      { label: '$(file) File…', detail: 'Workspace files, whole' },
      { label: `$(selection) ${CONTEXT_MENTIONS['#selection']}`, id: '#selection', detail: 'The text selected in the editor when the question is sent' },
      {
        label: `$(warning) ${CONTEXT_MENTIONS['#problems']}`,
        id: '#problems',
        description: file ? vscode.workspace.asRelativePath(file.uri) : undefined,
        detail: 'Errors and warnings of the active file',
      },
      { label: `$(warning) ${CONTEXT_MENTIONS['#problems:workspace']}`, id: '#problems:workspace', detail: 'Errors and warnings of every file' },
      { label: `$(git-compare) ${CONTEXT_MENTIONS['#diff']}`, id: '#diff', detail: 'Staged and unstaged changes, from the Git extension' },
    ];
    const picked = await vscode.window.showQuickPick(items, { title: 'Tidal: Add Context to the Question' });
    if (!picked) return;
    if (picked.id) return this.attach([picked.id]);
    const files = await vscode.window.showQuickPick(this.workspaceFiles(), {
      title: 'Tidal: Attach Files to the Question',
      canPickMany: true,
      matchOnDescription: true,
    });
    if (files && files.length > 0) this.attach(files.map((item) => item.label));
  }

  /** Workspace files by repository path (with several folders the folder's name first; gatherChatContext reads them back). */
  private async workspaceFiles(): Promise<{ label: string; uri: vscode.Uri }[]> {
    const files = await vscode.workspace.findFiles('**/*', '{**/node_modules/**,**/.git/**}', MAX_LISTED_FILES);
    const folders = vscode.workspace.workspaceFolders ?? [];
    return files
      .map((uri) => ({ label: repositoryPathOf(folders, uri) ?? vscode.workspace.asRelativePath(uri, false), uri }))
      .sort((a, b) => a.label.localeCompare(b.label));
  }

  /** Opens a repository path (as the engine names files in the prompt) in an editor. */
  private async openFile(repositoryPath: string): Promise<void> {
    const located = locateRepositoryPath(vscode.workspace.workspaceFolders ?? [], repositoryPath);
    const parts = located?.relative.split('/') ?? [];
    if (!located || parts.some((part) => part === '..' || part === '')) {
      void vscode.window.showWarningMessage(`Tidal: ${repositoryPath} is not a file of the open workspace folders.`);
      return;
    }
    try {
      await vscode.window.showTextDocument(vscode.Uri.joinPath(located.folder.uri, ...parts), { preview: true });
    } catch (error) {
      void vscode.window.showWarningMessage(`Tidal: cannot open ${repositoryPath}: ${(error as Error).message}`);
    }
  }

  /** The code-block actions the panel sent, oldest first (the last 50). */
  get codeActions(): readonly CodeAction[] {
    return this.codeActionsSeen;
  }

  /** Presses a code block's button in the last answer, as a person would (the tests' API). */
  pressCodeButton(action: CodeAction, block: number): void {
    this.post({ type: 'codeButton', action, block });
  }

  private async codeAction({ action, code, language, info, lineBefore }: Extract<PanelToChat, { type: 'codeAction' }>): Promise<void> {
    switch (action) {
      case 'copy':
        await vscode.env.clipboard.writeText(code);
        return;
      case 'insert': {
        const editor = this.editor;
        if (!editor) {
          void vscode.window.showWarningMessage('Tidal: open a file and place the cursor where the code should go, then press Insert again.');
          return;
        }
        await editor.edit((edit) => {
          for (const selection of editor.selections) edit.replace(selection, code);
        });
        await vscode.window.showTextDocument(editor.document, editor.viewColumn);
        return;
      }
      case 'newFile': {
        const name = language.toLowerCase();
        const document = await vscode.workspace.openTextDocument({ content: code, language: LANGUAGE_IDS[name] ?? (name || 'plaintext') }).then(
          (doc) => doc,
          () => vscode.workspace.openTextDocument({ content: code }),
        );
        await vscode.window.showTextDocument(document);
        return;
      }
      case 'apply':
        // Places the block in the file its fence or the line above it names (else the active
        // editor) and opens the review there; the command says itself when it cannot.
        await vscode.commands.executeCommand('tidal.applyCodeBlock', { code, info, lineBefore });
        return;
    }
  }

  private html(webview: vscode.Webview): string {
    const nonce = crypto.randomBytes(16).toString('base64');
    const resource = (...parts: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, ...parts));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
      `img-src ${webview.cspSource} data:`,
      `font-src ${webview.cspSource}`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${csp}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <link href="${resource('media', 'chat.css')}" rel="stylesheet">
  <title>Tidal Chat</title>
</head>
<body>
  <header class="toolbar">
    <button type="button" class="model-button" id="model" title="Select Model">
      <span class="model-text">
        <span class="model-name" id="model-name">Starting the engine…</span>
        <span class="model-detail" id="model-detail"></span>
      </span>
      <span class="chevron" aria-hidden="true"></span>
    </button>
  </header>
  <div class="visually-hidden" id="announcer" role="status" aria-live="polite" aria-atomic="true"></div>
  <main id="messages" class="messages" aria-label="Conversation">
    <section class="empty" id="empty">
      <h2>Ask about this repository</h2>
      <p>Tidal answers with your whole workspace in context, on this machine. Nothing leaves it.</p>
      <p class="hint">The active file and selection come along. Type <code>#</code> or <code>@</code> to attach a file, the selection (<code>#selection</code>), the problems (<code>#problems</code>) or the git diff (<code>#diff</code>), or use the paperclip.</p>
    </section>
  </main>
  <div class="status" id="status" hidden></div>
  <form id="composer" class="composer">
    <div class="chips" id="attachments" aria-label="Attached to the question" hidden></div>
    <ul class="mention-list" id="mention-list" role="listbox" aria-label="Attach" hidden></ul>
    <textarea id="input" rows="3" placeholder="Ask about the code… (Enter to send, Shift+Enter for a new line)" aria-label="Question"></textarea>
    <div class="composer-actions">
      <button type="button" class="secondary icon" id="attach" title="Add context: a file, the selection, problems or the git diff" aria-label="Add context"><svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true"><path fill="currentColor" d="M10.5 2a2.5 2.5 0 0 1 2.5 2.5v6a4.5 4.5 0 0 1-9 0V5h1v5.5a3.5 3.5 0 0 0 7 0v-6a1.5 1.5 0 0 0-3 0V10a.5.5 0 0 0 1 0V5h1v5a1.5 1.5 0 0 1-3 0V4.5A2.5 2.5 0 0 1 10.5 2z"/></svg></button>
      <span class="spacer"></span>
      <button type="button" class="secondary stop" id="stop" title="Stop generating" hidden>Stop</button>
      <button type="submit" id="send">Send</button>
    </div>
  </form>
  <script nonce="${nonce}" src="${resource('dist', 'chat-panel.js')}"></script>
</body>
</html>`;
  }
}
