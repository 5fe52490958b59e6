// The conversation shown in the chat panel: turns of the user and of the model, the model's
// answers growing while they stream. Plain data (it is stored in workspace state as JSON).

export type TurnRole = 'user' | 'assistant';
/** streaming: text still arriving; done: finished; stopped: the user stopped it; error: it failed. */
export type TurnStatus = 'streaming' | 'done' | 'stopped' | 'error';

/** What an answer cost and how it ran, shown under it in the panel. */
export interface AnswerMeta {
  promptTokens: number;
  maxContext: number;
  reusedTokens: number;
  tokens: number;
  contextFiles: number;
  /** The repository files in the answer's prompt, in prompt order, where known. */
  contextPaths?: string[];
  attention?: { mode: 'full' | 'tidal' | 'quest'; attendedFraction: number };
  decodeMs: number;
  finishReason: string;
  /** Attachments cut or left out to fit the context, said to the user under the answer. */
  cutToFit?: string[];
  /** Stopped at its token limit ('length') where the answer can be continued (the local engine). */
  canContinue?: boolean;
}

export interface Turn {
  id: string;
  role: TurnRole;
  text: string;
  status: TurnStatus;
  /** user turns: workspace-relative paths attached to the question. */
  attachments?: string[];
  /** assistant turns: why it failed, for the user. */
  error?: string;
  /** assistant turns that failed: false when asking again would fail the same way (a configuration error). */
  canRetry?: boolean;
  meta?: AnswerMeta;
}

export interface Conversation {
  id: string;
  createdAt: number;
  turns: Turn[];
}

let nextId = 0;
export function newId(prefix: string): string {
  nextId += 1;
  return `${prefix}-${Date.now().toString(36)}-${nextId}`;
}

export function newConversation(now = Date.now()): Conversation {
  return { id: newId('conversation'), createdAt: now, turns: [] };
}

/** A short title for a conversation: its first question, on one line. */
export function conversationTitle(conversation: Conversation): string {
  const first = conversation.turns.find((turn) => turn.role === 'user');
  if (!first) return 'New chat';
  const line = first.text.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 59)}…` : line;
}

/**
 * The earlier exchanges that go into the prompt before a new question: user turns and the
 * answers that produced text (failed or empty answers are left out, a stopped answer is kept
 * as far as it got).
 */
export function priorExchanges(turns: readonly Turn[]): { role: TurnRole; content: string }[] {
  const out: { role: TurnRole; content: string }[] = [];
  for (const turn of turns) {
    if (turn.status === 'streaming') continue;
    if (turn.role === 'assistant' && (turn.status === 'error' || turn.text.trim() === '')) {
      // Keep user/assistant alternating: a question without an answer is dropped too.
      if (out.length > 0 && out[out.length - 1].role === 'user') out.pop();
      continue;
    }
    if (out.length > 0 && out[out.length - 1].role === turn.role) out.pop();
    out.push({ role: turn.role, content: turn.text });
  }
  if (out.length > 0 && out[out.length - 1].role === 'user') out.pop();
  return out;
}
