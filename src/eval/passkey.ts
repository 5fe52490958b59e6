// Prompts of `tidal-eval`: a repository-style token stream of code files the model was not
// trained on, and passkey prompts cut from it (a key line planted at a given depth, a query
// line at the end, as in tools/train/data.py's retrieval rows). Text becomes tokens through the
// model's own tokenizer, the one the engine host uses.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Mt19937_64, uniformBelow } from './mersenneTwister';

// What the prompts need of a tokenizer (TextTokenizer has it).
export interface PromptTokenizer {
  encode(text: string): number[];
  decode(tokens: ArrayLike<number>): string;
  tokenId(token: string): number | undefined;
}

export class EvalInputError extends Error {}

export interface CodeFile {
  path: string; // as written in the stream's file headers
  text: string;
}

const CODE_EXTENSIONS = new Set(['.ts', '.js', '.mjs', '.cpp', '.cc', '.h', '.hpp', '.cu', '.py']);
const MIN_FILE_BYTES = 200;
const MAX_FILE_BYTES = 160 * 1024;

function* filesUnder(dir: string): Generator<string> {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(full);
    else if (
      (entry.isFile() || (entry.isSymbolicLink() && fs.statSync(full, { throwIfNoEntry: false })?.isFile())) &&
      CODE_EXTENSIONS.has(path.extname(entry.name))
    )
      yield full;
  }
}

/**
 * Files under each root (a folder or a file, relative to `base`), sorted by path (bytewise),
 * with a code extension (.ts .js .mjs .cpp .cc .h .hpp .cu .py), 200 B to 160 KB, no NUL byte.
 * Throws EvalInputError when a root is missing or nothing is found.
 */
export function collectCodeFiles(base: string, roots: readonly string[]): CodeFile[] {
  const found = new Map<string, string>(); // name in the stream -> file
  for (const root of roots) {
    const full = path.join(base, root);
    const stat = fs.statSync(full, { throwIfNoEntry: false });
    if (stat === undefined) throw new EvalInputError(`code folder ${full} does not exist; pass --corpus with folders of source files`);
    if (stat.isFile()) {
      found.set(root, full);
      continue;
    }
    const prefix = root.endsWith('/') ? root : `${root}/`;
    for (const file of filesUnder(full)) {
      const name = prefix + path.relative(full, file).split(path.sep).join('/');
      if (!found.has(name)) found.set(name, file);
    }
  }
  const names = [...found.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const files: CodeFile[] = [];
  for (const name of names) {
    const bytes = fs.readFileSync(found.get(name) as string);
    if (bytes.length < MIN_FILE_BYTES || bytes.length > MAX_FILE_BYTES || bytes.includes(0)) continue;
    files.push({ path: name, text: bytes.toString('utf8') });
  }
  if (files.length === 0) throw new EvalInputError('no source files (200 B to 160 KB) under the --corpus folders');
  return files;
}

// `<|file_sep|>path\ncontent<|file_sep|>path\ncontent...` as token ids, each file encoded on its
// own; lineEnd[i] says whether token i ends with a line break.
export interface CodeStream {
  ids: Int32Array;
  lineEnd: Uint8Array;
}

export function buildCodeStream(tokenizer: PromptTokenizer, files: readonly CodeFile[]): CodeStream {
  const fileSeparator = tokenizer.tokenId('<|file_sep|>');
  if (fileSeparator === undefined) throw new EvalInputError('the tokenizer has no <|file_sep|> token, which the eval prompts need');
  const ids: number[] = [];
  for (const file of files) {
    ids.push(fileSeparator);
    for (const id of tokenizer.encode(`${file.path}\n${file.text}`)) ids.push(id);
  }
  const endsLine = new Map<number, boolean>();
  const lineEnd = Uint8Array.from(ids, (id) => {
    let ends = endsLine.get(id);
    if (ends === undefined) endsLine.set(id, (ends = id !== fileSeparator && tokenizer.decode([id]).endsWith('\n')));
    return ends ? 1 : 0;
  });
  return { ids: Int32Array.from(ids), lineEnd };
}

export interface Needle {
  definition: string; // the planted line, e.g. `#define PASSKEY_KAZO 123456\n`
  query: string; // the last prompt line, e.g. `printf("%d", PASSKEY_KAZO);  // ->`
  answer: string; // what should follow, e.g. ` 123456\n`
  name: string; // the key's name in capitals, e.g. `KAZO`
}

export const SYLLABLES = [
  'ka',
  'zo',
  'ri',
  'mu',
  'te',
  'lan',
  'vor',
  'qui',
  'ber',
  'ost',
  'nix',
  'dal',
  'pre',
  'sul',
  'gam',
  'tor',
  'wen',
  'yel',
  'fap',
  'hob',
  'jid',
  'cru',
  'ely',
  'mon',
];

// A key in one of the three training shapes (string constant, dict entry, #define), a name of
// 2-3 syllables and a value of 5-8 digits.
export function randomNeedle(rng: Mt19937_64): Needle {
  let name = '';
  const syllables = 2 + uniformBelow(rng, 2);
  for (let i = 0; i < syllables; i++) name += SYLLABLES[uniformBelow(rng, SYLLABLES.length)];
  const upper = name.toUpperCase();
  const digits = 5 + uniformBelow(rng, 4);
  let value = String(1 + uniformBelow(rng, 9));
  while (value.length < digits) value += String(uniformBelow(rng, 10));
  switch (uniformBelow(rng, 3)) {
    case 0:
      return { definition: `SECRET_KEY_${upper} = "${value}"\n`, query: `print(SECRET_KEY_${upper})  # ->`, answer: ` "${value}"\n`, name: upper };
    case 1:
      return { definition: `    "${name}": ${value},\n`, query: `print(CONFIG["${name}"])  # ->`, answer: ` ${value}\n`, name: upper };
    default:
      return { definition: `#define PASSKEY_${upper} ${value}\n`, query: `printf("%d", PASSKEY_${upper});  // ->`, answer: ` ${value}\n`, name: upper };
  }
}

// `count` needles whose names differ from `needle`'s and from each other.
export function randomDistractors(rng: Mt19937_64, needle: Needle, count: number): Needle[] {
  const out: Needle[] = [];
  const names = new Set([needle.name]);
  while (out.length < count) {
    const other = randomNeedle(rng);
    if (names.has(other.name)) continue;
    names.add(other.name);
    out.push(other);
  }
  return out;
}

export interface PasskeyPrompt {
  prompt: number[]; // code with the needle, then "\n" + query
  answer: number[];
  needlePosition: number; // index of the needle's first token in prompt
}

/**
 * A prompt of exactly `length` tokens counting the answer: a window of `stream` starting at a
 * random token, the needle inserted after the first line break at or after `depth` (0..1) of
 * the window, each distractor (another key of another name) likewise at a random depth, then
 * the query. Throws EvalInputError when the stream is too short.
 */
export function buildPasskeyPrompt(
  tokenizer: PromptTokenizer,
  stream: CodeStream,
  length: number,
  depth: number,
  needle: Needle,
  rng: Mt19937_64,
  distractors: readonly Needle[] = [],
): PasskeyPrompt {
  const query = tokenizer.encode(`\n${needle.query}`);
  const answer = tokenizer.encode(needle.answer);
  const planted = [{ depth, ids: tokenizer.encode(needle.definition), isNeedle: true }];
  for (const d of distractors) planted.push({ depth: uniformBelow(rng, 1000001) / 1e6, ids: tokenizer.encode(d.definition), isNeedle: false });
  const plantedTokens = planted.reduce((sum, p) => sum + p.ids.length, 0);
  const contextLength = length - query.length - answer.length - plantedTokens;
  if (contextLength < 1 || contextLength >= stream.ids.length) {
    throw new EvalInputError(
      `a ${length}-token passkey prompt needs more code than the corpus's ${stream.ids.length} tokens; add folders to --corpus or use shorter --contexts`,
    );
  }
  const start = uniformBelow(rng, stream.ids.length - contextLength);
  // Where a piece goes: after the first line break at or past its depth (or, past the last
  // line break, after the last one before it; at the end of a window without any).
  const insertionPoint = (atDepth: number) => {
    const target = Math.trunc(atDepth * contextLength);
    for (let i = Math.max(target, 1); i < contextLength; i++) if (stream.lineEnd[start + i - 1]) return i;
    for (let i = Math.min(target, contextLength); i >= 1; i--) if (stream.lineEnd[start + i - 1]) return i;
    return contextLength;
  };
  const pieces = planted.map((p) => ({ at: insertionPoint(p.depth), ids: p.ids }));
  const { prompt, firstPiecePosition } = windowWithPieces(stream, start, contextLength, pieces, query);
  return { prompt, answer, needlePosition: firstPiecePosition };
}

/**
 * Tokens [start, start + length) of `stream` with each piece's ids inserted before window offset
 * `at` (pieces at the same offset in their order), then `tail`; also where the first piece's ids
 * begin in the prompt.
 */
export function windowWithPieces(
  stream: CodeStream,
  start: number,
  length: number,
  pieces: readonly { at: number; ids: readonly number[] }[],
  tail: readonly number[],
): { prompt: number[]; firstPiecePosition: number } {
  const cuts = pieces.map((p, index) => ({ at: p.at, index }));
  cuts.sort((a, b) => a.at - b.at || a.index - b.index);
  const prompt: number[] = [];
  let firstPiecePosition = 0;
  let previous = 0;
  for (const { at, index } of cuts) {
    for (let i = previous; i < at; i++) prompt.push(stream.ids[start + i]);
    if (index === 0) firstPiecePosition = prompt.length;
    prompt.push(...pieces[index].ids);
    previous = at;
  }
  for (let i = previous; i < length; i++) prompt.push(stream.ids[start + i]);
  prompt.push(...tail);
  return { prompt, firstPiecePosition };
}
