// Chat history per workspace, in a key-value store (VS Code's context.workspaceState), bounded
// in size: the current conversation plus a few past ones, oldest dropped first. What comes
// back from the store is checked; anything malformed is dropped rather than trusted.
import type { AnswerMeta, Conversation, Turn } from './conversation';
import { newConversation } from './conversation';

/** The part of vscode.Memento this needs. */
export interface StateStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): Thenable<void>;
}

export const HISTORY_KEY = 'tidal.chat.history';

export interface HistoryLimits {
  conversations: number; // current one included
  turnsPerConversation: number;
  totalChars: number; // all turn texts together
}

export const DEFAULT_HISTORY_LIMITS: HistoryLimits = { conversations: 20, turnsPerConversation: 200, totalChars: 500_000 };

interface StoredHistory {
  version: 1;
  /** Most recent first; the first one is the conversation the panel shows. */
  conversations: Conversation[];
}

export class ChatHistory {
  private conversations: Conversation[];

  constructor(
    private readonly store: StateStore,
    private readonly limits: HistoryLimits = DEFAULT_HISTORY_LIMITS,
  ) {
    this.conversations = readHistory(store.get<unknown>(HISTORY_KEY));
    if (this.conversations.length === 0) this.conversations.push(newConversation());
  }

  get current(): Conversation {
    return this.conversations[0];
  }

  get all(): readonly Conversation[] {
    return this.conversations;
  }

  /** Starts a new conversation (the current one, if it has turns, becomes a past one). */
  startNew(): Conversation {
    if (this.current.turns.length === 0) return this.current;
    this.conversations.unshift(newConversation());
    return this.current;
  }

  /**
   * Makes the conversation `id` the current one (the panel shows it); an empty current
   * conversation is dropped rather than kept as a past one. False when there is no such conversation.
   */
  open(id: string): boolean {
    const index = this.conversations.findIndex((conversation) => conversation.id === id);
    if (index < 0) return false;
    if (index === 0) return true;
    const [picked] = this.conversations.splice(index, 1);
    if (this.current.turns.length === 0) this.conversations.shift();
    this.conversations.unshift(picked);
    return true;
  }

  /** Deletes the conversation `id`; deleting the current one leaves a new, empty one current. */
  remove(id: string): boolean {
    const index = this.conversations.findIndex((conversation) => conversation.id === id);
    if (index < 0) return false;
    this.conversations.splice(index, 1);
    if (index === 0) this.conversations.unshift(newConversation());
    return true;
  }

  /** Writes the history, cut down to the limits. Answers still streaming are stored as stopped. */
  async save(): Promise<void> {
    this.conversations = bound(this.conversations, this.limits);
    const stored: StoredHistory = {
      version: 1,
      conversations: this.conversations.map((conversation) => ({
        ...conversation,
        turns: conversation.turns.map((turn) => (turn.status === 'streaming' ? { ...turn, status: 'stopped' } : { ...turn })),
      })),
    };
    await this.store.update(HISTORY_KEY, stored);
  }
}

/** The limits applied: fewer conversations, fewer turns, then fewer characters, oldest first. */
export function bound(conversations: Conversation[], limits: HistoryLimits): Conversation[] {
  let kept = conversations.slice(0, Math.max(1, limits.conversations)).map((conversation) => ({
    ...conversation,
    turns: conversation.turns.slice(-limits.turnsPerConversation),
  }));
  const chars = (list: Conversation[]) => list.reduce((sum, c) => sum + c.turns.reduce((s, t) => s + t.text.length, 0), 0);
  while (kept.length > 1 && chars(kept) > limits.totalChars) kept = kept.slice(0, -1);
  const current = kept[0];
  while (current.turns.length > 1 && chars(kept) > limits.totalChars) current.turns.shift();
  if (chars(kept) > limits.totalChars && current.turns.length === 1) {
    const turn = current.turns[0];
    current.turns[0] = { ...turn, text: turn.text.slice(-limits.totalChars) };
  }
  return kept;
}

export function readHistory(value: unknown): Conversation[] {
  if (!isRecord(value) || value.version !== 1 || !Array.isArray(value.conversations)) return [];
  const out: Conversation[] = [];
  for (const item of value.conversations) {
    if (!isRecord(item) || typeof item.id !== 'string' || typeof item.createdAt !== 'number' || !Array.isArray(item.turns)) continue;
    const turns = item.turns.map(readTurn).filter((turn): turn is Turn => turn !== undefined);
    out.push({ id: item.id, createdAt: item.createdAt, turns });
  }
  return out;
}

function readTurn(value: unknown): Turn | undefined {
  if (!isRecord(value) || typeof value.id !== 'string' || typeof value.text !== 'string') return undefined;
  if (value.role !== 'user' && value.role !== 'assistant') return undefined;
  const status = value.status === 'done' || value.status === 'stopped' || value.status === 'error' ? value.status : 'stopped';
  const turn: Turn = { id: value.id, role: value.role, text: value.text, status };
  if (Array.isArray(value.attachments)) turn.attachments = value.attachments.filter((path): path is string => typeof path === 'string');
  if (typeof value.error === 'string') turn.error = value.error;
  if (value.canRetry === false) turn.canRetry = false;
  const meta = readMeta(value.meta);
  if (meta) turn.meta = meta;
  return turn;
}

function readMeta(value: unknown): AnswerMeta | undefined {
  if (!isRecord(value)) return undefined;
  const numbers = ['promptTokens', 'maxContext', 'reusedTokens', 'tokens', 'contextFiles', 'decodeMs'] as const;
  if (!numbers.every((key) => typeof value[key] === 'number' && Number.isFinite(value[key])) || typeof value.finishReason !== 'string') return undefined;
  const meta: AnswerMeta = {
    promptTokens: value.promptTokens as number,
    maxContext: value.maxContext as number,
    reusedTokens: value.reusedTokens as number,
    tokens: value.tokens as number,
    contextFiles: value.contextFiles as number,
    decodeMs: value.decodeMs as number,
    finishReason: value.finishReason,
  };
  if (Array.isArray(value.contextPaths) && value.contextPaths.every((path) => typeof path === 'string')) meta.contextPaths = value.contextPaths as string[];
  const attention = value.attention;
  if (
    isRecord(attention) &&
    (attention.mode === 'full' || attention.mode === 'tidal' || attention.mode === 'quest') &&
    typeof attention.attendedFraction === 'number'
  ) {
    meta.attention = { mode: attention.mode, attendedFraction: attention.attendedFraction };
  }
  if (value.canContinue === true) meta.canContinue = true;
  return meta;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
