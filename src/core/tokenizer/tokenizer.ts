// The model's own tokenizer (tokenizer.json + tokenizer_config.json from the model folder),
// wrapped with the facts the prompt builder and the stop logic need.
import { readFileSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

import { StreamDecoder } from './streamDecoder';
import { TidalError } from '../../native/errors';

// tokenizer_config.json fields we read; special tokens may be strings or {content} objects.
type TokenSpec = string | { content: string } | null | undefined;
export interface TokenizerConfig {
  bos_token?: TokenSpec;
  eos_token?: TokenSpec;
  pad_token?: TokenSpec;
  add_bos_token?: boolean;
  chat_template?: string | { name: string; template: string }[] | null;
  [key: string]: unknown;
}

// ---- Counting a long text's tokens without blocking (a server's guard against huge prompts) ----
//
// Byte-level BPE (GPT-2, Llama 3, Qwen 2, StarCoder 2) turns the UTF-8 bytes of a text into
// tokens, every byte being a token of its own, so nothing is dropped: n bytes become at least
// n / (longest token) tokens. A token lying wholly inside a text is made of that text's bytes,
// so the longest token made only of those bytes bounds it better (a run of one letter cannot
// use the long tokens of the vocabulary).
//
// Some places are token boundaries whatever surrounds them ("cuts"): after a line break between
// two non-space characters, and before a space that follows a non-space character and precedes
// a letter. The GPT-2, Llama 3 and Qwen 2 pre-tokenizer patterns always split there, and neither
// NFC nor a special token without spaces reaches across. The tokens of a slice between cuts are
// then exactly its tokens in the whole text, so a long text can be counted a slice at a time.
//
// SentencePiece-style BPE (Llama 2, Code Llama, Mistral 7B) writes spaces as "▁", may put one in
// front of the text, and spells a character outside its vocabulary with <0xNN> byte tokens, so
// it too drops nothing: with spaces counted as the three bytes of "▁" and a byte token as its
// byte, the same bounds hold. It has no cuts, so a long text is bounded, not encoded.
interface CountingFacts {
  metaspace: boolean; // SentencePiece-style (above) rather than byte-level
  nfc: boolean; // the normalizer is NFC (else there is none)
  exactCuts: boolean; // slices between cuts tokenize as they do in the whole text
  prefixSpace: boolean; // the pre-tokenizer puts a space in front of the text
}

interface TokenTable {
  maxBytes: number;
  lengths: Int32Array; // bytes per token, longest first
  masks: Uint32Array; // 8 words per token: the set of byte values it is made of
}

const SPLIT_PATTERNS_WITH_CUTS = new Set([
  // Qwen 2, Qwen 3
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  // Llama 3
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
]);
const SLICE_CHARS = 16 * 1024;
// NFC may merge up to three combining marks at a text's open edge into the character before it.
const NFC_EDGE_BYTES = 16;

const METASPACE = '\u2581';

type JsonStep = {
  type?: string;
  pattern?: { Regex?: string; String?: string };
  behavior?: string;
  invert?: boolean;
  add_prefix_space?: boolean;
  pretokenizers?: JsonStep[];
  replacement?: string;
  prepend_scheme?: string;
};
type JsonNormalizer = { type?: string; normalizers?: JsonNormalizer[]; prepend?: string; pattern?: { String?: string; Regex?: string }; content?: string };
type TokenizerJson = {
  normalizer?: JsonNormalizer | null;
  pre_tokenizer?: JsonStep | null;
  model?: { type?: string; byte_fallback?: boolean };
  added_tokens?: { content: string; lstrip?: boolean; rstrip?: boolean }[];
};

// Whether the bounds above hold for this tokenizer: byte-level BPE, no normalizer but NFC, and
// no step that removes text (whitespace stripped around special tokens, removing splits); or
// SentencePiece-style BPE with byte fallback.
function countingFactsOf(json: TokenizerJson, config: TokenizerConfig): CountingFacts | undefined {
  if (json.model?.type !== 'BPE' || config.remove_space === true || config.do_lowercase_and_remove_accent === true) return undefined;
  if (json.model.byte_fallback === true) return metaspaceFactsOf(json);
  const normalizer = json.normalizer?.type;
  if (normalizer !== undefined && normalizer !== 'NFC') return undefined;
  const added = json.added_tokens ?? [];
  if (added.some((token) => token.lstrip === true || token.rstrip === true)) return undefined;
  const root = json.pre_tokenizer;
  const steps = root?.type === 'Sequence' ? (root.pretokenizers ?? []) : root ? [root] : [];
  const last = steps.at(-1);
  if (last?.type !== 'ByteLevel') return undefined;
  let exactCuts = last.add_prefix_space !== true && !added.some((token) => /\s/.test(token.content));
  for (const step of steps.slice(0, -1)) {
    if (step.type === 'Split') {
      if (step.invert === true || step.behavior?.toLowerCase() === 'removed') return undefined;
      exactCuts &&= step.behavior === 'Isolated' && SPLIT_PATTERNS_WITH_CUTS.has(step.pattern?.Regex ?? '');
    } else if (step.type !== 'Digits') {
      return undefined;
    }
  }
  return { metaspace: false, nfc: normalizer === 'NFC', exactCuts, prefixSpace: last.add_prefix_space === true };
}

// SentencePiece-style BPE with byte fallback: the normalizer only prepends "▁" and writes
// spaces as "▁" (Llama 2's tokenizer.json), or a Metaspace pre-tokenizer does (Mistral's).
function metaspaceFactsOf(json: TokenizerJson): CountingFacts | undefined {
  if ((json.added_tokens ?? []).some((token) => token.lstrip === true || token.rstrip === true)) return undefined;
  const root = json.normalizer;
  const normalizers = root?.type === 'Sequence' ? (root.normalizers ?? []) : root ? [root] : [];
  let prefixSpace = false;
  for (const step of normalizers) {
    if (step.type === 'Prepend' && step.prepend === METASPACE) prefixSpace = true;
    else if (!(step.type === 'Replace' && step.pattern?.String === ' ' && step.content === METASPACE)) return undefined;
  }
  const pre = json.pre_tokenizer;
  if (pre !== null && pre !== undefined) {
    if (pre.type !== 'Metaspace' || pre.replacement !== METASPACE) return undefined;
    prefixSpace ||= pre.add_prefix_space === true || pre.prepend_scheme === 'always' || pre.prepend_scheme === 'first';
  }
  return { metaspace: true, nfc: false, exactCuts: false, prefixSpace };
}

function byteTokenName(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the others for
// U+0100, U+0101, ... in byte order.
function byteLevelAlphabet(): Map<string, number> {
  const bytes = new Map<string, number>();
  let next = 256;
  for (let byte = 0; byte < 256; byte++) {
    const printable = (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || byte >= 0xae;
    bytes.set(String.fromCharCode(printable ? byte : next++), byte);
  }
  return bytes;
}

// Where cuts are: after a line break between two non-space characters, before a space between
// a non-space character and a letter.
function isSpace(text: string, at: number): boolean {
  const code = text.charCodeAt(at);
  return code === 32 || (code >= 9 && code <= 13) || (code >= 128 && /\s/.test(text[at]));
}

function isCut(text: string, at: number): boolean {
  if (at < 2 || at >= text.length) return false;
  if (text.charCodeAt(at - 1) === 10) return !isSpace(text, at - 2) && !isSpace(text, at);
  return text.charCodeAt(at) === 32 && !isSpace(text, at - 1) && /^\p{L}/u.test(text.slice(at + 1, at + 3));
}

// The cuts in [from, to], in order (only line breaks and spaces are looked at).
function* cutsBetween(text: string, from: number, to: number): Generator<number> {
  let lineBreak = text.indexOf('\n', from - 1);
  let space = text.indexOf(' ', from);
  for (;;) {
    if (lineBreak < 0 && space < 0) return;
    const useSpace = lineBreak < 0 || (space >= 0 && space < lineBreak + 1);
    const at = useSpace ? space : lineBreak + 1;
    if (at > to) return;
    if (isCut(text, at)) yield at;
    if (useSpace) space = text.indexOf(' ', space + 1);
    else lineBreak = text.indexOf('\n', lineBreak + 1);
  }
}

function firstCut(text: string, from: number, to: number): number | undefined {
  for (const at of cutsBetween(text, from, to)) return at;
  return undefined;
}

function lastCut(text: string, from: number, to: number): number | undefined {
  let last: number | undefined;
  for (const at of cutsBetween(text, from, to)) last = at;
  return last;
}

// The UTF-8 length of a text and the set of byte values in it (as TextEncoder writes it: a
// lone surrogate becomes U+FFFD).
function utf8Facts(text: string): { bytes: number; mask: Uint32Array } {
  const seen = new Uint8Array(256);
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x80) {
      seen[code] = 1;
      bytes += 1;
      continue;
    }
    if (code < 0x800) {
      seen[0xc0 | (code >> 6)] = seen[0x80 | (code & 63)] = 1;
      bytes += 2;
      continue;
    }
    const low = text.charCodeAt(i + 1);
    if (code >= 0xd800 && code < 0xdc00 && low >= 0xdc00 && low < 0xe000) {
      code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
      seen[0xf0 | (code >> 18)] = seen[0x80 | ((code >> 12) & 63)] = seen[0x80 | ((code >> 6) & 63)] = seen[0x80 | (code & 63)] = 1;
      bytes += 4;
      i++;
      continue;
    }
    if (code >= 0xd800 && code < 0xe000) code = 0xfffd;
    seen[0xe0 | (code >> 12)] = seen[0x80 | ((code >> 6) & 63)] = seen[0x80 | (code & 63)] = 1;
    bytes += 3;
  }
  const mask = new Uint32Array(8);
  for (let byte = 0; byte < 256; byte++) if (seen[byte]) mask[byte >> 5] |= 1 << (byte & 31);
  return { bytes, mask };
}

function byteMask(bytes: Uint8Array): Uint32Array {
  const mask = new Uint32Array(8);
  for (const byte of bytes) mask[byte >> 5] |= 1 << (byte & 31);
  return mask;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export function tokenContent(spec: TokenSpec): string | undefined {
  if (spec === null || spec === undefined) return undefined;
  return typeof spec === 'string' ? spec : spec.content;
}

export class TextTokenizer {
  readonly vocabSize: number;
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;

  private readonly counting: CountingFacts | undefined;
  private tokenTable: TokenTable | undefined;

  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly config: TokenizerConfig,
    counting: CountingFacts | undefined,
  ) {
    this.vocabSize = tokenizer.get_vocab(true).size;
    // The bounds need every byte to be a token (else BPE may drop text it cannot spell).
    const everyByte = counting?.metaspace
      ? Array.from({ length: 256 }, (_, byte) => byteTokenName(byte)).every((name) => tokenizer.token_to_id(name) !== undefined)
      : [...byteLevelAlphabet().keys()].every((char) => tokenizer.token_to_id(char) !== undefined);
    this.counting = everyByte ? counting : undefined;
    const special = new Map<string, number>();
    for (const [id, token] of tokenizer.get_added_tokens_decoder()) {
      if (token.special) special.set(token.content, id);
    }
    this.specialTokens = special;
    this.bosToken = tokenContent(config.bos_token);
    this.eosToken = tokenContent(config.eos_token);
  }

  // Reads <dir>/tokenizer.json and, when present, <dir>/tokenizer_config.json.
  static fromDirectory(dir: string): TextTokenizer {
    const tokenizerPath = path.join(dir, 'tokenizer.json');
    if (!existsSync(tokenizerPath)) {
      throw new TidalError(
        'ERR_TIDAL_MODEL',
        `The model folder ${dir} has no tokenizer.json. Download the tokenizer files with the model ` +
          '(tokenizer.json and tokenizer_config.json), or pick another model.',
      );
    }
    const configPath = path.join(dir, 'tokenizer_config.json');
    try {
      const tokenizerJson = JSON.parse(readFileSync(tokenizerPath, 'utf8')) as object;
      const config = existsSync(configPath) ? (JSON.parse(readFileSync(configPath, 'utf8')) as TokenizerConfig) : {};
      return TextTokenizer.fromJson(tokenizerJson, config);
    } catch (error) {
      if (error instanceof TidalError) throw error;
      throw new TidalError('ERR_TIDAL_MODEL', `The tokenizer in ${dir} could not be read: ${(error as Error).message}`);
    }
  }

  static fromJson(tokenizerJson: object, config: TokenizerConfig = {}): TextTokenizer {
    return new TextTokenizer(new Tokenizer(tokenizerJson, config), config, countingFactsOf(tokenizerJson as TokenizerJson, config));
  }

  // Special tokens written in the text (e.g. <|im_start|>) become their single ids.
  // addSpecialTokens applies the tokenizer's post-processor (a leading BOS, for instance).
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
  }

  /**
   * A lower bound on the tokens `text` becomes, found without holding the event loop: the text
   * is encoded a slice at a time (slices end at cuts, see above) with a turn of the event loop
   * between slices, and a stretch without cuts longer than a slice is bounded by its bytes
   * instead of encoded. Stops once the count reaches `stopAt`. `standalone`: the text is encoded
   * on its own; otherwise it sits inside a longer text (a chat message inside its template) and
   * only the tokens wholly inside it are counted. 0 for tokenizers these bounds do not hold for.
   */
  async countTokensAtLeast(text: string, options: { stopAt: number; standalone: boolean }): Promise<number> {
    const facts = this.counting;
    if (facts === undefined) return 0;
    let count = 0;
    let start = 0;
    let openStart = !options.standalone;
    while (start < text.length && count < options.stopAt) {
      let end = text.length;
      if (facts.exactCuts && openStart) {
        end = firstCut(text, start + 1, text.length - 1) ?? text.length; // the open edge on its own
      } else if (facts.exactCuts && start + SLICE_CHARS < text.length) {
        end = lastCut(text, start + 1, start + SLICE_CHARS) ?? firstCut(text, start + SLICE_CHARS, text.length - 1) ?? text.length;
      }
      let openEnd = end === text.length && !options.standalone;
      if (openEnd && facts.exactCuts && !openStart) {
        const cut = lastCut(text, start + 1, text.length - 1); // the open edge on its own
        if (cut !== undefined) [end, openEnd] = [cut, false];
      }
      const slice = text.slice(start, end);
      const openEdges = (openStart ? 1 : 0) + (openEnd ? 1 : 0);
      const exact = openEdges === 0 && (facts.exactCuts || options.standalone) && slice.length <= 2 * SLICE_CHARS;
      count += exact ? this.encode(slice).length : this.boundOfStretch(slice, openEdges, facts);
      start = end;
      openStart = false;
      if (start < text.length && count < options.stopAt) await nextTurn();
    }
    return count;
  }

  // Tokens wholly inside `text`, a stretch whose `openEdges` ends (0, 1 or 2) may be crossed by a
  // token reaching outside it: they are made of its bytes only, each covering at most the longest
  // such token; an open edge gives away what one crossing token can cover.
  private boundOfStretch(text: string, openEdges: number, facts: CountingFacts): number {
    const { bytes, mask } = utf8Facts(facts.nfc ? text.normalize('NFC') : facts.metaspace ? text.replaceAll(' ', METASPACE) : text);
    const table = this.countingTable(facts);
    if (facts.prefixSpace && facts.metaspace) for (const byte of [0xe2, 0x96, 0x81]) mask[byte >> 5] |= 1 << (byte & 31);
    else if (facts.prefixSpace) mask[1] |= 1; // byte 32
    let longest = table.maxBytes;
    for (let i = 0; i < table.lengths.length; i++) {
      let within = true;
      for (let word = 0; word < 8 && within; word++) within = (table.masks[i * 8 + word] & ~mask[word]) === 0;
      if (within) {
        longest = table.lengths[i];
        break;
      }
    }
    const slack = openEdges * (table.maxBytes - 1 + (facts.nfc ? NFC_EDGE_BYTES : 0));
    return Math.ceil(Math.max(0, bytes - slack) / longest);
  }

  // Every token's bytes as a set, longest first (built on first use: a few MB for 150k tokens).
  private countingTable(facts: CountingFacts): TokenTable {
    if (this.tokenTable !== undefined) return this.tokenTable;
    const alphabet = facts.metaspace ? new Map(Array.from({ length: 256 }, (_, byte) => [byteTokenName(byte), byte])) : byteLevelAlphabet();
    const added = new Set([...this.tokenizer.get_added_tokens_decoder().values()].map((token) => token.content));
    const tokens: { length: number; mask: Uint32Array }[] = [];
    for (const token of this.tokenizer.get_vocab(true).keys()) {
      const byteToken = facts.metaspace ? alphabet.get(token) : undefined;
      const mapped = added.has(token)
        ? undefined
        : facts.metaspace
          ? byteToken === undefined
            ? undefined
            : [byteToken]
          : Array.from(token, (char) => alphabet.get(char));
      const bytes = mapped !== undefined && mapped.every((byte) => byte !== undefined) ? Uint8Array.from(mapped as number[]) : Buffer.from(token, 'utf8');
      tokens.push({ length: bytes.length, mask: byteMask(bytes) });
    }
    tokens.sort((a, b) => b.length - a.length);
    const masks = new Uint32Array(tokens.length * 8);
    tokens.forEach((token, i) => masks.set(token.mask, i * 8));
    this.tokenTable = { maxBytes: tokens[0]?.length ?? 1, lengths: Int32Array.from(tokens, (token) => token.length), masks };
    return this.tokenTable;
  }

  decode(tokens: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    if (tokens.length === 0) return '';
    return this.tokenizer.decode(Array.from(tokens), {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  tokenText(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  hasToken(token: string): boolean {
    return this.tokenizer.token_to_id(token) !== undefined;
  }

  // Ids that end a turn: the configured EOS plus the usual end-of-turn tokens the vocabulary has.
  endOfTurnTokenIds(): number[] {
    const names = [this.eosToken, '<|im_end|>', '<|endoftext|>', '<|eot_id|>', '<|end_of_text|>', '<｜end▁of▁sentence｜>', '<EOT>', '</s>'];
    const ids = new Set<number>();
    for (const name of names) {
      const id = name === undefined ? undefined : this.specialTokens.get(name);
      if (id !== undefined) ids.add(id);
    }
    return [...ids];
  }

  createStreamDecoder(options: { skipSpecialTokens?: boolean } = {}): StreamDecoder {
    return new StreamDecoder((tokens) => this.decode(tokens, options));
  }
}
