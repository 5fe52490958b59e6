// The editor context-menu commands: ask about the selection, explain it, or add it to the
// question being written in the Tidal chat. Each quotes the selection (selectionPrompt.ts); the
// chat's own selection block is then left out (promptAssembly.quotesSelection), so the code
// reaches the prompt once, and stays in the conversation for the questions after.
import * as vscode from 'vscode';

import { repositoryPathOf } from '../core/context/workspaceFolders';
import type { ChatViewProvider } from './chatViewProvider';
import { askAboutSelectionPrompt, explainSelectionPrompt, quoteSelection, wholeLinesEnd, type QuotedSelection } from '../core/chat/selectionPrompt';

/** The active editor's selection, quoted; undefined (after saying why) when there is none. */
function currentSelection(): QuotedSelection | undefined {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.selection.isEmpty) {
    void vscode.window.showInformationMessage('Tidal: select some code in an editor first.');
    return undefined;
  }
  const { document, selection } = editor;
  const folders = vscode.workspace.workspaceFolders ?? [];
  const path = (document.uri.scheme === 'file' ? repositoryPathOf(folders, document.uri) : undefined) ?? vscode.workspace.asRelativePath(document.uri, false);
  return { path, language: document.languageId, text: document.getText(selection), startLine: selection.start.line + 1, endLine: wholeLinesEnd(selection) };
}

export function registerSelectionCommands(chat: ChatViewProvider): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('tidal.askAboutSelection', async (question?: string) => {
      const selection = currentSelection();
      if (!selection) return;
      const text =
        typeof question === 'string'
          ? question
          : await vscode.window.showInputBox({
              title: 'Tidal: Ask About the Selection',
              prompt: `Your question about ${selection.path}, lines ${selection.startLine}-${selection.endLine}`,
              placeHolder: 'e.g. Why is this loop needed?',
              ignoreFocusOut: true,
            });
      if (text && text.trim()) await chat.ask(askAboutSelectionPrompt(text, selection));
    }),
    vscode.commands.registerCommand('tidal.explainSelection', async () => {
      const selection = currentSelection();
      if (selection) await chat.ask(explainSelectionPrompt(selection));
    }),
    vscode.commands.registerCommand('tidal.addSelectionToChat', async () => {
      const selection = currentSelection();
      if (selection) await chat.addToDraft(quoteSelection(selection));
    }),
  ];
}
