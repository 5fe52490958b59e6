// Fill-in-the-middle prompts per model family, detected from the tokenizer's special tokens.
// Completions put the stable repository context first and the current file last:
// [repository context][file FIM]. Where a family was trained suffix-first (SPM), the prompt ends
// with the prefix, so typing at the cursor only appends tokens and the cached KV stays valid.
import { TidalError } from '../../native/errors';

// A prompt is text with special tokens kept apart, so each special token becomes its one id
// no matter how the tokenizer spells it (CodeLlama's are '▁<PRE>' in some vocabularies).
export type PromptPart = { text: string } | { token: string };

export type FimFamily = 'qwen' | 'codellama' | 'deepseek' | 'starcoder';
export type FimOrder = 'psm' | 'spm';

export interface FimFormat {
  family: FimFamily;
  prefix: string;
  suffix: string;
  middle: string;
  order: FimOrder; // the arrangement used: SPM where the family was trained on it
  fileSeparator?: string; // repository-level formats: token that starts each file
  repoName?: string;
  stopTokens: string[]; // tokens that end a completion
}

export interface ContextFile {
  path: string;
  content: string;
}

export interface FimRequest {
  prefix: string;
  suffix: string;
  filePath?: string;
  repoName?: string;
  repositoryContext?: ContextFile[];
}

// Each family with its special tokens in order of preference (alternative spellings listed).
interface FamilySpec {
  family: FimFamily;
  prefix: string[];
  suffix: string[];
  middle: string[];
  order: FimOrder;
  fileSeparator?: string[];
  repoName?: string[];
  stopTokens: string[];
}

const FAMILIES: FamilySpec[] = [
  {
    // Qwen2.5-Coder was trained prefix-suffix-middle only.
    family: 'qwen',
    prefix: ['<|fim_prefix|>'],
    suffix: ['<|fim_suffix|>'],
    middle: ['<|fim_middle|>'],
    order: 'psm',
    fileSeparator: ['<|file_sep|>'],
    repoName: ['<|repo_name|>'],
    stopTokens: ['<|endoftext|>', '<|fim_pad|>', '<|file_sep|>', '<|im_end|>', '<|fim_prefix|>', '<|repo_name|>'],
  },
  {
    // StarCoder/StarCoder2 saw both arrangements in training; suffix-first keeps appends cheap.
    family: 'starcoder',
    prefix: ['<fim_prefix>'],
    suffix: ['<fim_suffix>'],
    middle: ['<fim_middle>'],
    order: 'spm',
    fileSeparator: ['<file_sep>'],
    repoName: ['<repo_name>'],
    stopTokens: ['<|endoftext|>', '<file_sep>', '<fim_prefix>', '<fim_pad>', '<repo_name>'],
  },
  {
    // DeepSeek-Coder: begin/hole/end, prefix-suffix-middle.
    family: 'deepseek',
    prefix: ['<｜fim▁begin｜>'],
    suffix: ['<｜fim▁hole｜>'],
    middle: ['<｜fim▁end｜>'],
    order: 'psm',
    stopTokens: ['<｜end▁of▁sentence｜>', '<|EOT|>', '<｜fim▁begin｜>'],
  },
  {
    // CodeLlama was trained on both; suffix-first.
    family: 'codellama',
    prefix: ['<PRE>', '▁<PRE>'],
    suffix: ['<SUF>', '▁<SUF>'],
    middle: ['<MID>', '▁<MID>'],
    order: 'spm',
    stopTokens: ['<EOT>', '▁<EOT>', '</s>'],
  },
];

// The FIM format of a family as a server that takes text writes its tokens: the first spelling
// of each (the '▁'-prefixed ones are SentencePiece's alternative spellings of the same token).
export function fimFormatOfFamily(family: FimFamily): FimFormat | undefined {
  const spec = FAMILIES.find((candidate) => candidate.family === family);
  if (spec === undefined) return undefined;
  const spelled = new Set([spec.prefix, spec.suffix, spec.middle, spec.fileSeparator, spec.repoName].flatMap((names) => (names ? [names[0]] : [])));
  for (const token of spec.stopTokens) if (!token.startsWith('▁')) spelled.add(token);
  return detectFimFormat((token) => spelled.has(token));
}

// The FIM format of a tokenizer, from which special tokens it has; undefined when it has none.
export function detectFimFormat(hasToken: (token: string) => boolean, preferOrder?: FimOrder): FimFormat | undefined {
  const pick = (names: string[] | undefined) => names?.find(hasToken);
  for (const spec of FAMILIES) {
    const prefix = pick(spec.prefix);
    const suffix = pick(spec.suffix);
    const middle = pick(spec.middle);
    if (prefix === undefined || suffix === undefined || middle === undefined) continue;
    const supportsSpm = spec.order === 'spm';
    return {
      family: spec.family,
      prefix,
      suffix,
      middle,
      order: preferOrder === 'psm' || !supportsSpm ? 'psm' : 'spm',
      fileSeparator: pick(spec.fileSeparator),
      repoName: pick(spec.repoName),
      stopTokens: spec.stopTokens.filter(hasToken),
    };
  }
  return undefined;
}

// The repository's files as prompts start with them, completions and chat alike, so that both
// share one cached KV prefix: with a file-separator token, [<repo_name>name\n] and then
// <sep>path\ncontent\n per file; without one, each file after a `// File: path` line.
export function repositoryFileParts(
  format: Pick<FimFormat, 'fileSeparator' | 'repoName'> | undefined,
  files: readonly ContextFile[],
  repoName: string | undefined,
  withRepoName: boolean,
): PromptPart[] {
  const parts: PromptPart[] = [];
  if (format?.fileSeparator !== undefined) {
    if (withRepoName && format.repoName !== undefined && repoName !== undefined) parts.push({ token: format.repoName }, { text: `${repoName}\n` });
    for (const file of files) parts.push({ token: format.fileSeparator }, { text: `${file.path}\n${file.content}\n` });
  } else {
    for (const file of files) parts.push({ text: `// File: ${file.path}\n${file.content}\n\n` });
  }
  return parts;
}

// A completion's repository part: the files, then the current file's own separator and path.
// Also the text the remote backend puts in front of the prefix for servers that build the FIM
// prompt themselves.
export function repositoryContextParts(format: Pick<FimFormat, 'fileSeparator' | 'repoName'>, request: Omit<FimRequest, 'prefix' | 'suffix'>): PromptPart[] {
  const files = request.repositoryContext ?? [];
  const parts = repositoryFileParts(format, files, request.repoName, files.length > 0 || request.filePath !== undefined);
  if (format.fileSeparator !== undefined) {
    if (request.filePath !== undefined && (files.length > 0 || request.repoName !== undefined)) {
      parts.push({ token: format.fileSeparator }, { text: `${request.filePath}\n` });
    }
  } else if (files.length > 0 && request.filePath !== undefined) {
    parts.push({ text: `// File: ${request.filePath}\n` });
  }
  return parts;
}

export function buildFimPrompt(format: FimFormat, request: FimRequest): PromptPart[] {
  return [...repositoryContextParts(format, request), ...fimCursorParts(format, request)];
}

// The current file's separator and path, as a completion puts them after the repository files
// (the engine host's own repository part is followed by these and the cursor parts).
export function currentFileParts(format: Pick<FimFormat, 'fileSeparator'>, filePath: string): PromptPart[] {
  return format.fileSeparator !== undefined ? [{ token: format.fileSeparator }, { text: `${filePath}\n` }] : [{ text: `// File: ${filePath}\n` }];
}

// The fill-in-the-middle arrangement of the text around the cursor, in the family's order.
export function fimCursorParts(format: FimFormat, request: Pick<FimRequest, 'prefix' | 'suffix'>): PromptPart[] {
  const parts: PromptPart[] = [];
  const text = (value: string): PromptPart[] => (value.length > 0 ? [{ text: value }] : []);
  if (format.family === 'codellama') {
    // CodeLlama spaces its sentinels: "<PRE> {prefix} <SUF>{suffix} <MID>" (PSM) and
    // "<PRE> <SUF>{suffix} <MID> {prefix}" (SPM).
    if (format.order === 'spm') {
      parts.push({ token: format.prefix }, { text: ' ' }, { token: format.suffix }, ...text(request.suffix), { text: ' ' });
      parts.push({ token: format.middle }, { text: ` ${request.prefix}` });
    } else {
      parts.push({ token: format.prefix }, { text: ` ${request.prefix} ` }, { token: format.suffix }, ...text(request.suffix));
      parts.push({ text: ' ' }, { token: format.middle });
    }
    return parts;
  }
  if (format.order === 'spm') {
    parts.push({ token: format.prefix }, { token: format.suffix }, ...text(request.suffix), { token: format.middle }, ...text(request.prefix));
  } else {
    parts.push({ token: format.prefix }, ...text(request.prefix), { token: format.suffix }, ...text(request.suffix), { token: format.middle });
  }
  return parts;
}

export function promptText(parts: PromptPart[]): string {
  return parts.map((part) => ('text' in part ? part.text : part.token)).join('');
}

// Encodes text parts with the tokenizer and maps each special token to its id.
export function encodePromptParts(parts: PromptPart[], encode: (text: string) => number[], tokenId: (token: string) => number | undefined): number[] {
  const ids: number[] = [];
  let pendingText = '';
  const flush = () => {
    if (pendingText.length > 0) ids.push(...encode(pendingText));
    pendingText = '';
  };
  for (const part of parts) {
    if ('text' in part) {
      pendingText += part.text;
      continue;
    }
    flush();
    const id = tokenId(part.token);
    if (id === undefined) throw new TidalError('ERR_TIDAL_REQUEST', `The tokenizer has no ${part.token} token.`);
    ids.push(id);
  }
  flush();
  return ids;
}
