// The chat side panel: a webview view with a strict Content-Security-Policy (nonce-gated
// script, no remote resources). Messages between panel and extension are typed in
// src/extension/chatMessages.ts.
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';

import type { ChatToPanel, PanelToChat } from './chatMessages';

export class ChatViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = 'tidal.chat';
  private view?: vscode.WebviewView;
  private readonly disposables: vscode.Disposable[] = [];
  private pendingQuestion?: string;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly onQuestion: (question: string) => Promise<string>,
    private readonly engineSummary: () => string,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, 'media')] };
    view.webview.html = this.html(view.webview);
    this.disposables.push(
      view.webview.onDidReceiveMessage((message: PanelToChat) => void this.receive(message)),
      view.onDidDispose(() => (this.view = undefined)),
    );
  }

  get isVisible(): boolean {
    return this.view?.visible ?? false;
  }

  // Shows the panel and asks `question` in it (from the command palette).
  async ask(question: string): Promise<void> {
    this.pendingQuestion = question;
    await vscode.commands.executeCommand(`${ChatViewProvider.viewId}.focus`);
    if (this.view) this.flushPending();
  }

  refreshEngine(): void {
    this.post({ type: 'engine', summary: this.engineSummary() });
  }

  private flushPending(): void {
    if (this.pendingQuestion === undefined) return;
    const question = this.pendingQuestion;
    this.pendingQuestion = undefined;
    void this.receive({ type: 'ask', text: question });
  }

  private async receive(message: PanelToChat): Promise<void> {
    switch (message.type) {
      case 'ready':
        this.refreshEngine();
        this.flushPending();
        return;
      case 'ask': {
        const text = message.text.trim();
        if (!text) return;
        this.post({ type: 'user', text });
        try {
          this.post({ type: 'answer', text: await this.onQuestion(text) });
        } catch (error) {
          this.post({ type: 'error', text: (error as Error).message });
        }
        return;
      }
    }
  }

  private post(message: ChatToPanel): void {
    void this.view?.webview.postMessage(message);
  }

  private html(webview: vscode.Webview): string {
    const nonce = crypto.randomBytes(16).toString('base64');
    const media = (file: string) => webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', file));
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
  <link href="${media('chat.css')}" rel="stylesheet">
  <title>Tidal Chat</title>
</head>
<body>
  <header class="engine" id="engine" aria-live="polite">Starting the engine…</header>
  <main id="messages" class="messages" aria-live="polite">
    <section class="empty" id="empty">
      <h2>Ask about this repository</h2>
      <p>Tidal answers with your whole workspace in context, on this machine. Nothing leaves it.</p>
    </section>
  </main>
  <form id="composer" class="composer">
    <textarea id="input" rows="3" placeholder="Ask a question about the code… (Enter to send, Shift+Enter for a new line)" aria-label="Question"></textarea>
    <button type="submit" id="send">Send</button>
  </form>
  <script nonce="${nonce}" src="${media('chat.js')}"></script>
</body>
</html>`;
  }

  dispose(): void {
    for (const disposable of this.disposables) disposable.dispose();
  }
}
