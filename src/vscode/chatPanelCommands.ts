// The chat view's title actions (package.json menus "view/title"): New Chat, History and
// Settings. They also work from the Command Palette, where they show the panel first.
import * as vscode from 'vscode';

import { showChatHistory } from './chatHistoryPicker';
import type { ChatViewProvider } from './chatViewProvider';

/** The Settings editor filtered to this extension's settings. */
export const TIDAL_SETTINGS_QUERY = '@ext:tidal-code.tidal-code';

export function registerChatPanelCommands(chat: ChatViewProvider): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('tidal.newChat', () => chat.newChat()),
    vscode.commands.registerCommand('tidal.showChatHistory', async () => {
      if (!chat.isVisible) await chat.reveal();
      return showChatHistory(() => chat.chatSession);
    }),
    vscode.commands.registerCommand('tidal.openSettings', () => vscode.commands.executeCommand('workbench.action.openSettings', TIDAL_SETTINGS_QUERY)),
  ];
}
