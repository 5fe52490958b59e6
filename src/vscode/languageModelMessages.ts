// The pure half of the Language Model API provider (languageModelProvider.ts): VS Code's chat
// request messages turned into our chat turns, their text counted, and one request run against
// a GenerationBackend with cancellation. No `vscode` import: parts are read by shape, so the
// unit tests build them as plain objects.
import type { ChatMessageParam, GenerateResult } from '../core/protocol/protocol';

/** LanguageModelChatMessageRole: User and Assistant are stable; System (3) is what the editor's own chat sends. */
export const ROLE_USER = 1;
export const ROLE_ASSISTANT = 2;
export const ROLE_SYSTEM = 3;

/** LanguageModelChatRequestMessage (VS Code 1.104), by shape. */
export interface RequestMessage {
  readonly role: number;
  readonly content: ReadonlyArray<unknown>;
  readonly name?: string | undefined;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

/**
 * The text a message part stands for: a text part's value, a tool result's text parts (a tool's
 * answer is text the model should read). Tool calls, images and anything else: none (this model
 * calls no tools and reads no images).
 */
export function partText(part: unknown): string {
  if (typeof part === 'string') return part;
  if (!isRecord(part)) return '';
  if (typeof part.value === 'string') return part.value;
  if (typeof part.callId === 'string' && Array.isArray(part.content)) {
    const text = part.content.map(partText).join('');
    return text ? `Tool result:\n${text}` : '';
  }
  return '';
}

export function messageText(message: RequestMessage): string {
  return message.content.map(partText).join('');
}

/**
 * The chat turns of a request: every system message first, as one (chat templates want it
 * there), then user and assistant turns with neighbours of the same role joined (templates want
 * them alternating). Messages with no text are left out. An unknown role reads as the user's.
 */
export function toChatMessages(messages: readonly RequestMessage[]): ChatMessageParam[] {
  const system: string[] = [];
  const turns: ChatMessageParam[] = [];
  for (const message of messages) {
    const text = messageText(message);
    if (text.trim() === '') continue;
    if (message.role === ROLE_SYSTEM) {
      system.push(text);
      continue;
    }
    const role = message.role === ROLE_ASSISTANT ? 'assistant' : 'user';
    const last = turns[turns.length - 1];
    if (last && last.role === role) last.content += `\n\n${text}`;
    else turns.push({ role, content: text });
  }
  return system.length > 0 ? [{ role: 'system', content: system.join('\n\n') }, ...turns] : turns;
}

/** provideTokenCount's input: a string as it is, a message as its text. */
export function countTokensOf(input: string | RequestMessage, count: (text: string) => number): number {
  const text = typeof input === 'string' ? input : messageText(input);
  return text.length === 0 ? 0 : count(text);
}

/** CancellationToken, by shape. */
export interface CancellationLike {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): { dispose(): void };
}

export type RunOutcome = { cancelled: false; result: GenerateResult } | { cancelled: true; text: string };

/**
 * Runs `generate` with its chunks passed to `report`, aborting it when `token` is cancelled.
 * Nothing is reported after the cancellation. Errors from `generate` are passed on.
 */
export async function runWithCancellation(
  generate: (onText: (chunk: string) => void, signal: AbortSignal) => Promise<GenerateResult>,
  token: CancellationLike,
  report: (chunk: string) => void,
): Promise<RunOutcome> {
  if (token.isCancellationRequested) return { cancelled: true, text: '' };
  const controller = new AbortController();
  const subscription = token.onCancellationRequested(() => controller.abort());
  let text = '';
  try {
    const result = await generate((chunk) => {
      if (controller.signal.aborted || chunk.length === 0) return;
      text += chunk;
      report(chunk);
    }, controller.signal);
    if (controller.signal.aborted || token.isCancellationRequested || result.finishReason === 'cancelled') return { cancelled: true, text };
    return { cancelled: false, result };
  } catch (error) {
    if (controller.signal.aborted || token.isCancellationRequested) return { cancelled: true, text };
    throw error;
  } finally {
    subscription.dispose();
  }
}

/** An engine failure as the Language Model API's caller should read it: says it is Tidal's and what to do. */
export function languageModelErrorMessage(error: unknown): string {
  const message = (error instanceof Error ? error.message : String(error)).trim() || 'unknown error';
  if (/context|too long|exceeds|max_kv_bytes|KV memory cap/i.test(message) && !/not running|restart/i.test(message)) {
    return `Tidal: the request does not fit the model's context (${message}). Send fewer or shorter messages.`;
  }
  return message.startsWith('Tidal') ? message : `Tidal: ${message}`;
}
