// Messages exchanged between the chat webview (media/chat.js) and the extension.
export type PanelToChat = { type: 'ready' } | { type: 'ask'; text: string };

export type ChatToPanel =
  | { type: 'engine'; summary: string }
  | { type: 'user'; text: string }
  | { type: 'answer'; text: string }
  | { type: 'error'; text: string };
