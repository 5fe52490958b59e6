// Extension entry: wires the engine process, the model it keeps loaded, the repository (the
// engine host's, or rendered here for the remote backend), the status bar, the chat view and
// the commands together. Everything disposable goes onto context.subscriptions.
import * as path from 'node:path';
import * as vscode from 'vscode';

import { ChatSession } from '../core/chat/chatSession';
import { ChatHistory, HISTORY_KEY } from '../core/chat/historyStore';
import { gatherChatContext } from './vscodeChatContext';
import type { CodeAction, ComposerKey } from '../core/chat/chatMessages';
import { ChatViewProvider } from './chatViewProvider';
import { CompletionService, type CompletionCounters } from '../core/completion/completionService';
import { completionsOnFor } from '../core/completion/languageSwitch';
import { statsRequest, type EngineStats, type RepositoryStatus } from '../core/protocol/protocol';
import { COMMAND_IDS, registerCommands } from './commands';
import { EngineClient } from './engineClient';
import type { GenerationBackend } from '../core/backend/generationBackend';
import { prefetchOnEditorSwitch } from './cursorPrefetch';
import { repositoryName } from './hostRepository';
import { connectHostRepository } from './hostRepositoryWatch';
import { completionBudget, readCompletionMode } from './inlineCompletionConfig';
import { TidalInlineCompletionProvider } from './inlineCompletionProvider';
import type { ReviewSnapshot } from './hunkReview';
import { registerInlineEdit } from './inlineEdit';
import { registerLanguageModelProvider } from './languageModelProvider';
import { LocalBackend, newRequestId } from '../core/backend/localBackend';
import { LocalEngineNotice } from './localEngineNotice';
import { ModelController, type ModelState } from './modelController';
import { ModelNotifications, type ShownNotice } from './modelNotifications';
import { registerModelPicker } from './modelPicker';
import { RenderedRepositoryContext } from './renderedRepositoryContext';
import { repositoryPartFor } from '../core/backend/repositoryPart';
import { RemoteBackend } from '../core/backend/remoteBackend';
import { registerSelectionCommands } from './selectionCommands';
import { readSettings, type TidalSettings } from './settings';
import { TidalStatusBar } from './statusBar';

// What activate() returns: a small read-only API, used by the integration tests.
export interface TidalApi {
  getState(): {
    activated: true;
    engineState: string;
    engineMessage?: string;
    enginePid?: number;
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
    turns(): { role: 'user' | 'assistant'; text: string; status: string; error?: string; attachments?: string[] }[];
    /** The last answer: the engine's result and the text streamed to the panel. */
    lastAnswer(): ChatAnswerState | undefined;
    busy(): boolean;
    /** Resolves once no answer is being generated. */
    idle(): Promise<void>;
    /** What the panel reported it shows after its last render. */
    panel(): { turns: { role: 'user' | 'assistant'; text: string }[]; visibleText: string; lastTurnLengths: number[] } | undefined;
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

export async function activate(context: vscode.ExtensionContext): Promise<TidalApi> {
  const log = vscode.window.createOutputChannel('Tidal Engine', { log: true });
  context.subscriptions.push(log);

  const settings = (): TidalSettings => readSettings((key) => vscode.workspace.getConfiguration('tidal').get(key)).settings;
  const logSettingProblems = () => {
    for (const problem of readSettings((key) => vscode.workspace.getConfiguration('tidal').get(key)).problems) {
      log.warn(`setting ${problem}`);
    }
  };
  logSettingProblems();

  const engine = new EngineClient(path.join(context.extensionPath, 'dist', 'engine-host.js'), log);
  const embeddedModelDir = path.join(context.extensionPath, 'models', 'tidal-code-mini');
  // A relative tidal.modelPath is read from the first folder (a model is one path, not per folder).
  const workspaceRoot = () => vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const model = new ModelController(engine, embeddedModelDir, settings, log, workspaceRoot);
  const modelNotifications = new ModelNotifications(model, context.globalState, log);
  const localEngineNotice = new LocalEngineNotice(engine, model, modelNotifications, settings, context.globalState, log);
  const repository = new RenderedRepositoryContext(log);
  const local = new LocalBackend({
    get rpc() {
      return engine.rpc;
    },
    onToken: (listener) => engine.onToken(listener),
    whenModelReady: () => model.whenReady().then(() => undefined),
  });
  // The remote backend (tidal.backend = remote): one client per URL, model and key. The key
  // lives in VS Code's secret storage, never in settings.
  const REMOTE_KEY_SECRET = 'tidal.remoteApiKey';
  let remoteApiKey = (await context.secrets.get(REMOTE_KEY_SECRET)) || undefined;
  let remote: { key: string; backend: RemoteBackend } | undefined;
  const backend = (): GenerationBackend => {
    const current = settings();
    if (current.backend !== 'remote') return local;
    const key = JSON.stringify([current.remoteUrl, current.remoteModel, remoteApiKey ?? '']);
    if (remote?.key !== key) {
      // The window's session id names this editor to the server (completions supersede per client).
      remote = {
        key,
        backend: new RemoteBackend({ baseUrl: current.remoteUrl, model: current.remoteModel || undefined, apiKey: remoteApiKey, client: vscode.env.sessionId }),
      };
    }
    return remote.backend;
  };

  const statusBar = new TidalStatusBar();
  const summary = () => describeState(engine, model.state);
  const completionSettings = () =>
    completionBudget(
      settings(),
      readCompletionMode(vscode.workspace.getConfiguration('tidal').get('inlineCompletions.mode')),
      model.loaded?.model.maxContext ?? 0,
      repositoryName(vscode.workspace.workspaceFolders ?? [], vscode.workspace.name),
    );
  // One repository part for completions and chat, so both prompts start with the same tokens
  // and reuse one cached KV prefix in the engine: the engine host's own (local backend), or
  // files rendered here with the same budget and the active file left out.
  const repositoryTokens = () => completionSettings().repositoryTokens;
  const host = connectHostRepository({ engine, model, settings, repositoryTokens, globalStorageDir: context.globalStorageUri.fsPath, log });
  const { repository: hostRepository, hostRenders } = host;
  const repositoryPart = repositoryPartFor({
    hostRenders,
    host: () => hostRepository.part(),
    files: (excludePath) => repository.snapshot(repositoryTokens(), excludePath),
  });
  const chatHistory = () => new ChatHistory(context.workspaceState);
  let chatSession: ChatSession;
  const chat = new ChatViewProvider(context.extensionUri, () => chatSession, summary);
  const newChatSession = () =>
    new ChatSession({
      backend,
      history: chatHistory(),
      post: (message) => chat.post(message),
      newRequestId: () => newRequestId('chat'),
      gatherContext: (attachments) => gatherChatContext(attachments, chat.editor, model, repositoryPart, settings()),
    });
  chatSession = newChatSession();
  const completionsEnabled = () => settings().inlineCompletions.enabled;
  const languageOn = (languageId: string) => completionsOnFor(settings().inlineCompletions.languages, languageId);
  const completions = new CompletionService({
    backend,
    config: () => completionSettings().config,
    repositoryPart: repositoryPart,
    newRequestId: () => newRequestId('completion'),
  });
  const updateStatusBar = () => {
    const current = settings();
    statusBar.update(engine.currentStatus, current.inlineCompletions.enabled, model.state, {
      busy: completions.counters.inFlight > 0,
      contextTokens: completions.lastFromEngine?.result?.promptTokens,
      lastLatencyMs: completions.lastFromEngine?.totalMs,
      lastFirstTokenMs: completions.lastFromEngine?.firstTokenMs,
      lastTokens: completions.lastFromEngine?.result?.tokens,
      lastDecodeMs: completions.lastFromEngine?.result?.timings.decodeMs,
      lastError: completions.lastError,
      remoteUrl: current.backend === 'remote' ? current.remoteUrl : undefined,
      repository: hostRenders() ? hostRepository.status : undefined,
    });
  };
  const refresh = () => {
    updateStatusBar();
    chat.refreshEngine();
  };
  const configureContext = () => (hostRenders() ? repository.clear() : repository.configure(settings(), model.loaded?.modelDir));

  context.subscriptions.push(
    engine,
    model,
    modelNotifications,
    localEngineNotice,
    repository,
    statusBar,
    chat,
    vscode.window.registerWebviewViewProvider(ChatViewProvider.viewId, chat, { webviewOptions: { retainContextWhenHidden: true } }),
    engine.onDidChangeStatus(refresh),
    model.onDidChange((state) => {
      if (state.state === 'loading') completions.forgetFigures();
      refresh();
      if (state.state === 'ready') configureContext();
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration('tidal')) return;
      const affects = (...keys: string[]) => keys.some((key) => event.affectsConfiguration(key));
      logSettingProblems();
      if (affects('tidal.modelPath', 'tidal.backend', 'tidal.engine.maxKvMemoryGB')) void model.reload();
      if (affects('tidal.context.include', 'tidal.context.exclude', 'tidal.backend')) configureContext();
      if (affects('tidal.inlineCompletions.enabled') && !completionsEnabled()) completions.cancelAll();
      if (affects('tidal.modelPath', 'tidal.backend', 'tidal.attention')) completions.clearCache();
      refresh();
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(configureContext),
    vscode.languages.registerInlineCompletionItemProvider(
      [{ pattern: '**' }, { scheme: 'untitled' }],
      new TidalInlineCompletionProvider(completions, (uri) => repository.relativePath(uri), log, languageOn),
    ),
    prefetchOnEditorSwitch(
      completions,
      (uri) => repository.relativePath(uri),
      (listener) => {
        let wasReady = false;
        return hostRepository.onDidChange((status) => {
          const ready = status?.state === 'ready';
          if (ready && !wasReady) listener();
          wasReady = ready;
        });
      },
      languageOn,
    ),
    completions.onDidChange(updateStatusBar),
    ...host.disposables,
    hostRepository.onDidChange(updateStatusBar),
    ...registerCommands({ engine, chat, log }),
    ...registerSelectionCommands(chat),
    ...registerLanguageModelProvider({
      backend,
      model: () => model.state,
      onDidChangeModel: model.onDidChange,
      repositoryPart,
      repoName: () => repositoryName(vscode.workspace.workspaceFolders ?? [], vscode.workspace.name),
      newRequestId: () => newRequestId('lm'),
      log,
    }),
    ...registerModelPicker(context, log),
    context.secrets.onDidChange(async (event) => {
      if (event.key === REMOTE_KEY_SECRET) remoteApiKey = (await context.secrets.get(REMOTE_KEY_SECRET)) || undefined;
    }),
    vscode.commands.registerCommand('tidal.setRemoteApiKey', async () => {
      const value = await vscode.window.showInputBox({
        title: 'Tidal: Remote Server API Key',
        prompt: `The key ${settings().remoteUrl} expects (sent as "Authorization: Bearer …"). Empty: remove the stored key.`,
        password: true,
        ignoreFocusOut: true,
      });
      if (value === undefined) return;
      if (value.trim() === '') await context.secrets.delete(REMOTE_KEY_SECRET);
      else await context.secrets.store(REMOTE_KEY_SECRET, value.trim());
      remoteApiKey = value.trim() || undefined;
      vscode.window.setStatusBarMessage(`Tidal: remote API key ${remoteApiKey ? 'stored' : 'removed'}`, 3000);
    }),
  );
  // Edit Selection with Instruction, a chat code block's Apply, and the hunk review both end in.
  const inlineEdit = registerInlineEdit({
    backend,
    gatherContext: (editor) => gatherChatContext([], editor, model, repositoryPart, settings()),
    newRequestId: () => newRequestId('edit'),
  });
  context.subscriptions.push(...inlineEdit.disposables);
  configureContext();
  refresh();
  void engine.start();

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
      const state = model.state;
      const offer = model.localEngine();
      return {
        activated: true,
        engineState: engine.currentStatus.state,
        engineMessage: engine.currentStatus.message,
        enginePid: engine.currentStatus.info?.pid,
        backend: engine.currentStatus.info ? (engine.currentStatus.info.cuda.usable ? 'cuda' : 'cpu') : undefined,
        localEngine: { available: offer.local, platform: offer.platform, reason: offer.local ? undefined : offer.reason },
        commandsRegistered: [...COMMAND_IDS],
        chatViewVisible: chat.isVisible,
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
        () => ['ready', 'error', 'unavailable'].includes(engine.currentStatus.state),
        () => engine.currentStatus.state,
        timeoutMs,
        [engine.onDidChangeStatus],
      ),
    waitForModel: (timeoutMs) =>
      waitUntil(
        () => model.state.state === 'ready' || model.state.state === 'error',
        () => model.state.state,
        timeoutMs,
        [model.onDidChange],
      ),
    chat: {
      turns: () =>
        chatSession.turns.map((turn) => ({ role: turn.role, text: turn.text, status: turn.status, error: turn.error, attachments: turn.attachments })),
      lastAnswer: () => {
        const last = chatSession.lastAnswer;
        if (!last) return undefined;
        const turn = chatSession.turns.find((candidate) => candidate.id === last.turnId);
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
      busy: () => chatSession.busy,
      idle: () => chatSession.idle(),
      panel: () => chat.panelSnapshot,
      stop: () => chatSession.stop(),
      storedTurnCounts: () => {
        const stored = context.workspaceState.get<{ conversations?: { turns?: unknown[] }[] }>(HISTORY_KEY);
        return (stored?.conversations ?? []).map((conversation) => conversation.turns?.length ?? 0);
      },
      reloadFromStorage: async () => {
        chatSession.stop();
        await chatSession.idle();
        chatSession = newChatSession();
        await chat.reloadPanel();
      },
      attach: (ids) => chat.attach(ids),
      composer: (action) => chat.driveComposer(action),
      composerAttachments: () => chat.composerAttachments,
      mentionOptions: () => chat.mentionOptions,
      pressCodeButton: (action, block) => chat.pressCodeButton(action, block),
    },
    review: (uri) => inlineEdit.review.snapshot(uri),
    completionStats: () => ({
      ...completions.counters,
      lastText: completions.last?.text,
      lastSource: completions.last?.source,
      lastRequestId: completions.last?.requestId,
      lastError: completions.lastError,
      lastRepositoryTokens: completions.lastFromEngine?.repositoryTokens,
      lastAlternatives: completions.last?.alternatives,
    }),
    engineStats: async () => engine.rpc?.sendRequest(statsRequest).catch(() => undefined),
    statusBarText: () => statusBar.text,
    statusBarTooltip: () => statusBar.tooltipText,
    repositoryStatus: () => hostRepository.status,
    // Registered after the status bar's own listener, so the text given is already updated.
    onDidChangeRepositoryStatus: (listener) => hostRepository.onDidChange((status) => listener(status, statusBar.text)),
    notifications: () => modelNotifications.shown,
    logFile: () => path.join(context.logUri.fsPath, `${log.name}.log`),
  };
}

function describeState(engine: EngineClient, model: ModelState): string {
  const status = engine.currentStatus;
  if (status.state === 'error') return `Engine error: ${status.message}`;
  // No local engine: the model's message says so, or names the remote server.
  if (status.state === 'unavailable') return model.state === 'idle' ? model.message : 'No local engine';
  if (status.state !== 'ready' || !status.info) return `Engine ${status.state}…`;
  switch (model.state) {
    case 'ready': {
      const m = model.loaded.model;
      const name = model.embedded ? 'tidal-code-mini' : path.basename(model.loaded.modelDir);
      return `${name} · ${m.architecture} · ${m.backend.toUpperCase()} · context ${m.maxContext.toLocaleString('en-US')} tokens`;
    }
    case 'loading':
      return `Loading ${path.basename(model.modelDir)}…`;
    case 'error':
      return model.message;
    case 'idle':
      return model.message;
  }
}

export function deactivate(): void {}
