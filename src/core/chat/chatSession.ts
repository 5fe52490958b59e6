// The chat's behaviour, without the `vscode` module: a question becomes a user turn and a
// streamed answer, Stop aborts the request into the engine, Regenerate replaces the last
// answer, Continue goes on with an answer that stopped at its token limit, New chat starts
// over; every change is posted to the panel and saved to the history.
import type { AttentionOptions, ChatMessageParam, GenerateResult } from '../protocol/protocol';
import { canRetry, type GenerationBackend } from '../backend/generationBackend';
import type { ChatToPanel } from './chatMessages';
import { repositoryFileCount, repositoryParams, type RepositoryPart } from '../backend/repositoryPart';
import { prefillProgressText } from '../progress/progressText';
import { newId, type Conversation, type Turn } from './conversation';
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
  /** Tokens an answer may have per request (absent: the engine's default). */
  maxTokens?: number;
}

/** Where a question came from, named in the engine's log line: the panel, or a command. */
export type ChatPurpose = 'chat' | 'ask';

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

  async ask(question: string, attachments: string[] = [], purpose: ChatPurpose = 'chat'): Promise<void> {
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
    await this.answer(turn, purpose);
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
    await this.answer(question, 'chat');
  }

  /**
   * Goes on with the last answer where it stopped at its token limit: the same conversation
   * with the answer so far as the start of the model's reply, the new text appended to it.
   */
  async continueAnswer(): Promise<void> {
    if (this.busy) return;
    const turns = this.deps.history.current.turns;
    const answer = turns.at(-1);
    const question = turns.at(-2);
    if (answer?.role !== 'assistant' || question?.role !== 'user' || answer.status !== 'done' || !answer.meta?.canContinue) return;
    await this.answer(question, 'chat', answer);
  }

  async newChat(): Promise<void> {
    this.stop();
    await this.idle();
    this.deps.history.startNew();
    this.showConversation();
    await this.deps.history.save();
  }

  /** The saved conversations, most recent first; the first is the one shown. */
  get conversations(): readonly Conversation[] {
    return this.deps.history.all;
  }

  /** Shows the saved conversation `id` (an answer being written is stopped first). */
  async openConversation(id: string): Promise<boolean> {
    if (this.deps.history.current.id === id) return true;
    this.stop();
    await this.idle();
    if (!this.deps.history.open(id)) return false;
    this.showConversation();
    await this.deps.history.save();
    return true;
  }

  /** Deletes the saved conversation `id`; deleting the one shown leaves an empty chat. */
  async deleteConversation(id: string): Promise<void> {
    if (this.deps.history.current.id === id) {
      this.stop();
      await this.idle();
    }
    if (!this.deps.history.remove(id)) return;
    this.showConversation();
    await this.deps.history.save();
  }

  /** Answers `question` in a new turn, or continues `continuing` (its last answer). */
  private async answer(question: Turn, purpose: ChatPurpose, continuing?: Turn): Promise<void> {
    const turns = this.deps.history.current.turns;
    const earlier = turns.slice(0, turns.indexOf(question));
    const answerStart = continuing?.text ?? '';
    // The conversation exactly as sent for the answer being continued, where this session sent
    // it: the same prompt tokens, so the engine reuses their KV.
    const sentBefore = continuing !== undefined && this.last?.turnId === continuing.id ? this.last.messages : undefined;
    let turn: Turn;
    if (continuing !== undefined) {
      turn = continuing;
      turn.status = 'streaming';
      delete turn.error;
    } else {
      turn = { id: newId('answer'), role: 'assistant', text: '', status: 'streaming' };
      turns.push(turn);
    }
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
      const messages = sentBefore ?? buildChatMessages(earlier, question.text, context.editor, context.conversationBudgetTokens, cutToFit);
      record.messages = messages;
      const contextFiles = repositoryFileCount(context.repository);
      const maxTokens = context.maxTokens ?? this.deps.maxTokens;
      const backend = this.deps.backend();
      const answering = `Answering with ${contextFiles} repository files in context…`;
      this.deps.post({ type: 'busy', busy: true, status: answering });
      const result = await backend.generate(
        {
          requestId: this.deps.newRequestId(),
          kind: 'chat',
          messages,
          ...repositoryParams(context.repository),
          repoName: context.repoName,
          attention: context.attention,
          stopOnRepetition: true,
          purpose,
          ...(answerStart !== '' ? { answerPrefix: answerStart } : {}),
          ...(maxTokens ? { maxTokens } : {}),
        },
        (chunk) => {
          if (chunk.length === 0) return;
          turn.text += chunk;
          record.streamed += chunk;
          record.chunks += 1;
          this.deps.post({ type: 'delta', id: turn.id, text: chunk });
        },
        controller.signal,
        (progress) => {
          if (controller.signal.aborted) return;
          this.deps.post({ type: 'busy', busy: true, status: progress.done < progress.total ? `${prefillProgressText(progress)}…` : answering });
        },
      );
      record.result = result;
      // The engine's text is the answer (after the part it continued); the streamed chunks add up to it.
      turn.text = answerStart + result.text;
      turn.status = result.finishReason === 'cancelled' ? 'stopped' : 'done';
      turn.meta = {
        promptTokens: result.promptTokens,
        maxContext: context.maxContext,
        reusedTokens: result.reusedTokens,
        tokens: result.tokens,
        // What the engine put into the prompt where it says (the local engine), else what was sent.
        contextFiles: result.contextFiles ?? contextFiles,
        ...contextPathsOf(result.contextPaths, context.repository),
        attention: result.attention ? { mode: result.attention.mode, attendedFraction: result.attention.attendedFraction } : undefined,
        decodeMs: result.timings.decodeMs,
        finishReason: result.finishReason,
        // Only the local engine takes the start of an answer to continue (answerPrefix).
        ...(result.finishReason === 'length' && backend.kind === 'local' ? { canContinue: true } : {}),
        ...(cutToFit.length > 0 ? { cutToFit } : continuing?.meta?.cutToFit ? { cutToFit: continuing.meta.cutToFit } : {}),
      };
    } catch (error) {
      turn.status = 'error';
      turn.error = (error as Error).message || String(error);
      // Asking again fails the same way after a configuration error (no model, a model that
      // cannot chat, a prompt the engine refuses): Regenerate is not offered then.
      if (!canRetry(error)) turn.canRetry = false;
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

/** The paths an answer could see: the engine's list, else the files the request carried. */
function contextPathsOf(fromEngine: string[] | undefined, part: RepositoryPart): { contextPaths?: string[] } {
  if (fromEngine !== undefined) return { contextPaths: fromEngine };
  return part.source === 'host' ? {} : { contextPaths: part.files.map((file) => file.path) };
}
