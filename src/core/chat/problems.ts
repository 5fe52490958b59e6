// The Problems an editor reports (VS Code diagnostics), as one line each for the chat prompt:
// `path:line severity: message [source code]`, errors first. No `vscode` here: the extension
// turns vscode.Diagnostic into Problem (src/vscode/editorAttachments.ts).

export type ProblemSeverity = 'error' | 'warning' | 'info' | 'hint';

export interface Problem {
  path: string;
  /** 1-based. */
  line: number;
  severity: ProblemSeverity;
  message: string;
  source?: string;
  code?: string;
}

const SEVERITY_ORDER: Record<ProblemSeverity, number> = { error: 0, warning: 1, info: 2, hint: 3 };

/** One problem on one line (a message over several lines is joined with spaces). */
export function formatProblem(problem: Problem): string {
  const message = problem.message.replace(/\s*\n\s*/g, ' ').trim();
  const origin = [problem.source, problem.code].filter((part) => part !== undefined && part !== '').join(' ');
  return `${problem.path}:${problem.line} ${problem.severity}: ${message}${origin ? ` [${origin}]` : ''}`;
}

/**
 * The problems as lines, errors first, then by path and line; at most `maxLines` of them, the
 * rest counted in a last line. Says so when there are none.
 */
export function formatProblems(problems: readonly Problem[], maxLines = 200): string {
  if (problems.length === 0) return 'No problems reported.';
  const sorted = [...problems].sort(
    (a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0) || a.line - b.line,
  );
  const shown = sorted.slice(0, Math.max(0, maxLines)).map(formatProblem);
  const rest = sorted.length - shown.length;
  if (rest > 0) shown.push(`… and ${rest} more ${rest === 1 ? 'problem' : 'problems'}`);
  return shown.join('\n');
}
