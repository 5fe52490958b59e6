// The extension's parts, built and wired together: the engine process and the model it keeps
// loaded, the backends, the repository (the engine host's, or rendered here for the remote
// backend), completions, chat, inline edits, the status bar and the commands. Each part is
// registered on this root, which activate() puts on context.subscriptions.
import * as path from 'node:path';
import * as vscode from 'vscode';

import { LocalBackend, newRequestId } from '../core/backend/localBackend';
import { repositoryPartFor } from '../core/backend/repositoryPart';
import { ChatSession } from '../core/chat/chatSession';
import { ChatHistory } from '../core/chat/historyStore';
import { CompletionService } from '../core/completion/completionService';
import { completionsOnFor } from '../core/completion/languageSwitch';
import type { PrefillProgress } from '../core/protocol/protocol';
import { BackendSelection } from './backendSelection';
import { ChatViewProvider } from './chatViewProvider';
import { registerCommands } from './commands';
import { prefetchOnEditorSwitch } from './cursorPrefetch';
import { EngineClient } from './engineClient';
import { repositoryName } from './hostRepository';
import { connectHostRepository } from './hostRepositoryWatch';
import { completionBudget, readCompletionMode } from './inlineCompletionConfig';
import { TidalInlineCompletionProvider } from './inlineCompletionProvider';
import { registerInlineEdit } from './inlineEdit';
import { registerLanguageModelProvider } from './languageModelProvider';
import { Disposable } from './lifecycle';
import { LocalEngineNotice } from './localEngineNotice';
import { ModelController, type ModelState } from './modelController';
import { ModelNotifications } from './modelNotifications';
import { registerModelPicker } from './modelPicker';
import { RenderedRepositoryContext } from './renderedRepositoryContext';
import { registerSelectionCommands } from './selectionCommands';
import { readSettings, type TidalSettings } from './settings';
import { TidalStatusBar } from './statusBar';
import { gatherChatContext } from './vscodeChatContext';

export class TidalExtension extends Disposable {
  readonly log: vscode.LogOutputChannel;
  readonly engine: EngineClient;
  readonly model: ModelController;
  readonly modelNotifications: ModelNotifications;
  readonly statusBar = this._register(new TidalStatusBar());
  readonly chat: ChatViewProvider;
  readonly completions: CompletionService;
  readonly hostRepository: ReturnType<typeof connectHostRepository>['repository'];
  readonly inlineEdit: ReturnType<typeof registerInlineEdit>;
  private chatSession: ChatSession;
  private readonly newChatSession: () => ChatSession;

  static async create(context: vscode.ExtensionContext): Promise<TidalExtension> {
    const log = vscode.window.createOutputChannel('Tidal Engine', { log: true });
    const settings = (): TidalSettings => readSettings((key) => vscode.workspace.getConfiguration('tidal').get(key)).settings;
    const engine = new EngineClient(path.join(context.extensionPath, 'dist', 'engine-host.js'), log);
    // A relative tidal.modelPath is read from the first folder (a model is one path, not per folder).
    const workspaceRoot = () => vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const model = new ModelController(engine, path.join(context.extensionPath, 'models', 'tidal-code-mini'), settings, log, workspaceRoot);
    const local = new LocalBackend({
      get rpc() {
        return engine.rpc;
      },
      onToken: (listener) => engine.onToken(listener),
      onProgress: (listener) => engine.onProgress(listener),
      whenModelReady: () => model.whenReady().then(() => undefined),
    });
    const backends = await BackendSelection.create(context.secrets, settings, local);
    return new TidalExtension(context, { log, settings, engine, model, backends });
  }

  private constructor(
    private readonly context: vscode.ExtensionContext,
    parts: { log: vscode.LogOutputChannel; settings: () => TidalSettings; engine: EngineClient; model: ModelController; backends: BackendSelection },
  ) {
    super();
    const { settings } = parts;
    this.log = this._register(parts.log);
    this.engine = this._register(parts.engine);
    this.model = this._register(parts.model);
    const { log, engine, model } = this;
    const backend = this._register(parts.backends).backend;
    this.logSettingProblems();
    this.modelNotifications = this._register(new ModelNotifications(model, context.globalState, log));
    this._register(new LocalEngineNotice(engine, model, this.modelNotifications, settings, context.globalState, log));

    // One repository part for completions and chat, so both prompts start with the same tokens
    // and reuse one cached KV prefix in the engine: the engine host's own (local backend), or
    // files rendered here with the same budget and the active file left out.
    const rendered = this._register(new RenderedRepositoryContext(log));
    const repoName = () => repositoryName(vscode.workspace.workspaceFolders ?? [], vscode.workspace.name);
    const completionSettings = () =>
      completionBudget(
        settings(),
        readCompletionMode(vscode.workspace.getConfiguration('tidal').get('inlineCompletions.mode')),
        model.loaded?.model.maxContext ?? 0,
        repoName(),
        model.loaded?.model.backend,
      );
    const repositoryTokens = () => completionSettings().repositoryTokens;
    const host = connectHostRepository({ engine, model, settings, repositoryTokens, globalStorageDir: context.globalStorageUri.fsPath, log });
    for (const disposable of host.disposables) this._register(disposable);
    this.hostRepository = host.repository;
    const { hostRenders } = host;
    const repositoryPart = repositoryPartFor({
      hostRenders,
      host: () => host.repository.part(),
      files: (excludePath) => rendered.snapshot(repositoryTokens(), excludePath),
    });
    const configureContext = () => (hostRenders() ? rendered.clear() : rendered.configure(settings(), model.loaded?.modelDir));

    // Chat: the view, and the session behind it (a new one for a new conversation).
    this.chat = this._register(
      new ChatViewProvider(
        context.extensionUri,
        () => this.chatSession,
        () => describeState(engine, model.state),
      ),
    );
    // The chat's busy state, for the status bar (set up below, once the status bar's update exists).
    let chatBusy = false;
    let editBusy = false;
    let onChatBusy = () => {};
    this.newChatSession = () =>
      new ChatSession({
        backend,
        history: new ChatHistory(context.workspaceState),
        post: (message) => {
          this.chat.post(message);
          if (message.type === 'busy' && message.busy !== chatBusy) {
            chatBusy = message.busy;
            onChatBusy();
          }
        },
        newRequestId: () => newRequestId('chat'),
        gatherContext: (attachments) => gatherChatContext(attachments, this.chat.editor, model, repositoryPart, settings()),
      });
    this.chatSession = this.newChatSession();

    // Inline completions.
    const languageOn = (languageId: string) => completionsOnFor(settings().inlineCompletions.languages, languageId);
    this.completions = new CompletionService({
      backend,
      config: () => completionSettings().config,
      repositoryPart,
      newRequestId: () => newRequestId('completion'),
    });
    const completions = this.completions;
    this._register(
      vscode.languages.registerInlineCompletionItemProvider(
        [{ pattern: '**' }, { scheme: 'untitled' }],
        new TidalInlineCompletionProvider(completions, (uri) => rendered.relativePath(uri), log, languageOn),
      ),
    );
    this._register(
      prefetchOnEditorSwitch(
        completions,
        (uri) => rendered.relativePath(uri),
        (listener) => {
          let wasReady = false;
          return host.repository.onDidChange((status) => {
            const ready = status?.state === 'ready';
            if (ready && !wasReady) listener();
            wasReady = ready;
          });
        },
        languageOn,
      ),
    );

    // The status bar and the chat view's model line follow the engine, the model and completions.
    // A request's long prefill shows there too while it runs (any request: chat, completion, edit).
    let prefill: PrefillProgress | undefined;
    let prefillTimer: NodeJS.Timeout | undefined;
    const updateStatusBar = () => {
      const current = settings();
      this.statusBar.update(engine.currentStatus, current.inlineCompletions.enabled, model.state, {
        busy: completions.counters.inFlight > 0,
        answering: chatBusy,
        editing: editBusy,
        contextTokens: completions.lastFromEngine?.result?.promptTokens,
        lastLatencyMs: completions.lastFromEngine?.totalMs,
        lastFirstTokenMs: completions.lastFromEngine?.firstTokenMs,
        lastTokens: completions.lastFromEngine?.result?.tokens,
        lastDecodeMs: completions.lastFromEngine?.result?.timings.decodeMs,
        lastError: completions.lastError,
        remoteUrl: current.backend === 'remote' ? current.remoteUrl : undefined,
        repository: hostRenders() ? host.repository.status : undefined,
        prefill,
      });
    };
    onChatBusy = updateStatusBar;
    this._register(
      engine.onProgress((progress) => {
        clearTimeout(prefillTimer);
        prefill = progress.done < progress.total ? progress : undefined;
        // A request that ends or fails without a last report (cancelled, engine restarted) must
        // not leave the progress up: each part takes about half a second, so a stale one goes.
        if (prefill) prefillTimer = setTimeout(() => ((prefill = undefined), updateStatusBar()), 5000);
        updateStatusBar();
      }),
    );
    this._register({ dispose: () => clearTimeout(prefillTimer) });
    const refresh = () => {
      updateStatusBar();
      this.chat.refreshEngine();
    };
    this._register(engine.onDidChangeStatus(refresh));
    this._register(
      model.onDidChange((state) => {
        if (state.state === 'loading') completions.forgetFigures();
        refresh();
        if (state.state === 'ready') configureContext();
      }),
    );
    this._register(completions.onDidChange(updateStatusBar));
    this._register(host.repository.onDidChange(updateStatusBar));
    this._register(
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (!event.affectsConfiguration('tidal')) return;
        const affects = (...keys: string[]) => keys.some((key) => event.affectsConfiguration(key));
        this.logSettingProblems();
        if (affects('tidal.modelPath', 'tidal.backend', 'tidal.engine.maxKvMemoryGB', 'tidal.engine.kvCache')) void model.reload();
        if (affects('tidal.context.include', 'tidal.context.exclude', 'tidal.backend')) configureContext();
        if (affects('tidal.inlineCompletions.enabled') && !settings().inlineCompletions.enabled) completions.cancelAll();
        if (affects('tidal.modelPath', 'tidal.backend', 'tidal.attention')) completions.clearCache();
        refresh();
      }),
    );
    this._register(vscode.workspace.onDidChangeWorkspaceFolders(configureContext));

    // Commands, the language model provider, the model picker.
    for (const disposable of [
      ...registerCommands({ engine, chat: this.chat, log }),
      ...registerSelectionCommands(this.chat),
      ...registerLanguageModelProvider({
        backend,
        settings,
        model: () => model.state,
        onDidChangeModel: model.onDidChange,
        repositoryPart,
        repoName,
        newRequestId: () => newRequestId('lm'),
        log,
      }),
      ...registerModelPicker(context, log),
    ])
      this._register(disposable);
    // Edit Selection with Instruction, a chat code block's Apply, and the hunk review both end in.
    this.inlineEdit = registerInlineEdit({
      backend,
      gatherContext: (editor) => gatherChatContext([], editor, model, repositoryPart, settings()),
      newRequestId: () => newRequestId('edit'),
      onBusy: (busy) => {
        editBusy = busy;
        updateStatusBar();
      },
    });
    for (const disposable of this.inlineEdit.disposables) this._register(disposable);

    configureContext();
    refresh();
  }

  /** Starts the engine process; the model loads once it is up. */
  start(): void {
    void this.engine.start();
  }

  /** The conversation the chat view shows. */
  get session(): ChatSession {
    return this.chatSession;
  }

  /** Drops the in-memory conversation and reads it back from the workspace state. */
  async reloadChat(): Promise<void> {
    this.chatSession.stop();
    await this.chatSession.idle();
    this.chatSession = this.newChatSession();
    await this.chat.reloadPanel();
  }

  /** The file the `Tidal Engine` output channel is written to. */
  get logFile(): string {
    return path.join(this.context.logUri.fsPath, `${this.log.name}.log`);
  }

  private logSettingProblems(): void {
    for (const problem of readSettings((key) => vscode.workspace.getConfiguration('tidal').get(key)).problems) this.log.warn(`setting ${problem}`);
  }
}

/** The engine and the model in one line, for the chat view's header. */
function describeState(engine: EngineClient, model: ModelState): string {
  const status = engine.currentStatus;
  if (status.state === 'error') return `Engine error: ${status.message}`;
  // No local engine: the model's message says so, or names the remote server.
  if (status.state === 'unavailable') return model.state === 'idle' ? model.message : 'No local engine';
  if (status.state !== 'ready' || !status.info) return `Engine ${status.state}…`;
  switch (model.state) {
    case 'ready': {
      const m = model.loaded.model;
      // The embedded model is called a demo wherever it is named (its answers are not useful).
      const name = model.embedded ? 'tidal-code-mini (demo model)' : path.basename(model.loaded.modelDir);
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
