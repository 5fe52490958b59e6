// The inline completion provider for every language: a thin adapter from VS Code to
// CompletionService. VS Code's CancellationToken becomes an AbortSignal that reaches the
// engine (engine/cancel), so a request superseded by the next keystroke stops there too.
import * as vscode from 'vscode';

import type { CompletionService } from '../completion/completionService';

export class TidalInlineCompletionProvider implements vscode.InlineCompletionItemProvider {
  constructor(
    private readonly service: CompletionService,
    private readonly relativePath: (uri: vscode.Uri) => string | undefined,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    _context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionList | undefined> {
    const controller = new AbortController();
    const subscription = token.onCancellationRequested(() => controller.abort());
    if (token.isCancellationRequested) controller.abort();
    const failedBefore = this.service.counters.failed;
    try {
      const tabSize = vscode.window.activeTextEditor?.document === document ? Number(vscode.window.activeTextEditor.options.tabSize) || 4 : 4;
      const outcome = await this.service.complete(
        {
          documentKey: document.uri.toString(),
          filePath: this.relativePath(document.uri) ?? (document.isUntitled ? undefined : vscode.workspace.asRelativePath(document.uri, false)),
          text: document.getText(),
          offset: document.offsetAt(position),
          tabSize,
        },
        controller.signal,
      );
      if (this.service.counters.failed > failedBefore) {
        this.log.warn(`inline completion failed: ${this.service.lastError}`);
      }
      if (!outcome || outcome.text.length === 0 || token.isCancellationRequested) return undefined;
      return new vscode.InlineCompletionList([new vscode.InlineCompletionItem(outcome.text, new vscode.Range(position, position))]);
    } catch (error) {
      // Never let a completion problem surface as an editor error.
      this.log.warn(`inline completion failed: ${(error as Error).message}`);
      return undefined;
    } finally {
      subscription.dispose();
    }
  }
}
