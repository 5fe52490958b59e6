// What the editor context-menu commands put into the Tidal chat: the selection as a fenced
// code block named by its file and lines. No `vscode` import (unit-tested in Node).
import { fence } from './promptAssembly';

export interface QuotedSelection {
  path: string;
  language?: string;
  text: string;
  startLine: number; // 1-based
  endLine: number;
}

/**
 * The end of a selection taken as whole lines: the 0-based line after its last (so also its
 * 1-based last line). A selection ending at column 0 of a later line ends on the line before.
 */
export function wholeLinesEnd(selection: { start: { line: number }; end: { line: number; character: number } }): number {
  return selection.end.character === 0 && selection.end.line > selection.start.line ? selection.end.line : selection.end.line + 1;
}

/** The selection in a fence longer than any run of backticks inside it, with its place above. */
export function quoteSelection(selection: QuotedSelection): string {
  const ticks = fence(selection.text);
  const language = /^[\w+#.-]+$/.test(selection.language ?? '') ? selection.language : '';
  const lines = selection.startLine === selection.endLine ? `line ${selection.startLine}` : `lines ${selection.startLine}-${selection.endLine}`;
  const body = selection.text.endsWith('\n') ? selection.text : `${selection.text}\n`;
  return `${selection.path} (${lines}):\n${ticks}${language}\n${body}${ticks}`;
}

/** The question "Ask Tidal About the Selection" sends: the user's question, then the code. */
export function askAboutSelectionPrompt(question: string, selection: QuotedSelection): string {
  return `${question.trim()}\n\n${quoteSelection(selection)}`;
}

/** The question "Explain with Tidal" sends. */
export function explainSelectionPrompt(selection: QuotedSelection): string {
  return `Explain what this code does and how it fits into the repository.\n\n${quoteSelection(selection)}`;
}
