// The chat's History: a quick pick of this workspace's saved conversations (title, when it
// started, how many turns); picking one opens it in the panel, the trash button on an item
// deletes that conversation (the list stays open and is redrawn).
import * as vscode from 'vscode';

import type { ChatSession } from '../core/chat/chatSession';
import { historyItems, type HistoryItem } from '../core/chat/historyItems';

type PickItem = vscode.QuickPickItem & { id: string };

const DELETE_BUTTON: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon('trash'), tooltip: 'Delete This Conversation' };

function toPickItem(item: HistoryItem): PickItem {
  return {
    id: item.id,
    label: item.label,
    description: item.description,
    buttons: [DELETE_BUTTON],
    ...(item.current ? { iconPath: new vscode.ThemeIcon('comment-discussion') } : {}),
  };
}

/** Shows the History quick pick; resolves, once it is shown, with the id of the conversation opened, or undefined. */
export function showChatHistory(session: () => ChatSession): Promise<string | undefined> {
  const pick = vscode.window.createQuickPick<PickItem>();
  pick.title = 'Tidal: Chat History';
  pick.placeholder = 'Open a conversation of this workspace';
  pick.matchOnDescription = true;
  const refresh = () => {
    const current = session().conversations[0]?.id ?? '';
    pick.items = historyItems(session().conversations, current).map(toPickItem);
    if (pick.items.length === 0) pick.placeholder = 'No saved conversations in this workspace yet';
  };
  refresh();
  return new Promise((resolve) => {
    let accepted = false;
    pick.onDidTriggerItemButton(async ({ item }) => {
      await session().deleteConversation(item.id);
      refresh();
    });
    pick.onDidAccept(async () => {
      const item = pick.selectedItems[0] ?? pick.activeItems[0];
      if (!item) return;
      accepted = true;
      pick.hide();
      resolve((await session().openConversation(item.id)) ? item.id : undefined);
    });
    pick.onDidHide(() => {
      pick.dispose();
      if (!accepted) resolve(undefined);
    });
    pick.show();
  });
}
