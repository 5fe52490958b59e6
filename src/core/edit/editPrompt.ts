// The inline edit's prompt and the reading of its answer, without the `vscode` module: the
// selected lines, the file around them and the instruction go in; the rewritten lines come
// out of the answer's first fenced block (or the whole answer when it has none), fitted to
// the selection's indentation and line ending.
import type { ChatMessageParam } from '../protocol/protocol';
import { clipAround, fence } from '../chat/promptAssembly';
import { lineTexts } from './lineDiff';

export const EDIT_SYSTEM_PROMPT =
  'You are Tidal, a coding assistant that rewrites code. You are given a file, the lines selected in it and an ' +
  'instruction. Reply with the rewritten selected lines only, complete, in one fenced code block, and nothing else.';

export interface EditRequest {
  path: string;
  language?: string;
  /** The file's text before the selection, the selected lines, and the text after them. */
  before: string;
  selection: string;
  after: string;
  instruction: string;
  /** Characters of the file shown around the selection (the rest is left out). */
  contextChars: number;
}

/** The chat messages asking for the selection rewritten per the instruction. */
export function buildEditMessages(request: EditRequest): ChatMessageParam[] {
  const half = Math.max(0, Math.floor((request.contextChars - request.selection.length) / 2));
  // Whole lines nearest the selection: the end of what comes before, the start of what follows.
  const beforeLines = request.before.split('\n');
  const before = clipAround(request.before, beforeLines.length, half);
  const after = clipAround(request.after, 1, half);
  const language = request.language ?? '';
  const file = `${before}⟦SELECTION⟧\n${after}`;
  const fileFence = fence(file);
  const selectionFence = fence(request.selection);
  const selection = request.selection.endsWith('\n') ? request.selection : `${request.selection}\n`;
  const content =
    `File ${request.path}${before.length < request.before.length || after.length < request.after.length ? ' (excerpt)' : ''}, ` +
    `with the selected lines replaced by ⟦SELECTION⟧:\n${fileFence}${language}\n${file}\n${fileFence}\n\n` +
    `The selected lines:\n${selectionFence}${language}\n${selection}${selectionFence}\n\n` +
    `Instruction: ${request.instruction.trim()}\n\n` +
    'Reply with the rewritten selected lines in one fenced code block.';
  return [
    { role: 'system', content: EDIT_SYSTEM_PROMPT },
    { role: 'user', content },
  ];
}

/**
 * The code in an answer: the body of its first fenced block (``` or ~~~, three or more; an
 * unclosed one runs to the end, as when the answer was cut off), else the whole answer without
 * its leading and trailing blank lines.
 */
export function extractCode(answer: string): string {
  const lines = answer.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const open = /^ {0,3}(`{3,}|~{3,})/.exec(lines[i]);
    if (!open) continue;
    const marker = open[1];
    const body: string[] = [];
    for (let j = i + 1; j < lines.length; j += 1) {
      const close = new RegExp(`^ {0,3}${marker[0] === '`' ? '`' : '~'}{${marker.length},}\\s*$`).exec(lines[j]);
      if (close) return body.length > 0 ? `${body.join('\n')}\n` : '';
      body.push(lines[j]);
    }
    return body.length > 0 ? `${body.join('\n').replace(/\s+$/, '')}\n` : '';
  }
  const trimmed = answer.replace(/^(\s*\n)+/, '').replace(/\s+$/, '');
  return trimmed ? `${trimmed}\n` : '';
}

const indentOf = (line: string) => /^[ \t]*/.exec(line)![0];

/**
 * `code` made to replace `selection`: the selection's line break style, its trailing line break
 * (kept or left off as it had one), and its indentation added when the code lost it (the model
 * often writes the lines flush left).
 */
export function fitToSelection(code: string, selection: string): string {
  const eol = selection.includes('\r\n') ? '\r\n' : '\n';
  let lines = lineTexts(code);
  const firstSelected = selection.split('\n').find((line) => line.trim() !== '') ?? '';
  const want = indentOf(firstSelected);
  const firstCode = lines.find((line) => line.trim() !== '');
  if (want && firstCode !== undefined && indentOf(firstCode) === '') {
    lines = lines.map((line) => (line.trim() === '' ? line : want + line));
  }
  const body = lines.join(eol);
  return selection.endsWith('\n') && body !== '' ? body + eol : body;
}
