// The loaded model as a VS Code language model (vscode.lm, vendor "tidal"): the editor's own
// Chat view and other extensions can pick it with vscode.lm.selectChatModels({ vendor: 'tidal' })
// and stream answers from it. Requests go through the same GenerationBackend as the Tidal chat
// (the local engine, or the server of tidal.remoteUrl when tidal.backend is remote), with the
// repository part in front when it fits; tokens are counted with the local model's tokenizer
// (estimated for a remote server).
// The provider API is stable since VS Code 1.104; on an older editor nothing is registered.
import * as path from 'node:path';
import * as vscode from 'vscode';

import type { ModelState } from './modelController';
import type { GenerationBackend } from '../core/backend/generationBackend';
import { countTokensOf, languageModelErrorMessage, runWithCancellation, toChatMessages, type RequestMessage } from './languageModelMessages';
import { repositoryParams, type RepositoryPart } from '../core/backend/repositoryPart';
import { tokenCounterFor } from './renderedRepositoryContext';
import { FALLBACK_CONTEXT_TOKENS } from '../core/context/contextBudget';
import type { TidalSettings } from './settings';

export const LANGUAGE_MODEL_VENDOR = 'tidal';
/** Tokens an answer may have at most (less when the context is small: half of it). */
const MAX_OUTPUT_TOKENS = 2048;

// The provider side of vscode.lm as @types/vscode 1.104 declares it (engines.vscode stays at
// 1.100, so these are declared here and the function is looked up at run time).
export interface LanguageModelChatInformation {
  readonly id: string;
  readonly name: string;
  readonly family: string;
  readonly version: string;
  readonly tooltip?: string;
  readonly detail?: string;
  readonly maxInputTokens: number;
  readonly maxOutputTokens: number;
  readonly capabilities: { readonly imageInput?: boolean; readonly toolCalling?: boolean | number };
}

interface ProvideResponseOptions {
  readonly modelOptions?: { readonly [name: string]: unknown };
}

interface LanguageModelChatProvider {
  readonly onDidChangeLanguageModelChatInformation?: vscode.Event<void>;
  provideLanguageModelChatInformation(
    options: { readonly silent: boolean },
    token: vscode.CancellationToken,
  ): vscode.ProviderResult<LanguageModelChatInformation[]>;
  provideLanguageModelChatResponse(
    model: LanguageModelChatInformation,
    messages: readonly RequestMessage[],
    options: ProvideResponseOptions,
    progress: vscode.Progress<vscode.LanguageModelTextPart>,
    token: vscode.CancellationToken,
  ): Thenable<void>;
  provideTokenCount(model: LanguageModelChatInformation, text: string | RequestMessage, token: vscode.CancellationToken): Thenable<number>;
}

type RegisterProvider = (vendor: string, provider: LanguageModelChatProvider) => vscode.Disposable;

export interface LanguageModelProviderDeps {
  /** The backend the settings choose now (BackendSelection): requests and the model offered follow it. */
  backend(): GenerationBackend;
  /** The remote server's URL and model, named in the model offered when the backend is remote. */
  settings(): Pick<TidalSettings, 'remoteUrl' | 'remoteModel'>;
  model(): ModelState;
  onDidChangeModel: vscode.Event<unknown>;
  repositoryPart(excludePath: string | undefined): Promise<RepositoryPart>;
  repoName(): string | undefined;
  newRequestId(): string;
  log: vscode.LogOutputChannel;
}

/** The model the engine has loaded, as vscode.lm describes it; undefined while none is. */
export function describeLoadedModel(state: ModelState): LanguageModelChatInformation | undefined {
  if (state.state !== 'ready') return undefined;
  const info = state.loaded.model;
  const id = state.embedded ? 'tidal-code-mini' : path.basename(state.loaded.modelDir);
  const maxOutputTokens = Math.max(1, Math.min(MAX_OUTPUT_TOKENS, Math.floor(info.maxContext / 2)));
  return {
    id,
    name: `Tidal ${id}`,
    family: info.architecture,
    version: state.embedded ? 'embedded' : 'local',
    tooltip: `Runs on this machine (${info.backend.toUpperCase()}), context ${info.maxContext} tokens`,
    detail: 'local',
    maxInputTokens: Math.max(1, info.maxContext - maxOutputTokens),
    maxOutputTokens,
    capabilities: { imageInput: false, toolCalling: false },
  };
}

/**
 * The model of the remote server (tidal.backend = remote), as vscode.lm describes it. Its
 * context is not known here, so the budget of other remote requests is assumed
 * (FALLBACK_CONTEXT_TOKENS); the server refuses a prompt too long for it with a message.
 */
export function describeRemoteModel(remote: Pick<TidalSettings, 'remoteUrl' | 'remoteModel'>): LanguageModelChatInformation {
  const served = remote.remoteModel.trim();
  let host = remote.remoteUrl;
  try {
    host = new URL(remote.remoteUrl).host;
  } catch {
    // An invalid URL is named as written; a request says what is wrong with it.
  }
  const maxOutputTokens = Math.min(MAX_OUTPUT_TOKENS, Math.floor(FALLBACK_CONTEXT_TOKENS / 2));
  return {
    id: served ? `remote-${served}` : 'remote',
    name: `Tidal ${served || 'remote'} (${host})`,
    family: 'remote',
    version: 'remote',
    tooltip: `Served by ${remote.remoteUrl} (tidal.backend is remote)`,
    detail: 'remote',
    maxInputTokens: FALLBACK_CONTEXT_TOKENS - maxOutputTokens,
    maxOutputTokens,
    capabilities: { imageInput: false, toolCalling: false },
  };
}

export class TidalLanguageModelProvider implements LanguageModelChatProvider {
  readonly onDidChangeLanguageModelChatInformation: vscode.Event<void>;
  private readonly changed = new vscode.EventEmitter<void>();
  private counter?: { modelDir: string; count: (text: string) => number };

  constructor(private readonly deps: LanguageModelProviderDeps) {
    this.onDidChangeLanguageModelChatInformation = this.changed.event;
  }

  /** Tells the editor the model list changed (a model loaded, unloaded or replaced). */
  modelChanged(): void {
    this.changed.fire();
  }

  /** The model the selected backend answers with: the remote server's, or the loaded local one (none while loading). */
  provideLanguageModelChatInformation(): LanguageModelChatInformation[] {
    const described = this.deps.backend().kind === 'remote' ? describeRemoteModel(this.deps.settings()) : describeLoadedModel(this.deps.model());
    return described ? [described] : [];
  }

  async provideLanguageModelChatResponse(
    model: LanguageModelChatInformation,
    messages: readonly RequestMessage[],
    options: ProvideResponseOptions,
    progress: vscode.Progress<vscode.LanguageModelTextPart>,
    token: vscode.CancellationToken,
  ): Promise<void> {
    const chatMessages = toChatMessages(messages);
    if (chatMessages.every((message) => message.role === 'system')) throw new Error('Tidal: the request has no user message with text to answer.');
    const requested = options.modelOptions?.maxTokens;
    const maxTokens =
      typeof requested === 'number' && Number.isInteger(requested) && requested > 0 ? Math.min(requested, model.maxOutputTokens) : model.maxOutputTokens;
    const backend = this.deps.backend();
    const repository = await this.repositoryIfItFits(
      chatMessages.map((message) => message.content),
      maxTokens,
      options.modelOptions?.repository !== false,
      backend.kind === 'remote' ? FALLBACK_CONTEXT_TOKENS : undefined,
    );
    const outcome = await runWithCancellation(
      (onText, signal) =>
        backend.generate(
          {
            requestId: this.deps.newRequestId(),
            kind: 'chat',
            messages: chatMessages,
            ...(repository ? { ...repositoryParams(repository), repoName: this.deps.repoName() } : {}),
            maxTokens,
          },
          onText,
          signal,
        ),
      token,
      (chunk) => progress.report(new vscode.LanguageModelTextPart(chunk)),
    ).catch((error: unknown) => {
      const message = languageModelErrorMessage(error);
      this.deps.log.warn(`language model request failed: ${message}`);
      throw new Error(message);
    });
    if (outcome.cancelled) throw new vscode.CancellationError();
  }

  async provideTokenCount(_model: LanguageModelChatInformation, text: string | RequestMessage, token: vscode.CancellationToken): Promise<number> {
    if (token.isCancellationRequested) throw new vscode.CancellationError();
    return countTokensOf(text, this.count());
  }

  dispose(): void {
    this.changed.dispose();
  }

  /** The loaded model's tokenizer (an estimate when it cannot be read), kept per model folder. */
  private count(): (text: string) => number {
    const state = this.deps.model();
    const modelDir = state.state === 'ready' ? state.loaded.modelDir : '';
    if (this.counter?.modelDir !== modelDir) this.counter = { modelDir, count: tokenCounterFor(modelDir || undefined).count };
    return this.counter.count;
  }

  /**
   * The repository part, when asked for and when it leaves room for the messages and the answer
   * in `remoteContext` tokens (a remote server's) or else the loaded model's context.
   */
  private async repositoryIfItFits(
    texts: string[],
    maxTokens: number,
    wanted: boolean,
    remoteContext: number | undefined,
  ): Promise<RepositoryPart | undefined> {
    const state = this.deps.model();
    const maxContext = remoteContext ?? (state.state === 'ready' ? state.loaded.model.maxContext : undefined);
    if (!wanted || maxContext === undefined) return undefined;
    const repository = await this.deps.repositoryPart(undefined).catch(() => undefined);
    if (!repository || repository.tokens <= 0) return undefined;
    const count = this.count();
    const messageTokens = texts.reduce((sum, text) => sum + count(text), 0);
    return repository.tokens + messageTokens + maxTokens <= maxContext ? repository : undefined;
  }
}

/** Registers the provider where the editor has the API (VS Code 1.104+); none elsewhere. */
export function registerLanguageModelProvider(deps: LanguageModelProviderDeps): vscode.Disposable[] {
  const register = (vscode.lm as unknown as { registerLanguageModelChatProvider?: RegisterProvider }).registerLanguageModelChatProvider;
  if (typeof register !== 'function') {
    deps.log.info(
      `language model provider: this editor (VS Code ${vscode.version}) has no vscode.lm.registerLanguageModelChatProvider (1.104+); the Tidal model is not offered to other chat clients`,
    );
    return [];
  }
  const provider = new TidalLanguageModelProvider(deps);
  return [
    provider,
    register.call(vscode.lm, LANGUAGE_MODEL_VENDOR, provider),
    deps.onDidChangeModel(() => provider.modelChanged()),
    // The remote model offered is named by these (tidal.backend itself reloads the model, above).
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('tidal.remoteUrl') || event.affectsConfiguration('tidal.remoteModel')) provider.modelChanged();
    }),
  ];
}
