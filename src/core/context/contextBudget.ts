// How many tokens of repository context a request gets: pure functions, unit-tested.
import { utf8Length } from './repositoryContext';
import type { CountTokens } from './types';

/** A tokenizer-free estimate for models whose tokenizer the extension cannot read. */
export const estimateTokens: CountTokens = (text) => Math.ceil(utf8Length(text) / 3);

/** Context size used when neither the setting nor the model gives one (remote servers). */
export const FALLBACK_CONTEXT_TOKENS = 32_768;

/**
 * Repository context on the CPU backend when tidal.context.maxTokens is 0: reading a prompt of
 * the embedded model's 128K tokens there takes minutes (attention grows with the square of the
 * length); a number in the setting goes past it.
 */
export const CPU_DEFAULT_CONTEXT_TOKENS = 16_384;

/**
 * Tokens left for repository files: the context limit (tidal.context.maxTokens, else the
 * model's, at most CPU_DEFAULT_CONTEXT_TOKENS on the CPU backend) minus what the request itself
 * needs (current file, question, answer).
 */
export function repositoryBudget(settingMaxTokens: number, modelMaxContext: number, reserveTokens: number, backend?: string): number {
  const model = modelMaxContext > 0 ? modelMaxContext : FALLBACK_CONTEXT_TOKENS;
  const limit = settingMaxTokens > 0 ? Math.min(settingMaxTokens, model) : backend === 'cpu' ? Math.min(CPU_DEFAULT_CONTEXT_TOKENS, model) : model;
  return Math.max(0, limit - reserveTokens);
}
