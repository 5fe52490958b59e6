// When the editor switches to another file (and when the repository becomes ready), the
// completion prompt at its cursor is computed in the background (CompletionService.prefetch), so the first completion there costs what a
// keystroke costs instead of computing the whole cursor window. A short pause first: flipping
// through files quickly computes nothing.
import * as vscode from 'vscode';

import type { CompletionService } from '../core/completion/completionService';

const SETTLE_MS = 250;

export function prefetchOnEditorSwitch(
  service: CompletionService,
  relativePath: (uri: vscode.Uri) => string | undefined,
  /** Fires when the repository becomes ready: the active editor's window is prefetched then too. */
  onRepositoryReady: (listener: () => void) => { dispose(): void },
  /** Whether completions are on in a language (tidal.inlineCompletions.languages): no prefetch where off. */
  languageOn: (languageId: string) => boolean = () => true,
): vscode.Disposable {
  let timer: NodeJS.Timeout | undefined;
  const schedule = (editor: vscode.TextEditor | undefined) => {
    clearTimeout(timer);
    if (!editor || (editor.document.uri.scheme !== 'file' && editor.document.uri.scheme !== 'untitled')) return;
    if (!languageOn(editor.document.languageId)) return;
    timer = setTimeout(() => {
      if (vscode.window.activeTextEditor !== editor) return;
      const document = editor.document;
      void service
        .prefetch({
          documentKey: document.uri.toString(),
          filePath: relativePath(document.uri) ?? (document.isUntitled ? undefined : vscode.workspace.asRelativePath(document.uri, false)),
          text: document.getText(),
          offset: document.offsetAt(editor.selection.active),
        })
        .catch(() => undefined);
    }, SETTLE_MS);
  };
  const subscriptions = [vscode.window.onDidChangeActiveTextEditor(schedule), onRepositoryReady(() => schedule(vscode.window.activeTextEditor))];
  return new vscode.Disposable(() => {
    clearTimeout(timer);
    for (const subscription of subscriptions) subscription.dispose();
  });
}
