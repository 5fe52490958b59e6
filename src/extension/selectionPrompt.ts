// What the editor context-menu commands put into the Tidal chat: the selection as a fenced
// code block named by its file and lines. No `vscode` import (unit-tested in Node).

export interface QuotedSelection {
  path: string;
  language?: string;
  text: string;
  startLine: number; // 1-based
  endLine: number;
}

/** The selection in a fence longer than any run of backticks inside it, with its place above. */
export function quoteSelection(selection: QuotedSelection): string {
  const longestRun = Math.max(0, ...(selection.text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longestRun + 1));
  const language = /^[\w+#.-]+$/.test(selection.language ?? '') ? selection.language : '';
  const lines = selection.startLine === selection.endLine ? `line ${selection.startLine}` : `lines ${selection.startLine}-${selection.endLine}`;
  const body = selection.text.endsWith('\n') ? selection.text : `${selection.text}\n`;
  return `${selection.path} (${lines}):\n${fence}${language}\n${body}${fence}`;
}

/** The question "Ask Tidal About the Selection" sends: the user's question, then the code. */
export function askAboutSelectionPrompt(question: string, selection: QuotedSelection): string {
  return `${question.trim()}\n\n${quoteSelection(selection)}`;
}

/** The question "Explain with Tidal" sends. */
export function explainSelectionPrompt(selection: QuotedSelection): string {
  return `Explain what this code does and how it fits into the repository.\n\n${quoteSelection(selection)}`;
}
