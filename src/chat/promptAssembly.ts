// What a chat request sends: the conversation as chat messages, the editor context (active
// file, selection, attached files) in the last user turn, and `#file:` mentions found in a
// question. The repository files themselves travel separately (GenerateParams.repoContext) so
// the engine can put them first, as completions do, and share their KV.
import type { ChatMessageParam } from '../engine/protocol';
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

export interface EditorContext {
  activeFile?: EditorFile;
  selection?: EditorSelection;
  attached: EditorFile[];
}

/** Characters one token stands for, roughly, when cutting text down to a token budget. */
const CHARS_PER_TOKEN = 3;

/**
 * The chat messages of a request: the system prompt, earlier exchanges (oldest dropped first
 * when they do not fit `budgetTokens`), then the question with the editor context before it.
 * The editor context is cut to fit: attached files whole where possible, the active file around
 * the selection.
 */
export function buildChatMessages(history: readonly Turn[], question: string, editor: EditorContext, budgetTokens: number): ChatMessageParam[] {
  let budgetChars = Math.max(0, budgetTokens) * CHARS_PER_TOKEN - SYSTEM_PROMPT.length - question.length;
  const blocks: string[] = [];
  const take = (text: string) => {
    if (text.length > budgetChars) return undefined;
    budgetChars -= text.length;
    return text;
  };
  for (const file of editor.attached) {
    const block = take(fileBlock('Attached file', file.path, file.content, file.language));
    if (block !== undefined) blocks.push(block);
    else blocks.push(`Attached file ${file.path} was left out: it does not fit the context.`);
  }
  if (editor.selection && editor.selection.text.trim() !== '') {
    const s = editor.selection;
    const block = take(fileBlock(`Selection in ${s.path}, lines ${s.startLine}-${s.endLine}`, undefined, s.text, editor.activeFile?.language));
    if (block !== undefined) blocks.push(block);
  }
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

function fence(content: string): string {
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
  for (let grew = true; grew; ) {
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

/**
 * `#file:path` mentions in a question (paths without spaces; a trailing `.`/`,`/`?`/`)` is
 * punctuation, not part of the path), in order, without repeats.
 */
export function fileMentions(question: string): string[] {
  const found: string[] = [];
  for (const match of question.matchAll(/(?:^|\s)#file:(\S+)/g)) {
    const path = match[1].replace(/[.,;:!?)\]]+$/, '');
    if (path && !found.includes(path)) found.push(path);
  }
  return found;
}
