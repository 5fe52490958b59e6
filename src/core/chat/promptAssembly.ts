// What a chat request sends: the conversation as chat messages, the editor context (active
// file, selection, attached files) in the last user turn, and `#file:` mentions found in a
// question. The repository files themselves travel separately (GenerateParams.repositoryContext) so
// the engine can put them first, as completions do, and share their KV.
import type { ChatMessageParam } from '../protocol/protocol';
import type { Turn } from './conversation';
import { priorExchanges } from './conversation';

export const SYSTEM_PROMPT =
  'You are Tidal, a coding assistant running on this machine. The files of the repository come before ' +
  'this conversation. Answer questions about them accurately and briefly, name the files you refer to, ' +
  'and put code in fenced blocks with a language tag.';

export interface EditorFile {
  path: string;
  content: string;
  language?: string;
}

export interface EditorSelection {
  path: string;
  text: string;
  startLine: number; // 1-based
  endLine: number;
}

/** Editor state attached as text (problems, git diff), under its own header. */
export interface AttachedText {
  /** What the chip said, for the notes on what was cut. */
  label: string;
  title: string;
  text: string;
}

export interface EditorContext {
  activeFile?: EditorFile;
  selection?: EditorSelection;
  /** The selection was attached (#selection): its block is cut to fit rather than left out. */
  selectionAttached?: boolean;
  attached: EditorFile[];
  /** Problems, git diff: after the files and the selection, before the active file. */
  attachedText?: AttachedText[];
}

/** Characters one token stands for, roughly, when cutting text down to a token budget. */
const CHARS_PER_TOKEN = 3;

/**
 * The chat messages of a request: the system prompt, earlier exchanges (oldest dropped first
 * when they do not fit `budgetTokens`), then the question with the editor context before it.
 * The editor context is cut to fit: attachments (files, the attached selection, problems, git
 * diff) first, each whole where possible, else its start with a marker saying how much is
 * shown (`notes` gets a line for the user on each attachment cut or left out); then the active
 * file around the selection.
 */
export function buildChatMessages(
  history: readonly Turn[],
  question: string,
  editor: EditorContext,
  budgetTokens: number,
  notes: string[] = [],
): ChatMessageParam[] {
  let budgetChars = Math.max(0, budgetTokens) * CHARS_PER_TOKEN - SYSTEM_PROMPT.length - question.length;
  const blocks: string[] = [];
  // Each block also costs the blank line that separates it from the next.
  const take = (text: string) => {
    if (text.length + BLOCK_SEPARATOR.length > budgetChars) return undefined;
    budgetChars -= text.length + BLOCK_SEPARATOR.length;
    return text;
  };
  const takeAttachment = (label: string, title: string, path: string | undefined, content: string, language?: string) => {
    const whole = take(fileBlock(title, path, content, language));
    if (whole !== undefined) return blocks.push(whole);
    const cut = cutBlock(title, path, content, language, budgetChars - BLOCK_SEPARATOR.length);
    if (cut !== undefined) {
      notes.push(`${label}: cut to fit the context (${cut.shown.toLocaleString('en-US')} of ${content.length.toLocaleString('en-US')} characters)`);
      return blocks.push(take(cut.block)!);
    }
    notes.push(`${label}: left out, it does not fit the context`);
    const leftOut = take(`${title}${path ? ` ${path}` : ''} was left out: it does not fit the context.`);
    if (leftOut !== undefined) blocks.push(leftOut);
  };
  for (const file of editor.attached) takeAttachment(file.path, 'Attached file', file.path, file.content, file.language);
  // A question that quotes the selection already (the context-menu commands write it there)
  // does not get it a second time.
  if (editor.selection && editor.selection.text.trim() !== '' && !quotesSelection(question, editor.selection)) {
    const s = editor.selection;
    const range = `${s.path}, lines ${s.startLine}-${s.endLine}`;
    if (editor.selectionAttached) takeAttachment(`Selection (${range})`, `Attached selection in ${range}`, undefined, s.text, editor.activeFile?.language);
    else {
      const block = take(fileBlock(`Selection in ${range}`, undefined, s.text, editor.activeFile?.language));
      if (block !== undefined) blocks.push(block);
    }
  }
  for (const extra of editor.attachedText ?? []) takeAttachment(extra.label, extra.title, undefined, extra.text);
  const active = editor.activeFile;
  if (active && !editor.attached.some((file) => file.path === active.path)) {
    const room = Math.max(0, budgetChars - 200);
    const content = active.content.length <= room ? active.content : clipAround(active.content, editor.selection?.startLine, room);
    if (content.length > 0) {
      const block = take(fileBlock(content.length < active.content.length ? 'Active file (excerpt)' : 'Active file', active.path, content, active.language));
      if (block !== undefined) blocks.push(block);
    }
  }

  const prior = priorExchanges(history);
  const kept: ChatMessageParam[] = [];
  for (let i = prior.length - 1; i >= 1; i -= 2) {
    // Whole exchanges (user + answer), newest first, while they fit.
    const pair = [prior[i - 1], prior[i]];
    const size = pair[0].content.length + pair[1].content.length;
    if (size > budgetChars) break;
    budgetChars -= size;
    kept.unshift(...pair.map((message) => ({ role: message.role, content: message.content })));
  }
  const userContent = blocks.length > 0 ? `${blocks.join('\n\n')}\n\n${question}` : question;
  return [{ role: 'system', content: SYSTEM_PROMPT }, ...kept, { role: 'user', content: userContent }];
}

/** The question holds the selection's text and names its file (as quoteSelection writes it). */
export function quotesSelection(question: string, selection: EditorSelection): boolean {
  return question.includes(selection.text) && question.includes(selection.path);
}

const BLOCK_SEPARATOR = '\n\n';
/** Attachments cut shorter than this are left out instead. */
const MIN_CUT_CHARS = 200;

/** The line that ends a cut attachment, inside its fence. */
export function cutMarker(shown: number, total: number): string {
  return `[… cut here to fit the context: ${shown.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} characters shown]`;
}

/**
 * The attachment's block with only its start (whole lines where it can), then the cut marker,
 * in at most `maxChars`; undefined when less than MIN_CUT_CHARS of it would be left, or when
 * it needs no cutting.
 */
export function cutBlock(
  title: string,
  path: string | undefined,
  content: string,
  language: string | undefined,
  maxChars: number,
): { block: string; shown: number } | undefined {
  const build = (kept: string) =>
    fileBlock(
      path ? title : `${title} (cut to fit)`,
      path ? `${path} (cut to fit)` : undefined,
      `${kept}${kept.endsWith('\n') ? '' : '\n'}${cutMarker(kept.length, content.length)}`,
      language,
    );
  let room = maxChars - (build('').length + 2);
  for (;;) {
    if (room < MIN_CUT_CHARS || room >= content.length) return undefined;
    let kept = content.slice(0, room);
    const lineEnd = kept.lastIndexOf('\n');
    if (lineEnd + 1 >= Math.max(room / 2, MIN_CUT_CHARS)) kept = kept.slice(0, lineEnd + 1);
    const block = build(kept);
    // The marker's numbers and the fence (fewer backticks in a shorter text) change its size a little.
    if (block.length <= maxChars) return { block, shown: kept.length };
    room -= block.length - maxChars;
  }
}

/** A backtick fence longer than any run of backticks in `content` (at least three). */
export function fence(content: string): string {
  let ticks = '```';
  while (content.includes(ticks)) ticks += '`';
  return ticks;
}

function fileBlock(title: string, path: string | undefined, content: string, language?: string): string {
  const ticks = fence(content);
  const body = content.endsWith('\n') ? content : `${content}\n`;
  return `${title}${path ? ` ${path}` : ''}:\n${ticks}${language ?? ''}\n${body}${ticks}`;
}

/** About `maxChars` of `text` as whole lines around line `line` (1-based; default the start). */
export function clipAround(text: string, line: number | undefined, maxChars: number): string {
  if (maxChars <= 0) return '';
  const lines = text.split('\n');
  let first = Math.min(Math.max(0, (line ?? 1) - 1), lines.length - 1);
  let last = first;
  let size = lines[first].length + 1;
  if (size > maxChars) return lines[first].slice(0, maxChars);
  for (let grew = true; grew;) {
    grew = false;
    if (last + 1 < lines.length && size + lines[last + 1].length + 1 <= maxChars) {
      last += 1;
      size += lines[last].length + 1;
      grew = true;
    }
    if (first > 0 && size + lines[first - 1].length + 1 <= maxChars) {
      first -= 1;
      size += lines[first].length + 1;
      grew = true;
    }
  }
  return lines.slice(first, last + 1).join('\n');
}
