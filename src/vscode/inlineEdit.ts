// "Tidal: Edit Selection with Instruction" (tidal.inlineEdit) and a chat code block's Apply
// (tidal.applyCodeBlock): both end in the same hunk review (hunkReview.ts). The inline edit
// asks the chat generation path for the selected lines rewritten, with a cancellable progress
// notification; Apply places the block in the file it names (applyTarget.ts).
import * as vscode from 'vscode';

import type { ChatRequestContext } from '../core/chat/chatSession';
import { codeBlockPath, placeCodeBlock, replaceLines } from '../core/edit/applyTarget';
import { buildEditMessages, extractCode, fitToSelection } from '../core/edit/editPrompt';
import type { GenerationBackend } from '../core/backend/generationBackend';
import { HunkReview } from './hunkReview';
import { repositoryParams } from '../core/backend/repositoryPart';
import { wholeLinesEnd } from '../core/chat/selectionPrompt';

export interface InlineEditDeps {
  backend(): GenerationBackend;
  /** The chat's context for `editor` (repository part, budget, attention). */
  gatherContext(editor: vscode.TextEditor): Promise<ChatRequestContext>;
  newRequestId(): string;
  /** Told when an edit starts and stops writing (the status bar spins meanwhile). */
  onBusy?(busy: boolean): void;
}

/** Characters of the file shown around the selection, at most. */
const FILE_CONTEXT_CHARS = 24_000;

export function registerInlineEdit(deps: InlineEditDeps): { review: HunkReview; disposables: vscode.Disposable[] } {
  const review = new HunkReview();
  const inlineEdit = async (instructionArg?: string): Promise<boolean> => {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showWarningMessage('Tidal: open a file and select the lines to edit, then run "Edit Selection with Instruction" again.');
      return false;
    }
    const document = editor.document;
    // Whole lines: from the start of the selection's first line to the start of the line after its last.
    const selection = editor.selection;
    const range = document.validateRange(new vscode.Range(selection.start.line, 0, wholeLinesEnd(selection), 0));
    const instruction =
      typeof instructionArg === 'string'
        ? instructionArg
        : await vscode.window.showInputBox({
            title: 'Tidal: Edit Selection with Instruction',
            prompt: 'How should the selected lines change?',
            placeHolder: 'e.g. handle the empty list',
            ignoreFocusOut: true,
          });
    if (!instruction || !instruction.trim()) return false;
    const version = document.version;
    const selected = document.getText(range);
    const before = document.getText(new vscode.Range(new vscode.Position(0, 0), range.start));
    const after = document.getText(new vscode.Range(range.end, document.lineAt(document.lineCount - 1).range.end));
    const answer = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Tidal: editing the selection…', cancellable: true },
      async (progress, token) => {
        const controller = new AbortController();
        token.onCancellationRequested(() => controller.abort());
        const context = await deps.gatherContext(editor);
        const messages = buildEditMessages({
          path: vscode.workspace.asRelativePath(document.uri, false),
          language: document.languageId,
          before,
          selection: selected,
          after,
          instruction,
          contextChars: Math.min(FILE_CONTEXT_CHARS, context.conversationBudgetTokens * 3),
        });
        let written = 0;
        deps.onBusy?.(true);
        const result = await deps
          .backend()
          .generate(
            {
              requestId: deps.newRequestId(),
              kind: 'chat',
              purpose: 'edit',
              messages,
              ...repositoryParams(context.repository),
              repoName: context.repoName,
              attention: context.attention,
            },
            (chunk) => {
              written += chunk.length;
              progress.report({ message: `${written} characters written` });
            },
            controller.signal,
          )
          .finally(() => deps.onBusy?.(false));
        return result.finishReason === 'cancelled' ? undefined : result.text;
      },
    );
    if (answer === undefined) return false;
    if (document.version !== version) {
      void vscode.window.showWarningMessage('Tidal: the file changed while the edit was written; run the edit again.');
      return false;
    }
    const code = fitToSelection(extractCode(answer), selected);
    const started = await review.start(document, before + code + after);
    if (!started) vscode.window.setStatusBarMessage('Tidal: the proposal changes nothing', 3000);
    return started;
  };

  const applyCodeBlock = async (block: { code: string; info?: string; lineBefore?: string }): Promise<boolean> => {
    const named = codeBlockPath(block.info ?? '', block.lineBefore ?? '');
    let document: vscode.TextDocument | undefined;
    if (named) {
      const [found] = await vscode.workspace.findFiles(named.replace(/^\//, ''), undefined, 1);
      const byEnding = found ?? (await vscode.workspace.findFiles(`**/${named}`, '**/node_modules/**', 1))[0];
      if (byEnding) document = await vscode.workspace.openTextDocument(byEnding);
      else vscode.window.setStatusBarMessage(`Tidal: ${named} is not in the workspace; applying to the active editor`, 4000);
    }
    const active = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
    document ??= active?.document;
    if (!document) {
      void vscode.window.showWarningMessage('Tidal: open the file the code belongs in, then press Apply again.');
      return false;
    }
    const editor = await vscode.window.showTextDocument(document);
    const selection = editor.selection.isEmpty ? undefined : { startLine: editor.selection.start.line, endLine: wholeLinesEnd(editor.selection) };
    const text = document.getText();
    const placement = placeCodeBlock(text, block.code, selection, editor.selection.active.line);
    const started = await review.start(document, replaceLines(text, placement, block.code));
    if (!started) vscode.window.setStatusBarMessage('Tidal: the code block is already in the file', 3000);
    return started;
  };

  return {
    review,
    disposables: [
      review,
      vscode.commands.registerCommand('tidal.inlineEdit', inlineEdit),
      vscode.commands.registerCommand('tidal.applyCodeBlock', applyCodeBlock),
    ],
  };
}
