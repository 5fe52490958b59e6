// What the status bar says about the engine host's repository (workspace/status): progress
// while it is read and warmed up, a summary line once ready, the message when it failed. Pure,
// so every state's text is unit-tested without VS Code.
import type { PrefillProgress, RepositoryStatus } from '../core/protocol/protocol';
import { compactCount, timeLeft } from '../core/progress/progressText';

export { compactCount, timeLeft };

/** A duration as a person reads it: 80 → "80 ms", 5_400 → "5.4 s", 54_197 → "54 s", 125_000 → "2 min 5 s". */
export function humanDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 9950) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  return rest === 0 ? `${minutes} min` : `${minutes} min ${rest} s`;
}

/**
 * The status bar text while the repository is being read or warmed up, which then replaces
 * the usual text; undefined in the other states.
 */
export function repositoryProgressText(status: RepositoryStatus | undefined): string | undefined {
  switch (status?.state) {
    case 'scanning':
      return '$(sync~spin) Tidal: reading repository…';
    case 'warming': {
      const left = timeLeft(status.etaMs);
      return `$(sync~spin) Tidal: context ${compactCount(status.warmTokens)}/${compactCount(status.totalTokens)} tokens${left ? `, ${left} left` : ''}`;
    }
    default:
      return undefined;
  }
}

/** The status bar text while a request's prompt is read (prefilled in parts); undefined otherwise. */
export function prefillStatusText(progress: Pick<PrefillProgress, 'done' | 'total' | 'etaMs'> | undefined): string | undefined {
  if (!progress || progress.done >= progress.total) return undefined;
  const left = timeLeft(progress.etaMs);
  return `$(sync~spin) Tidal: reading ${compactCount(progress.done)}/${compactCount(progress.total)} tokens${left ? `, ${left} left` : ''}`;
}

/** The tooltip line about the repository; undefined when the host has none open. */
export function repositoryTooltipLine(status: RepositoryStatus | undefined): string | undefined {
  if (!status) return undefined;
  const tokens = (count: number) => count.toLocaleString('en-US');
  const files = (count: number) => `${tokens(count)} file${count === 1 ? '' : 's'}`;
  switch (status.state) {
    case 'closed':
      return undefined;
    case 'scanning':
      return 'Repository: reading the files…';
    case 'warming': {
      const left = timeLeft(status.etaMs);
      return `Repository: computing its context, ${tokens(status.warmTokens)} of ${tokens(status.totalTokens)} tokens done${left ? `, about ${left} left` : ''} (${files(status.files)})`;
    }
    case 'paused':
      return `Repository: warm-up paused at ${tokens(status.warmTokens)} of ${tokens(status.totalTokens)} tokens${status.message ? ` (${status.message})` : ''}`;
    case 'error':
      return `Repository context failed: ${status.message ?? 'unknown error'}. Completions and chat work without it.`;
    case 'ready': {
      const restored = status.restoredTokens ? ` (${tokens(status.restoredTokens)} restored from disk)` : '';
      const dropped = status.droppedFiles > 0 ? `, ${files(status.droppedFiles)} left out by the token budget` : '';
      return `Repository: ${files(status.files)}, ${tokens(status.totalTokens)} tokens in context${restored}${dropped}`;
    }
  }
}
