// The saved conversations of a workspace as the History quick pick lists them: one item per
// conversation that has turns, most recent first, with its title (its first question), when it
// started and how many turns it has. Plain data; chatHistoryPicker.ts adds the buttons.
import { conversationTitle, type Conversation } from './conversation';

export interface HistoryItem {
  /** The conversation's id, to open or delete it. */
  id: string;
  label: string;
  description: string;
  /** The conversation the panel shows now. */
  current: boolean;
}

/** The items for `conversations` (stored order: most recent first); empty conversations are left out. */
export function historyItems(conversations: readonly Conversation[], currentId: string, now = Date.now()): HistoryItem[] {
  return conversations
    .filter((conversation) => conversation.turns.length > 0)
    .map((conversation) => {
      const current = conversation.id === currentId;
      const parts = [startedAt(conversation.createdAt, now), turnCount(conversation.turns.length)];
      if (current) parts.push('open now');
      return { id: conversation.id, label: conversationTitle(conversation), description: parts.join(' · '), current };
    });
}

export function turnCount(turns: number): string {
  return `${turns} ${turns === 1 ? 'turn' : 'turns'}`;
}

/** When a conversation started, in local time: "today, 21:13", "yesterday, 09:05" or "2026-12-03 14:00". */
export function startedAt(createdAt: number, now: number): string {
  const date = new Date(createdAt);
  const pad = (value: number) => String(value).padStart(2, '0');
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  const day = (at: Date) => `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`;
  const today = new Date(now);
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (day(date) === day(today)) return `today, ${time}`;
  if (day(date) === day(yesterday)) return `yesterday, ${time}`;
  return `${day(date)} ${time}`;
}
