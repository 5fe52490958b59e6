// The API activate() returns to the integration tests (and only to them: it is built in test
// mode, see isTestMode): what the extension shows and holds, read-only, plus a few ways to
// drive the chat panel as a user would.
import * as vscode from 'vscode';

import type { AnswerMeta, CodeAction, CodeButtonState, ComposerKey } from '../core/chat/chatMessages';
import { HISTORY_KEY } from '../core/chat/historyStore';
import type { CompletionCounters } from '../core/completion/completionService';
import { statsRequest, type EngineStats, type RepositoryStatus } from '../core/protocol/protocol';
import { COMMAND_IDS } from './commands';
import type { ReviewSnapshot } from './hunkReview';
import type { ModelState } from './modelController';
import type { ShownNotice } from './modelNotifications';
import type { TidalExtension } from './tidalExtension';

/**
 * Whether the extension runs under the integration tests: VS Code's test mode (the extension
 * loaded from its folder by a test run), or TIDAL_TEST_API=1 in the extension host's
 * environment (the suite's runners set it, since the VSIX under test is installed).
 */
export function isTestMode(context: vscode.ExtensionContext): boolean {
  return context.extensionMode === vscode.ExtensionMode.Test || process.env.TIDAL_TEST_API === '1';
}

/** What activate() returns in test mode: a small read-only API. */
export interface TidalApi {
  getState(): {
    activated: true;
    engineState: string;
    engineMessage?: string;
    enginePid?: number;
    /** 'native' or 'wasm' (the WebAssembly build) once the engine is ready. */
    engineBuild?: string;
    commandsRegistered: string[];
    backend?: string;
    /** Whether this machine has a local engine; without one, the platform and the reason. */
    localEngine: { available: boolean; platform: string; reason?: string };
    chatViewVisible: boolean;
    model: { state: ModelState['state']; message?: string; architecture?: string; backend?: string; maxContext?: number };
  };
  /** Resolves with the engine state once it is 'ready', 'error' or 'unavailable' (or the time is up). */
  waitForEngine(timeoutMs: number): Promise<string>;
  /** Resolves with the model state once it is 'ready' or 'error' (or the time is up). */
  waitForModel(timeoutMs: number): Promise<ModelState['state']>;
  /** The chat, as the panel's user sees it. */
  chat: {
    /** The current conversation's turns. */
    turns(): {
      role: 'user' | 'assistant';
      text: string;
      status: string;
      error?: string;
      /** false where asking again would fail the same way (the panel offers no Regenerate). */
      canRetry?: boolean;
      attachments?: string[];
      meta?: AnswerMeta;
    }[];
    /** The last answer: the engine's result and the text streamed to the panel. */
    lastAnswer(): ChatAnswerState | undefined;
    busy(): boolean;
    /** The busy state last posted to the panel, with the status line it shows (e.g. "Reading the repository…"). */
    busyStatus(): { busy: boolean; status?: string };
    /** The status lines posted to the panel (the last 200, oldest first, no repeats in a row). */
    statusLines(): readonly string[];
    /** Resolves once no answer is being generated. */
    idle(): Promise<void>;
    /** What the panel reported it shows after its last render. */
    panel():
      { turns: { role: 'user' | 'assistant'; text: string }[]; visibleText: string; lastTurnLengths: number[]; codeButtons: CodeButtonState[] } | undefined;
    /** The panel's Stop button. */
    stop(): void;
    /** Number of turns per stored conversation in the workspace state, current first. */
    storedTurnCounts(): number[];
    /** Drops the in-memory chat, reads it back from the workspace state and reloads the panel's page. */
    reloadFromStorage(): Promise<void>;
    /** Adds chips to the composer, as the Add context quick pick does (file paths, '#selection', '#problems', '#diff'). */
    attach(ids: string[]): void;
    /** Drives the composer in the panel: types the text, presses a key in it ('Enter', 'Tab', 'ArrowDown', …), presses a chip's remove button, presses Send. */
    composer(action: { text?: string; press?: ComposerKey; remove?: string; submit?: boolean }): void;
    /** The attachments the composer's chips show, as the panel last said. */
    composerAttachments(): readonly string[];
    /** The ids the composer's `#`/`@` completion list offers now, best first; empty when it is closed. */
    mentionOptions(): readonly string[];
    /** Presses a code block's button (Copy, Insert, New file, Apply; `block`: its index) in the last answer. */
    pressCodeButton(action: CodeAction, block: number): void;
    /** The code-block actions the panel sent to the extension, oldest first (a disabled button sends none). */
    codeActions(): readonly CodeAction[];
  };
  /** The hunk review of a proposed edit (inline edit, chat Apply) running in `uri`, as shown; undefined when none. */
  review(uri: vscode.Uri): ReviewSnapshot | undefined;
  /**
   * Inline completions: requests started/finished/cancelled, the last text shown, and the
   * repository tokens in the last engine completion's prompt.
   */
  completionStats(): CompletionCounters & {
    lastText?: string;
    lastSource?: 'engine' | 'cache';
    lastRequestId?: string;
    lastError?: string;
    lastRepositoryTokens?: number;
    lastAlternatives?: string[];
  };
  /** The engine host's own counters (queue, prefix cache), or undefined while it is not ready. */
  engineStats(): Promise<EngineStats | undefined>;
  /** The status bar item's text. */
  statusBarText(): string;
  /** The status bar item's tooltip, as text (Markdown where it is Markdown). */
  statusBarTooltip(): string;
  /** The engine host's latest report on the repository (warm-up, ready); undefined while none is open there. */
  repositoryStatus(): RepositoryStatus | undefined;
  /**
   * Calls `listener` with every report the engine host sends on the repository, and with the
   * status bar's text right after it was updated for that report.
   */
  onDidChangeRepositoryStatus(listener: (status: RepositoryStatus | undefined, statusBarText: string) => void): { dispose(): void };
  /** The notifications about the model shown in this window (demo note, load failures), oldest first. */
  notifications(): readonly ShownNotice[];
  /** The file the `Tidal Engine` output channel is written to. */
  logFile(): string;
}

export interface ChatAnswerState {
  text: string;
  streamed: string;
  chunks: number;
  finishReason?: string;
  tokens?: number;
  promptTokens?: number;
  reusedTokens?: number;
  attention?: { mode: string; attendedFraction: number };
  error?: string;
  /** The chat messages sent to the engine (the prompt before its chat template). */
  messages?: { role: string; content: string }[];
  /** Attachments cut or left out to fit the context. */
  cutToFit?: string[];
}

export function createTestApi(tidal: TidalExtension, context: vscode.ExtensionContext): TidalApi {
  const waitUntil = <T>(done: () => boolean, value: () => T, timeoutMs: number, events: vscode.Event<unknown>[]) =>
    new Promise<T>((resolve) => {
      if (done()) return resolve(value());
      const listeners: vscode.Disposable[] = [];
      const finish = () => {
        clearTimeout(timer);
        for (const listener of listeners) listener.dispose();
        resolve(value());
      };
      const timer = setTimeout(finish, timeoutMs);
      for (const event of events) listeners.push(event(() => done() && finish()));
    });

  return {
    getState: () => {
      const state = tidal.model.state;
      const offer = tidal.model.localEngine();
      return {
        activated: true,
        engineState: tidal.engine.currentStatus.state,
        engineMessage: tidal.engine.currentStatus.message,
        enginePid: tidal.engine.currentStatus.info?.pid,
        engineBuild: tidal.engine.currentStatus.info?.build,
        backend: tidal.engine.currentStatus.info ? (tidal.engine.currentStatus.info.cuda.usable ? 'cuda' : 'cpu') : undefined,
        localEngine: { available: offer.local, platform: offer.platform, reason: offer.local ? undefined : offer.reason },
        commandsRegistered: [...COMMAND_IDS],
        chatViewVisible: tidal.chat.isVisible,
        model: {
          state: state.state,
          message: state.state === 'error' || state.state === 'idle' ? state.message : undefined,
          architecture: state.state === 'ready' ? state.loaded.model.architecture : undefined,
          backend: state.state === 'ready' ? state.loaded.model.backend : undefined,
          maxContext: state.state === 'ready' ? state.loaded.model.maxContext : undefined,
        },
      };
    },
    waitForEngine: (timeoutMs) =>
      waitUntil(
        () => ['ready', 'error', 'unavailable'].includes(tidal.engine.currentStatus.state),
        () => tidal.engine.currentStatus.state,
        timeoutMs,
        [tidal.engine.onDidChangeStatus],
      ),
    waitForModel: (timeoutMs) =>
      waitUntil(
        () => tidal.model.state.state === 'ready' || tidal.model.state.state === 'error',
        () => tidal.model.state.state,
        timeoutMs,
        [tidal.model.onDidChange],
      ),
    chat: {
      turns: () =>
        tidal.session.turns.map((turn) => ({
          role: turn.role,
          text: turn.text,
          status: turn.status,
          error: turn.error,
          canRetry: turn.canRetry,
          attachments: turn.attachments,
          meta: turn.meta,
        })),
      lastAnswer: () => {
        const last = tidal.session.lastAnswer;
        if (!last) return undefined;
        const turn = tidal.session.turns.find((candidate) => candidate.id === last.turnId);
        const result = last.result;
        return {
          text: turn?.text ?? '',
          streamed: last.streamed,
          chunks: last.chunks,
          finishReason: result?.finishReason,
          tokens: result?.tokens,
          promptTokens: result?.promptTokens,
          reusedTokens: result?.reusedTokens,
          attention: result?.attention,
          error: last.error,
          messages: last.messages,
          cutToFit: turn?.meta?.cutToFit,
        };
      },
      busy: () => tidal.session.busy,
      busyStatus: () => tidal.chat.busyStatus,
      statusLines: () => tidal.chat.statusLines,
      idle: () => tidal.session.idle(),
      panel: () => tidal.chat.panelSnapshot,
      stop: () => tidal.session.stop(),
      storedTurnCounts: () => {
        const stored = context.workspaceState.get<{ conversations?: { turns?: unknown[] }[] }>(HISTORY_KEY);
        return (stored?.conversations ?? []).map((conversation) => conversation.turns?.length ?? 0);
      },
      reloadFromStorage: () => tidal.reloadChat(),
      attach: (ids) => tidal.chat.attach(ids),
      composer: (action) => tidal.chat.driveComposer(action),
      composerAttachments: () => tidal.chat.composerAttachments,
      mentionOptions: () => tidal.chat.mentionOptions,
      pressCodeButton: (action, block) => tidal.chat.pressCodeButton(action, block),
      codeActions: () => tidal.chat.codeActions,
    },
    review: (uri) => tidal.inlineEdit.review.snapshot(uri),
    completionStats: () => ({
      ...tidal.completions.counters,
      lastText: tidal.completions.last?.text,
      lastSource: tidal.completions.last?.source,
      lastRequestId: tidal.completions.last?.requestId,
      lastError: tidal.completions.lastError,
      lastRepositoryTokens: tidal.completions.lastFromEngine?.repositoryTokens,
      lastAlternatives: tidal.completions.last?.alternatives,
    }),
    engineStats: async () => tidal.engine.rpc?.sendRequest(statsRequest).catch(() => undefined),
    statusBarText: () => tidal.statusBar.text,
    statusBarTooltip: () => tidal.statusBar.tooltipText,
    repositoryStatus: () => tidal.hostRepository.status,
    // Registered after the status bar's own listener, so the text given is already updated.
    onDidChangeRepositoryStatus: (listener) => tidal.hostRepository.onDidChange((status) => listener(status, tidal.statusBar.text)),
    notifications: () => tidal.modelNotifications.shown,
    logFile: () => tidal.logFile,
  };
}
