// The tokenizer stored in a GGUF file's metadata, rebuilt as a tokenizer.json (and the
// tokenizer_config.json fields the host reads) that @huggingface/tokenizers loads. The
// metadata is read by the engine (readGgufTokenizer in the addon, native/src/model/
// gguf_model.h), which also checks its types, array lengths and token ids; this file only
// builds the tokenizer from it.
//
// Fields used: model ('gpt2': byte-level BPE; 'llama': SentencePiece BPE with byte
// fallback), tokens (id -> piece), tokenTypes (1 normal, 2 unknown, 3 control, 4 user
// defined, 5 unused, 6 byte), merges ('a b', gpt2 only), scores (llama only), pre (the
// pre-tokenizer regex family, gpt2 only), the bos/eos/unknown/padding ids, addBos,
// addSpacePrefix (llama), and chatTemplate.
import type { GgufTokenizerMetadata, ModelReader } from '../../native/addon';
import { TidalError } from '../../native/errors';

export interface ConvertedTokenizer {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

// Pre-tokenizer split patterns of byte-level BPE families, by tokenizer.ggml.pre.
const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function byteLevelPreTokenizer(pre: string): Record<string, unknown> {
  const splitThenBytes = (pattern: string) => ({
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  });
  switch (pre) {
    case 'default':
    case 'gpt-2':
    case 'gpt2':
      // ByteLevel's own regex is GPT-2's.
      return { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
    case 'qwen2':
      return splitThenBytes(QWEN2_PATTERN);
    case 'llama-bpe':
    case 'llama3':
    case 'smaug-bpe':
      return splitThenBytes(LLAMA3_PATTERN);
    default:
      throw new TidalError(
        'ERR_TIDAL_MODEL',
        `The GGUF tokenizer uses the '${pre}' pre-tokenizer, which Tidal does not know yet (known: default, gpt-2, qwen2, llama-bpe). ` +
          'Use the Hugging Face folder of this model instead (config.json, *.safetensors, tokenizer.json).',
      );
  }
}

// Every split of each piece into two pieces of the vocabulary is a merge, ranked by the score
// of the merged piece (higher first): byte-pair merging in that order picks, at each step, the
// adjacent pair whose union scores best, as SentencePiece BPE does.
function sentencePieceMerges(tokens: readonly string[], scores: ArrayLike<number>, mergeable: (id: number) => boolean): [string, string][] {
  const idOf = new Map<string, number>();
  tokens.forEach((piece, id) => {
    if (mergeable(id) && !idOf.has(piece)) idOf.set(piece, id);
  });
  const merges: { left: string; right: string; score: number; id: number; leftId: number }[] = [];
  for (const [piece, id] of idOf) {
    const chars = Array.from(piece);
    for (let cut = 1; cut < chars.length; cut++) {
      const left = chars.slice(0, cut).join('');
      const right = chars.slice(cut).join('');
      const leftId = idOf.get(left);
      if (leftId !== undefined && idOf.has(right)) merges.push({ left, right, score: scores[id], id, leftId });
    }
  }
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.leftId - b.leftId);
  return merges.map((m) => [m.left, m.right]);
}

export function convertGgufTokenizer(metadata: GgufTokenizerMetadata): ConvertedTokenizer {
  checkGgufTokenizer(metadata);
  const model = metadata.model;
  const tokens = metadata.tokens;
  const types: ArrayLike<number> = metadata.tokenTypes.length === tokens.length ? metadata.tokenTypes : tokens.map(() => TOKEN_TYPE.normal);
  const { bosId: bos, eosId: eos, unknownId: unk, paddingId: pad } = metadata;

  const isAdded = (id: number) =>
    types[id] === TOKEN_TYPE.control || types[id] === TOKEN_TYPE.userDefined || (model === 'llama' && types[id] === TOKEN_TYPE.unknown);
  const addedTokens = tokens.flatMap((content, id) =>
    isAdded(id) ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: types[id] !== TOKEN_TYPE.userDefined }] : [],
  );
  const vocab: Record<string, number> = {};
  tokens.forEach((piece, id) => {
    if (!(piece in vocab)) vocab[piece] = id;
  });

  let addBos: boolean;
  let body: Record<string, unknown>;
  if (model === 'gpt2') {
    const merges = metadata.merges.map((merge, i) => {
      const parts = merge.split(' ');
      if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
        throw new TidalError(
          'ERR_TIDAL_MODEL',
          `GGUF merge ${i} '${merge}' is not two pieces separated by one space. Use a complete GGUF file or the Hugging Face folder.`,
        );
      }
      return parts as [string, string];
    });
    addBos = metadata.addBos ?? false;
    body = {
      normalizer: null,
      pre_tokenizer: byteLevelPreTokenizer(metadata.pre || 'default'),
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges,
      },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    };
  } else {
    const scores = metadata.scores;
    addBos = metadata.addBos ?? true;
    const addSpacePrefix = metadata.addSpacePrefix ?? true;
    const mergeable = (id: number) => types[id] === TOKEN_TYPE.normal || types[id] === TOKEN_TYPE.userDefined;
    body = {
      // As llama.cpp does: a space before each text run (also one that starts with a space),
      // then spaces become ▁.
      normalizer: {
        type: 'Sequence',
        normalizers: [...(addSpacePrefix ? [{ type: 'Prepend', prepend: '\u2581' }] : []), { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }],
      },
      pre_tokenizer: null,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: unk === undefined ? null : tokens[unk],
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges: sentencePieceMerges(tokens, scores, mergeable),
      },
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          ...(addSpacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
    };
  }

  const postProcessor =
    addBos && bos !== undefined
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: tokens[bos], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: tokens[bos], type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: tokens[bos], type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [tokens[bos]]: { id: tokens[bos], ids: [bos], tokens: [tokens[bos]] } },
        }
      : null;
  const tokenizerJson = { version: '1.0', truncation: null, padding: null, added_tokens: addedTokens, ...body, post_processor: postProcessor };
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: addBos,
    bos_token: bos === undefined ? null : tokens[bos],
    eos_token: eos === undefined ? null : tokens[eos],
    pad_token: pad === undefined ? null : tokens[pad],
    unk_token: unk === undefined ? null : tokens[unk],
    clean_up_tokenization_spaces: false,
  };
  if (metadata.chatTemplate !== '') tokenizerConfig.chat_template = metadata.chatTemplate;
  return { tokenizerJson, tokenizerConfig };
}

// What the conversion needs beyond what the engine checked: a tokenizer kind it knows, its
// pre-tokenizer family, and the arrays that kind needs. Throws GgufTokenizerError.
export function checkGgufTokenizer(metadata: GgufTokenizerMetadata): void {
  const model = metadata.model;
  if (model === '') {
    throw new TidalError(
      'ERR_TIDAL_MODEL',
      'The GGUF file has no tokenizer (tokenizer.ggml.model is missing). Use a GGUF file converted with its tokenizer, or the Hugging Face folder.',
    );
  }
  if (model !== 'gpt2' && model !== 'llama') {
    throw new TidalError(
      'ERR_TIDAL_MODEL',
      `The GGUF tokenizer type '${model}' is not supported (only 'gpt2' byte-level BPE and 'llama' SentencePiece). Use the Hugging Face folder of this model.`,
    );
  }
  if (metadata.tokens.length === 0)
    throw new TidalError('ERR_TIDAL_MODEL', 'The GGUF file has no tokenizer.ggml.tokens. Use a GGUF file converted with its tokenizer.');
  if (model === 'gpt2') {
    byteLevelPreTokenizer(metadata.pre || 'default');
    if (metadata.merges.length === 0)
      throw new TidalError(
        'ERR_TIDAL_MODEL',
        'The GGUF byte-level BPE tokenizer has no tokenizer.ggml.merges. Use a complete GGUF file or the Hugging Face folder.',
      );
  } else if (metadata.scores.length !== metadata.tokens.length) {
    throw new TidalError(
      'ERR_TIDAL_MODEL',
      'The GGUF SentencePiece tokenizer has no tokenizer.ggml.scores. Use a complete GGUF file or the Hugging Face folder.',
    );
  }
}

// The converted tokenizer of a .gguf file. Throws an Error with code ERR_TIDAL_MODEL (from the
// engine, for a broken file or metadata) or a GgufTokenizerError, each saying what to do.
export function loadGgufTokenizer(filePath: string, reader: ModelReader): ConvertedTokenizer {
  return convertGgufTokenizer(reader.readGgufTokenizer(filePath));
}
