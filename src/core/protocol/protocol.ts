// Messages between the extension and the engine host process (JSON-RPC 2.0 over stdio).
// Both sides import these types, so a change here is checked on both ends.
import { RequestType, RequestType0, NotificationType } from 'vscode-jsonrpc';

import type { AttentionOptions, EngineOptions, FinishReason as EngineFinishReason, ModelInfo, SamplingOptions, UsageStats } from '../../native/addon';

export type BackendSetting = 'auto' | 'cuda' | 'cpu' | 'webgpu' | 'remote';
export type AttentionMode = 'full' | 'tidal' | 'quest';

export interface EngineInfo {
  engineVersion: string;
  compiledBackends: string[];
  cuda: { usable: boolean; deviceName: string; message: string };
  pid: number;
  nodeVersion: string;
  /** 'native' (tidal_native.node built for this platform) or 'wasm' (the WebAssembly build). */
  build?: 'native' | 'wasm';
}

export interface LogMessage {
  level: 'info' | 'warn' | 'error';
  message: string;
}

export const engineInfoRequest = new RequestType0<EngineInfo, void>('engine/info');
/**
 * `data.code` of the error engine/info (and every request that needs the engine) answers with
 * when the host could not load the native addon; `data.kind` is 'missing' or 'unloadable'.
 */
export const NO_LOCAL_ENGINE_CODE = 'ERR_TIDAL_NO_ENGINE';
export const shutdownRequest = new RequestType0<void, void>('engine/shutdown');
export const echoRequest = new RequestType<{ text: string }, { text: string }, void>('engine/echo');
export const logNotification = new NotificationType<LogMessage>('engine/log');

// ---- Model layer: load a model, generate text (streamed), cancel, stats. ----

export type { AttentionOptions, EngineOptions, ModelInfo, SamplingOptions, UsageStats } from '../../native/addon';

// Why a request ended: the engine's reasons, and 'repetition' when the engine host stopped an
// answer that repeated itself (GenerateParams.stopOnRepetition; see repetitionGuard.ts).
export type FinishReason = EngineFinishReason | 'repetition';

export interface LoadModelParams {
  modelDir: string;
  tokenizerDir?: string; // where tokenizer.json lives; default: modelDir
  options?: EngineOptions;
}

export interface TokenizerFacts {
  vocabSize: number;
  bosToken: string | null;
  eosToken: string | null;
  specialTokens: string[];
  stopTokenIds: number[];
  hasChatTemplate: boolean;
  fim: { family: 'qwen' | 'codellama' | 'deepseek' | 'starcoder'; order: 'psm' | 'spm' } | null;
}

export interface LoadedModel {
  modelDir: string;
  model: ModelInfo;
  tokenizer: TokenizerFacts;
}

export interface ChatMessageParam {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ContextFileParam {
  path: string;
  content: string;
}

/** What every generate request carries, whatever its kind. */
export interface GenerateCommon {
  requestId: string;
  maxTokens?: number; // at most the room the prompt leaves in the model's context
  attention?: AttentionOptions;
  sampling?: SamplingOptions;
  // What the request is for, as named in the engine host's log line; default: its kind.
  purpose?: 'completion' | 'chat' | 'ask' | 'edit' | 'raw';
}

/** The repository part of a chat or a completion: the host's own, or files sent with the request. */
export interface RepositoryFields {
  // Put the engine host's own repository part (workspace/open) in front of the request,
  // instead of repositoryContext. Nothing of the repository crosses the process boundary per request.
  repository?: boolean;
  repoName?: string;
  repositoryContext?: ContextFileParam[]; // completion: files put before the current one; chat: files put before the conversation
}

export interface ChatGenerateParams extends GenerateCommon, RepositoryFields {
  kind: 'chat';
  messages: ChatMessageParam[];
  // The start of the assistant's answer, written after the conversation's generation prompt;
  // the model continues it (an answer that stopped at its token limit goes on where it
  // stopped). The conversation's tokens are the same as the first request's, so their KV is
  // reused. The result's text is the continuation only.
  answerPrefix?: string;
  // Stop when the answer repeats itself (the same clause again and again): finish reason
  // 'repetition', the text up to there. Default off.
  stopOnRepetition?: boolean;
}

export interface CompletionGenerateParams extends GenerateCommon, RepositoryFields {
  kind: 'completion';
  prefix: string; // text before the cursor
  suffix?: string; // text after the cursor
  filePath?: string; // workspace-relative path of the current file
  // Completions of one client supersede each other (a newer one cancels the older, latest
  // wins); those of different clients do not. Absent: the one default client.
  client?: string;
}

export interface RawGenerateParams extends GenerateCommon {
  kind: 'raw';
  prompt: string; // the prompt text as is (special tokens written out)
}

/** One generate request; `kind` says which fields it has. */
export type GenerateParams = ChatGenerateParams | CompletionGenerateParams | RawGenerateParams;

export interface GenerateTimings {
  queuedMs: number; // waiting behind other requests
  prefillMs: number; // prompt tokens not found in the prefix cache, but the last (compaction included)
  decodeMs: number;
  totalMs: number;
  // The engine host's own work for the request: prompt assembly, tokenizing, prefix matching.
  hostMs?: number;
  // From the start of generation (after prefill) to the first generated token: the last prompt
  // token's forward pass and the first sampling.
  firstDecodeMs?: number;
  // From the request's arrival at the engine host to its first generated token (absent: none).
  firstTokenMs?: number;
}

export interface GenerateResult {
  requestId: string;
  text: string;
  // 'length' also when the request ran past the engine's time limit for one request (300 s in
  // the engine host): the text is what it had generated by then.
  finishReason: FinishReason;
  tokens: number; // generated tokens
  promptTokens: number;
  reusedTokens: number; // prompt tokens whose KV came from the prefix cache
  recomputedTokens: number;
  // Of reusedTokens, those whose KV was moved to a new position (re-rotated keys) because a
  // block before them changed: approximate reuse (tidal.context.reuseShiftedKv).
  shiftedTokens?: number;
  // Repository tokens of the prompt (the host's repository part; 0 without one).
  repositoryTokens?: number;
  // Repository files in the prompt (the host's repository part or repositoryContext).
  contextFiles?: number;
  // Chat only: the paths of those files, in prompt order (what the answer could see).
  contextPaths?: string[];
  timings: GenerateTimings;
  attention?: AttentionRun; // the attention the engine ran for this request's decode steps
  // The sampling seed, when sampling with a temperature: the request's own, or one drawn for it
  // (send it back in sampling.seed to get the same text again).
  seed?: number;
}

export interface AttentionRun {
  mode: AttentionMode;
  contextLength: number;
  attendedFraction: number; // share of the context each sparse layer attended to (1 for full)
}

export interface TokenChunk {
  requestId: string;
  text: string;
}

/**
 * How far the engine is with a request's prompt: `done` of the `total` prompt tokens that this
 * request computes (tokens whose KV was reused are in neither), and the time left at the rate
 * measured so far. Sent after each part of a prefill long enough to be worth reporting.
 */
export interface PrefillProgress {
  requestId: string;
  done: number;
  total: number;
  etaMs?: number;
}

export interface EngineStats {
  model: LoadedModel | null;
  usage: UsageStats | null;
  prefixCache: {
    slots: number;
    cachedTokens: number;
    requests: number;
    tokensReused: number;
    tokensShifted?: number;
    tokensRecomputed: number;
    forks?: number;
    lastForkMs?: number;
  };
  repository?: RepositoryStatus;
  queue: { queued: number; running: string | null; completed: number; cancelled: number };
}

// ---- Workspace layer: the engine host owns the repository part of every prompt. ----
//
// The extension opens the workspace once (the host reads its files itself) and then sends only
// file events; the host keeps each file's tokens and its place in the prompt, warms the KV of
// the repository part in the background, and keeps it on disk across restarts.

export interface WorkspaceFolderParam {
  name: string; // the folder's name in paths: unique, no '/'
  path: string; // absolute folder path the host reads its files from
}

export interface WorkspaceOpenParams {
  root: string; // absolute folder path the host reads files from (the first folder)
  // A workspace of several folders: all of them, the first at `root`. The repository then holds
  // every folder's files, each path written '<name>/<path in the folder>' (in the prompt and in
  // workspace/events); with one folder (or none given) paths are relative to `root`.
  folders?: WorkspaceFolderParam[];
  repoName?: string;
  include: string[];
  exclude: string[];
  maxTokens: number; // tokens the repository part may take (0: none)
  reuseShiftedKv?: boolean; // default true: reuse blocks after a changed one, keys re-rotated
  persistDir?: string; // folder for the saved KV; absent: no persistence
  persistMaxBytes?: number; // disk bound of persistDir over all workspaces
}

export interface WorkspaceFileEvent {
  path: string; // workspace-relative, '/' separated
  kind: 'created' | 'changed' | 'deleted';
  text?: string; // only for files the host cannot read from disk
}

export type RepositoryState = 'closed' | 'scanning' | 'warming' | 'ready' | 'paused' | 'error';

export interface RepositoryStatus {
  state: RepositoryState;
  files: number; // files in the repository part
  droppedFiles: number; // files left out by the token budget
  skippedFiles: number; // binary, too large, unreadable
  totalTokens: number; // tokens of the repository part
  warmTokens: number; // of them, whose KV is computed
  etaMs?: number; // time left for warm-up at the measured rate
  restoredTokens?: number; // tokens restored from disk at open
  message?: string; // what went wrong, in words for the user
}

export const workspaceOpenRequest = new RequestType<WorkspaceOpenParams, RepositoryStatus, void>('workspace/open');
export const workspaceEventsNotification = new NotificationType<{ events: WorkspaceFileEvent[] }>('workspace/events');
export const workspaceCloseRequest = new RequestType0<void, void>('workspace/close');
export const workspaceStatusRequest = new RequestType0<RepositoryStatus, void>('workspace/status');
export const workspaceStatusNotification = new NotificationType<RepositoryStatus>('workspace/status');

export const loadModelRequest = new RequestType<LoadModelParams, LoadedModel, void>('engine/loadModel');
export const unloadModelRequest = new RequestType0<void, void>('engine/unloadModel');
export const generateRequest = new RequestType<GenerateParams, GenerateResult, void>('engine/generate');
export const tokenNotification = new NotificationType<TokenChunk>('engine/token');
export const progressNotification = new NotificationType<PrefillProgress>('engine/progress');
// Computes a completion's prompt in the background without generating (the editor switched
// files: the first completion there then costs what a keystroke costs). A newer prefetch of the
// same client replaces an older one that has not run yet.
export const prefetchNotification = new NotificationType<GenerateParams>('engine/prefetch');
export const cancelRequest = new RequestType<{ requestId: string }, { cancelled: boolean }, void>('engine/cancel');
export const statsRequest = new RequestType0<EngineStats, void>('engine/stats');
