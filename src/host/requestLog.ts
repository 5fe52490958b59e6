// One line in the log per engine request: what it was for, how large its prompt was and how much
// of it came from the prefix cache, how many repository files were in it, how long the first
// token and the whole request took, and why it ended.
import type { GenerateParams, GenerateResult } from '../core/protocol/protocol';

export type RequestPurpose = 'completion' | 'chat' | 'ask' | 'edit' | 'raw';

export interface RequestLogEntry {
  requestId: string;
  purpose: RequestPurpose;
  promptTokens: number;
  cachedTokens: number;
  files: number;
  /** From the request's arrival to its first generated token; undefined when none came. */
  firstTokenMs?: number;
  totalMs: number;
  tokens: number;
  finishReason: string;
}

/** What a request was for: the purpose the extension gave, else its kind. */
export function purposeOf(params: Pick<GenerateParams, 'kind' | 'purpose'>): RequestPurpose {
  return params.purpose ?? params.kind;
}

export function requestLogEntry(params: Pick<GenerateParams, 'requestId' | 'kind' | 'purpose'>, result: GenerateResult): RequestLogEntry {
  return {
    requestId: params.requestId,
    purpose: purposeOf(params),
    promptTokens: result.promptTokens,
    cachedTokens: result.reusedTokens,
    files: result.contextFiles ?? 0,
    firstTokenMs: result.timings.firstTokenMs,
    totalMs: result.timings.totalMs,
    tokens: result.tokens,
    finishReason: result.finishReason,
  };
}

/** A duration as a person reads it: 850 ms, 1.2 s, 54 s, 2 min 5 s. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const tenths = Math.round(ms / 100) / 10;
  if (tenths < 10) return `${tenths.toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  return rest === 0 ? `${minutes} min` : `${minutes} min ${rest} s`;
}

const count = (value: number) => Math.round(value).toLocaleString('en-US');

/**
 * `request chat-1: ask, 14,239 prompt tokens (13,900 cached), 13 files, first token 1.2 s,
 * total 5.3 s, 64 tokens, finish length`
 */
export function formatRequestLog(entry: RequestLogEntry): string {
  const firstToken = entry.firstTokenMs === undefined ? 'no token' : `first token ${formatDuration(entry.firstTokenMs)}`;
  return (
    `request ${entry.requestId}: ${entry.purpose}, ${count(entry.promptTokens)} prompt tokens (${count(entry.cachedTokens)} cached), ` +
    `${count(entry.files)} ${entry.files === 1 ? 'file' : 'files'}, ${firstToken}, total ${formatDuration(entry.totalMs)}, ` +
    `${count(entry.tokens)} ${entry.tokens === 1 ? 'token' : 'tokens'}, finish ${entry.finishReason}`
  );
}

/** The line of a request that failed before it had a result. */
export function formatFailedRequestLog(params: Pick<GenerateParams, 'requestId' | 'kind' | 'purpose'>, totalMs: number, message: string): string {
  const firstLine = message.split('\n', 1)[0].slice(0, 300);
  return `request ${params.requestId}: ${purposeOf(params)}, failed after ${formatDuration(totalMs)}, finish error: ${firstLine}`;
}
