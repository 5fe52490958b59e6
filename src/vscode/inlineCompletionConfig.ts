// What a completion request may use, from the settings and the loaded model: pure, so the
// numbers are unit-tested without VS Code.
import type { CompletionConfig } from '../core/completion/completionService';
import type { CompletionModeSetting } from '../core/completion/completionMode';
import { repositoryBudget } from '../core/context/contextBudget';
import type { TidalSettings } from './settings';

/** Tokens of the current file in a prompt at most (prefix and suffix together). */
export const MAX_FILE_WINDOW_TOKENS = 2048;
/** Characters per token assumed when cutting the file window (code averages 3-4). */
export const CHARS_PER_TOKEN = 3;
export const MAX_TOKENS = { singleLine: 48, multiLine: 128 } as const;
/**
 * Characters after the cursor at most. Families trained prefix-suffix-middle only (Qwen2.5-Coder,
 * DeepSeek-Coder) put the suffix after the prefix, so every keystroke recomputes the suffix's
 * tokens: a dozen lines of it carry most of what the model uses, at a bounded cost.
 */
export const MAX_SUFFIX_CHARS = 768;
const MODES: readonly CompletionModeSetting[] = ['auto', 'single-line', 'multi-line'];

export function readCompletionMode(value: unknown): CompletionModeSetting {
  return MODES.includes(value as CompletionModeSetting) ? (value as CompletionModeSetting) : 'auto';
}

export interface CompletionBudget {
  config: CompletionConfig;
  /** Tokens left for repository files. */
  repositoryTokens: number;
}

/**
 * Whether a completion asks the engine to prefill a keystroke's recomputed tokens sparse: the
 * setting, where the engine runs it (CPU; CUDA for tidal over a bf16 KV cache; the WebGPU backend
 * and a remote engine of unknown kind are not asked, since they could refuse the request).
 */
export function sparsePrefillApplies(settings: TidalSettings, backend: string | undefined): boolean {
  if (!settings.attention.sparsePrefill || settings.attention.mode === 'full') return false;
  if (backend === 'cpu') return true;
  return backend === 'cuda' && settings.attention.mode === 'tidal' && settings.engine.kvCache === 'bf16';
}

/** `backend`: the loaded model's ('cpu' caps the default repository context, contextBudget.ts). */
export function completionBudget(
  settings: TidalSettings,
  mode: CompletionModeSetting,
  modelMaxContext: number,
  repoName?: string,
  backend?: string,
): CompletionBudget {
  const windowTokens = Math.max(64, Math.min(MAX_FILE_WINDOW_TOKENS, Math.floor((modelMaxContext > 0 ? modelMaxContext : 8192) / 4)));
  const windowChars = windowTokens * CHARS_PER_TOKEN;
  const reserve = windowTokens + MAX_TOKENS.multiLine + 64; // file window, answer, FIM tokens and paths
  return {
    config: {
      enabled: settings.inlineCompletions.enabled,
      debounceMs: settings.inlineCompletions.debounceMs,
      mode,
      maxPrefixChars: windowChars - Math.min(MAX_SUFFIX_CHARS, Math.floor(windowChars / 4)),
      maxSuffixChars: Math.min(MAX_SUFFIX_CHARS, Math.floor(windowChars / 4)),
      maxLines: 16,
      maxTokens: { ...MAX_TOKENS },
      attention: {
        mode: settings.attention.mode,
        tokenBudget: settings.attention.tokenBudget,
        selectionLayers: settings.attention.selectionLayers,
        ...(sparsePrefillApplies(settings, backend) ? { sparsePrefill: true } : {}),
      },
      repoName,
    },
    repositoryTokens: repositoryBudget(settings.context.maxTokens, modelMaxContext, reserve, backend),
  };
}
