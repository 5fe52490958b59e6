// Messages between the extension and the engine host process (JSON-RPC 2.0 over stdio).
// Both sides import these types, so a change here is checked on both ends.
import { RequestType, RequestType0, NotificationType } from 'vscode-jsonrpc';

import type { AttentionOptions, EngineOptions, FinishReason, ModelInfo, SamplingOptions, UsageStats } from '../native/addon';

export type BackendSetting = 'auto' | 'cuda' | 'cpu' | 'remote';
export type AttentionMode = 'full' | 'tidal' | 'quest';

export interface EngineInfo {
  engineVersion: string;
  compiledBackends: string[];
  cuda: { usable: boolean; deviceName: string; message: string };
  pid: number;
  nodeVersion: string;
}

export interface LogMessage {
  level: 'info' | 'warn' | 'error';
  message: string;
}

export const engineInfoRequest = new RequestType0<EngineInfo, void>('engine/info');
export const shutdownRequest = new RequestType0<void, void>('engine/shutdown');
export const echoRequest = new RequestType<{ text: string }, { text: string }, void>('engine/echo');
export const logNotification = new NotificationType<LogMessage>('engine/log');

// ---- Model layer: load a model, generate text (streamed), cancel, stats. ----

export type {
  AttentionOptions,
  EngineOptions,
  FinishReason,
  ModelInfo,
  SamplingOptions,
  UsageStats,
} from '../native/addon';

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

export interface GenerateParams {
  requestId: string;
  kind: 'chat' | 'completion' | 'raw';
  messages?: ChatMessageParam[];    // chat
  prefix?: string;                  // completion: text before the cursor
  suffix?: string;                  // completion: text after the cursor
  filePath?: string;                // completion: workspace-relative path of the current file
  repoName?: string;
  repoContext?: ContextFileParam[]; // completion: files put before the current one; chat: files put before the conversation
  prompt?: string;                  // raw: the prompt text as is (special tokens written out)
  maxTokens?: number;
  attention?: AttentionOptions;
  sampling?: SamplingOptions;
  // Completions of one client supersede each other (a newer one cancels the older, latest
  // wins); those of different clients do not. Absent: the one default client.
  client?: string;
}

export interface GenerateTimings {
  queuedMs: number;  // waiting behind other requests
  prefillMs: number; // prompt tokens not found in the prefix cache
  decodeMs: number;
  totalMs: number;
}

export interface GenerateResult {
  requestId: string;
  text: string;
  finishReason: FinishReason;
  tokens: number;          // generated tokens
  promptTokens: number;
  reusedTokens: number;    // prompt tokens whose KV came from the prefix cache
  recomputedTokens: number;
  timings: GenerateTimings;
  attention?: AttentionRun; // the attention the engine ran for this request's decode steps
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

export interface EngineStats {
  model: LoadedModel | null;
  usage: UsageStats | null;
  prefixCache: { slots: number; cachedTokens: number; requests: number; tokensReused: number; tokensRecomputed: number };
  queue: { queued: number; running: string | null; completed: number; cancelled: number };
}

export const loadModelRequest = new RequestType<LoadModelParams, LoadedModel, void>('engine/loadModel');
export const unloadModelRequest = new RequestType0<void, void>('engine/unloadModel');
export const generateRequest = new RequestType<GenerateParams, GenerateResult, void>('engine/generate');
export const tokenNotification = new NotificationType<TokenChunk>('engine/token');
export const cancelRequest = new RequestType<{ requestId: string }, { cancelled: boolean }, void>('engine/cancel');
export const statsRequest = new RequestType0<EngineStats, void>('engine/stats');
