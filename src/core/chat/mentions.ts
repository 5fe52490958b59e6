// Mentions in the chat composer: what a question can attach, by id. A workspace file is its
// repository path; the editor's state is one of the CONTEXT_MENTIONS ids ('#selection',
// '#problems', '#problems:workspace', '#diff'), read when the question is sent. Pure functions,
// shared by the webview (completion while typing `#` or `@`) and the extension (the ids a
// question names). No `vscode` here.

/** Editor state a question can attach, by id, with the label its chip shows. */
export const CONTEXT_MENTIONS = {
  '#selection': 'Selection',
  '#problems': 'Problems (active file)',
  '#problems:workspace': 'Problems (workspace)',
  '#diff': 'Git diff',
} as const;

export type ContextMention = keyof typeof CONTEXT_MENTIONS;

export function isContextMention(id: string): id is ContextMention {
  return Object.prototype.hasOwnProperty.call(CONTEXT_MENTIONS, id);
}

/** What a chip says for an attachment id: the label of editor state, or the file's path. */
export function attachmentLabel(id: string): string {
  return isContextMention(id) ? CONTEXT_MENTIONS[id] : id;
}

/** Attachment ids split by what reads them: files from the workspace, the rest from the editor. */
export interface AttachmentRequest {
  files: string[];
  selection: boolean;
  /** Problems of the active file, of the whole workspace, or none. */
  problems?: 'activeFile' | 'workspace';
  gitDiff: boolean;
}

export function splitAttachments(ids: readonly string[]): AttachmentRequest {
  const request: AttachmentRequest = { files: [], selection: false, gitDiff: false };
  for (const id of ids) {
    if (id === '#selection') request.selection = true;
    else if (id === '#diff') request.gitDiff = true;
    else if (id === '#problems:workspace') request.problems = 'workspace';
    else if (id === '#problems') request.problems ??= 'activeFile';
    else if (!request.files.includes(id)) request.files.push(id);
  }
  return request;
}

// Trailing punctuation of a sentence, not part of a path or an id.
const TRAILING_PUNCTUATION = /[.,;:!?)\]]+$/;

/**
 * The attachment ids a question names, in order, without repeats: `#file:path` (paths without
 * spaces) and the CONTEXT_MENTIONS ids as whole words (`#selection`, `#problems`,
 * `#problems:workspace`, `#diff`). A mention starts the text or follows white space.
 */
export function parseMentions(question: string): string[] {
  const found: string[] = [];
  for (const match of question.matchAll(/(?:^|\s)(#\S+)/g)) {
    const word = match[1];
    let id: string | undefined;
    if (word.startsWith('#file:')) id = word.slice('#file:'.length).replace(TRAILING_PUNCTUATION, '') || undefined;
    else {
      // '#problems:workspace' keeps its colon; '#problems:' / '#diff.' lose the punctuation.
      const bare = isContextMention(word) ? word : word.replace(TRAILING_PUNCTUATION, '');
      if (isContextMention(bare)) id = bare;
    }
    if (id !== undefined && !found.includes(id)) found.push(id);
  }
  return found;
}

/** The mention being typed at `cursor`: where its `#`/`@` is and the text typed after it. */
export interface MentionQuery {
  start: number;
  query: string;
}

/**
 * The mention being typed just before `cursor`, if any: a `#` or `@` at the start of the text
 * or after white space, followed by no white space up to the cursor. A typed `#file:` prefix is
 * not part of the query.
 */
export function mentionQueryAt(text: string, cursor: number): MentionQuery | undefined {
  const before = text.slice(0, Math.max(0, Math.min(cursor, text.length)));
  const match = /(?:^|\s)([#@])(\S*)$/.exec(before);
  if (!match) return undefined;
  const start = before.length - match[2].length - 1;
  const query = match[2].startsWith('file:') ? match[2].slice('file:'.length) : match[2];
  return { start, query };
}

/** What the completion list offers for a query: context mentions first, then matching paths. */
export interface MentionCandidate {
  id: string;
  label: string;
}

/**
 * Up to `limit` completions for `query`: the context mentions whose id or label contains it,
 * then workspace paths that contain its characters in order (case-insensitive), best first: a
 * file name starting with the query, a file name containing it, a path containing it, the
 * characters spread out; shorter paths first within each, then alphabetically.
 */
export function mentionCandidates(query: string, paths: readonly string[], limit = 20): MentionCandidate[] {
  const needle = query.toLowerCase();
  const out: MentionCandidate[] = [];
  for (const [id, label] of Object.entries(CONTEXT_MENTIONS)) {
    if (id.slice(1).includes(needle) || label.toLowerCase().includes(needle)) out.push({ id, label });
  }
  const ranked: { path: string; rank: number }[] = [];
  for (const path of new Set(paths)) {
    const rank = pathRank(needle, path.toLowerCase());
    if (rank !== undefined) ranked.push({ path, rank });
  }
  ranked.sort((a, b) => a.rank - b.rank || a.path.length - b.path.length || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const { path } of ranked) out.push({ id: path, label: path });
  return out.slice(0, Math.max(0, limit));
}

/** 0 best … 3 worst; undefined when `path` does not hold the query's characters in order. */
function pathRank(needle: string, path: string): number | undefined {
  if (needle === '') return 3;
  const name = path.slice(path.lastIndexOf('/') + 1);
  if (name.startsWith(needle)) return 0;
  if (name.includes(needle)) return 1;
  if (path.includes(needle)) return 2;
  let at = 0;
  for (const char of path) if (char === needle[at]) at += 1;
  return at === needle.length ? 3 : undefined;
}
