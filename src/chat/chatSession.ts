// The chat's behaviour, without the `vscode` module: a question becomes a user turn and a
// streamed answer, Stop aborts the request into the engine, Regenerate replaces the last
// answer, New chat starts over; every change is posted to the panel and saved to the history.
import type { AttentionOptions, ChatMessageParam, GenerateResult } from '../engine/protocol';
import type { GenerationBackend } from '../extension/generationBackend';
import type { ChatToPanel } from '../extension/chatMessages';
import { repositoryFileCount, repositoryParams, type RepositoryPart } from '../extension/repositoryPart';
import { newId, type Turn } from './conversation';
import type { ChatHistory } from './historyStore';
import { parseMentions } from './mentions';
import { buildChatMessages, type EditorContext } from './promptAssembly';

/** Everything a request needs from the editor and the model, gathered when it is asked. */
export interface ChatRequestContext {
  /** The engine host's own repository part (local backend) or files sent as text (remote). */
  repository: RepositoryPart;
  repoName?: string;
  editor: EditorContext;
  maxContext: number;
  /** Tokens left for the conversation and editor context after the repository files. */
  conversationBudgetTokens: number;
  attention: AttentionOptions;
}

export interface ChatSessionDeps {
  backend(): GenerationBackend;
  /** Rejects with a message for the user (e.g. an attached file that does not exist). */
  gatherContext(attachments: string[]): Promise<ChatRequestContext>;
  history: ChatHistory;
  post(message: ChatToPanel): void;
  newRequestId(): string;
  /** Tokens an answer may have (default: the engine's). */
  maxTokens?: number;
}

/** The last answer as the engine returned it and as it was streamed (for the tests' API). */
export interface AnswerRecord {
  turnId: string;
  result?: GenerateResult;
  streamed: string;
  chunks: number;
  error?: string;
  /** The chat messages sent to the backend. */
  messages?: ChatMessageParam[];
}

export class ChatSession {
  private running?: { controller: AbortController; done: Promise<void> };
  private last?: AnswerRecord;

  constructor(private readonly deps: ChatSessionDeps) {}

  get busy(): boolean {
    return this.running !== undefined;
  }

  get turns(): readonly Turn[] {
    return this.deps.history.current.turns;
  }

  get lastAnswer(): AnswerRecord | undefined {
    return this.last;
  }

  /** Resolves once no answer is being generated. */
  async idle(): Promise<void> {
    while (this.running) await this.running.done;
  }

  /** Posts the whole conversation (the panel has just loaded or must start over). */
  showConversation(): void {
    this.deps.post({ type: 'conversation', turns: this.turns.map((turn) => ({ ...turn })), busy: this.busy });
  }

  async ask(question: string, attachments: string[] = []): Promise<void> {
    const text = question.trim();
    if (!text) return;
    if (this.busy) {
      this.deps.post({ type: 'notice', text: 'An answer is still being written. Stop it first, or wait for it to finish.' });
      return;
    }
    const attached = [...new Set([...attachments, ...parseMentions(text)])];
    const turn: Turn = { id: newId('user'), role: 'user', text, status: 'done', ...(attached.length > 0 ? { attachments: attached } : {}) };
    this.deps.history.current.turns.push(turn);
    this.deps.post({ type: 'turn', turn: { ...turn } });
    await this.answer(turn);
  }

  stop(): void {
    this.running?.controller.abort();
  }

  /** Answers the last question again, replacing the answer it had. */
  async regenerate(): Promise<void> {
    if (this.busy) return;
    const turns = this.deps.history.current.turns;
    while (turns.length > 0 && turns[turns.length - 1].role === 'assistant') turns.pop();
    const question = turns[turns.length - 1];
    if (!question) return;
    this.showConversation();
    await this.answer(question);
  }

  async newChat(): Promise<void> {
    this.stop();
    await this.idle();
    this.deps.history.startNew();
    this.showConversation();
    await this.deps.history.save();
  }

  private async answer(question: Turn): Promise<void> {
    const turns = this.deps.history.current.turns;
    const earlier = turns.slice(0, turns.indexOf(question));
    const turn: Turn = { id: newId('answer'), role: 'assistant', text: '', status: 'streaming' };
    turns.push(turn);
    const record: AnswerRecord = { turnId: turn.id, streamed: '', chunks: 0 };
    this.last = record;
    const controller = new AbortController();
    let finish!: () => void;
    this.running = { controller, done: new Promise<void>((resolve) => (finish = resolve)) };
    this.deps.post({ type: 'turn', turn: { ...turn } });
    this.deps.post({ type: 'busy', busy: true, status: 'Reading the repository…' });
    try {
      const context = await this.deps.gatherContext(question.attachments ?? []);
      if (controller.signal.aborted) {
        turn.status = 'stopped';
        return;
      }
      const cutToFit: string[] = [];
      const messages = buildChatMessages(earlier, question.text, context.editor, context.conversationBudgetTokens, cutToFit);
      record.messages = messages;
      const contextFiles = repositoryFileCount(context.repository);
      this.deps.post({ type: 'busy', busy: true, status: `Answering with ${contextFiles} repository files in context…` });
      const result = await this.deps.backend().generate(
        {
          requestId: this.deps.newRequestId(),
          kind: 'chat',
          messages,
          ...repositoryParams(context.repository),
          repoName: context.repoName,
          attention: context.attention,
          ...(this.deps.maxTokens ? { maxTokens: this.deps.maxTokens } : {}),
        },
        (chunk) => {
          if (chunk.length === 0) return;
          turn.text += chunk;
          record.streamed += chunk;
          record.chunks += 1;
          this.deps.post({ type: 'delta', id: turn.id, text: chunk });
        },
        controller.signal,
      );
      record.result = result;
      // The engine's text is the answer; the streamed chunks add up to it.
      turn.text = result.text;
      turn.status = result.finishReason === 'cancelled' ? 'stopped' : 'done';
      turn.meta = {
        promptTokens: result.promptTokens,
        maxContext: context.maxContext,
        reusedTokens: result.reusedTokens,
        tokens: result.tokens,
        contextFiles,
        attention: result.attention ? { mode: result.attention.mode, attendedFraction: result.attention.attendedFraction } : undefined,
        decodeMs: result.timings.decodeMs,
        finishReason: result.finishReason,
        ...(cutToFit.length > 0 ? { cutToFit } : {}),
      };
    } catch (error) {
      turn.status = 'error';
      turn.error = (error as Error).message || String(error);
      record.error = turn.error;
    } finally {
      this.deps.post({ type: 'turn', turn: { ...turn } });
      // Saved before the session reads as idle, so whoever waits for idle() finds it stored.
      await this.deps.history.save().catch(() => undefined);
      this.running = undefined;
      this.deps.post({ type: 'busy', busy: false });
      finish();
    }
  }
}
