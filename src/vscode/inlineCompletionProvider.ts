// The inline completion provider for every language: a thin adapter from VS Code to
// CompletionService. VS Code's CancellationToken becomes an AbortSignal that reaches the
// engine (engine/cancel), so a request superseded by the next keystroke stops there too.
// A manual trigger (Alt+\ runs Tidal: Suggest Inline Completions; Alt+] / Alt+[ with nothing
// shown also make VS Code ask again with triggerKind Invoke) gets ALTERNATIVE_COUNT candidates,
// which VS Code cycles with Alt+] / Alt+[; while typing there is one. Languages switched off in
// tidal.inlineCompletions.languages get nothing, and no request is made.
import * as vscode from 'vscode';

import { ALTERNATIVE_COUNT, type CompletionService } from '../core/completion/completionService';

export class TidalInlineCompletionProvider implements vscode.InlineCompletionItemProvider {
  constructor(
    private readonly service: CompletionService,
    private readonly relativePath: (uri: vscode.Uri) => string | undefined,
    private readonly log: vscode.LogOutputChannel,
    /** Whether completions are on in this VS Code language id (tidal.inlineCompletions.languages). */
    private readonly languageOn: (languageId: string) => boolean = () => true,
  ) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionList | undefined> {
    if (!this.languageOn(document.languageId)) return undefined;
    const manual = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
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
          candidates: manual ? ALTERNATIVE_COUNT : 1,
        },
        controller.signal,
      );
      if (this.service.counters.failed > failedBefore) {
        this.log.warn(`inline completion failed: ${this.service.lastError}`);
      }
      if (!outcome || outcome.alternatives.length === 0 || token.isCancellationRequested) return undefined;
      const range = new vscode.Range(position, position);
      return new vscode.InlineCompletionList(outcome.alternatives.map((text) => new vscode.InlineCompletionItem(text, range)));
    } catch (error) {
      // Never let a completion problem surface as an editor error.
      this.log.warn(`inline completion failed: ${(error as Error).message}`);
      return undefined;
    } finally {
      subscription.dispose();
    }
  }
}
