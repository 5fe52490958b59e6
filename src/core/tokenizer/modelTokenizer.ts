// The tokenizer of a model path as the engine host loads it: a .gguf file's own tokenizer
// (converted from its metadata), else tokenizer.json in the folder (or tokenizerDir). Either
// must fit the model: a tokenizer with no vocabulary, or with token ids the model's embedding
// does not hold, is refused here rather than producing empty or failing answers later.
// The model's vocabulary size and a GGUF file's tokenizer metadata come from the native
// engine's readers (ModelReader); without them (no addon on this machine) a folder's tokenizer
// is checked on its own and a GGUF tokenizer cannot be read.
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';

import { TextTokenizer, tokenContent, TokenizerConfig } from './tokenizer';
import { bundledAddon, type ModelReader } from '../../native/addon';
import { convertGgufTokenizer } from './ggufTokenizer';
import { TidalError, tidalErrorCode } from '../../native/errors';

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

const USE_THE_MODELS_OWN = 'Use the tokenizer files that came with the model.';

// Every piece -> id a tokenizer.json assigns: its model's vocabulary (an object of piece -> id,
// or Unigram's list of [piece, score] with ids by position) and its added tokens. Throws
// TokenizerLoadError naming `source` when the structure or an id is not usable.
function tokenizerIds(tokenizerJson: unknown, source: string): { vocabulary: Map<string, number>; added: Map<string, number> } {
  const fail = (what: string) => new TidalError('ERR_TIDAL_MODEL', `The tokenizer ${source} ${what}. ${USE_THE_MODELS_OWN}`);
  const model = (tokenizerJson as { model?: { vocab?: unknown } } | null)?.model;
  const vocab = model?.vocab;
  const vocabulary = new Map<string, number>();
  const checkedId = (piece: string, id: unknown): number => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
      throw fail(`gives token '${piece}' the id ${JSON.stringify(id)}, which is not a token id`);
    return id;
  };
  if (Array.isArray(vocab)) {
    vocab.forEach((entry, id) => vocabulary.set(Array.isArray(entry) ? String(entry[0]) : String(entry), id));
  } else if (typeof vocab === 'object' && vocab !== null) {
    for (const [piece, id] of Object.entries(vocab)) vocabulary.set(piece, checkedId(piece, id));
  } else {
    throw fail('has no vocabulary (model.vocab is missing)');
  }
  const added = new Map<string, number>();
  const addedTokens = (tokenizerJson as { added_tokens?: unknown }).added_tokens ?? [];
  if (!Array.isArray(addedTokens)) throw fail('has an added_tokens field that is not a list');
  for (const token of addedTokens as { content?: unknown; id?: unknown }[]) {
    const content = String(token?.content);
    added.set(content, checkedId(content, token?.id));
  }
  return { vocabulary, added };
}

/**
 * Throws TokenizerLoadError (naming `source`, the tokenizer's file) unless the tokenizer can
 * drive a model with `modelVocabSize` token ids: a non-empty vocabulary, every id (vocabulary,
 * added and special tokens such as BOS, EOS and the FIM markers) below modelVocabSize, and the
 * BOS/EOS tokens tokenizer_config.json names present in the vocabulary. With modelVocabSize
 * undefined only the tokenizer itself is checked.
 */
export function checkTokenizerFitsModel(tokenizerJson: unknown, tokenizerConfig: TokenizerConfig, modelVocabSize: number | undefined, source: string): void {
  const { vocabulary, added } = tokenizerIds(tokenizerJson, source);
  if (vocabulary.size === 0) {
    throw new TidalError(
      'ERR_TIDAL_MODEL',
      `The tokenizer ${source} has an empty vocabulary (model.vocab holds no tokens), so it cannot encode any text. ${USE_THE_MODELS_OWN}`,
    );
  }
  const idOf = (piece: string) => added.get(piece) ?? vocabulary.get(piece);
  const specials: [string, string | undefined][] = [
    ['bos_token', tokenContent(tokenizerConfig.bos_token)],
    ['eos_token', tokenContent(tokenizerConfig.eos_token)],
  ];
  for (const [field, piece] of specials) {
    if (piece !== undefined && idOf(piece) === undefined) {
      throw new TidalError('ERR_TIDAL_MODEL', `The ${field} '${piece}' of the tokenizer ${source} is not in its vocabulary. ${USE_THE_MODELS_OWN}`);
    }
  }
  if (modelVocabSize === undefined) return;
  const outside = (ids: Map<string, number>) => [...ids].filter(([, id]) => id >= modelVocabSize).sort((a, b) => b[1] - a[1]);
  const describe = (tokens: [string, number][]) =>
    tokens
      .slice(0, 3)
      .map(([piece, id]) => `'${piece}' = ${id}`)
      .join(', ') + (tokens.length > 3 ? ` and ${tokens.length - 3} more` : '');
  const mismatch = `the model's embedding holds only ${modelVocabSize} token ids (vocab_size), so the tokenizer and the model do not belong together. ${USE_THE_MODELS_OWN}`;
  for (const [field, piece] of specials) {
    const id = piece === undefined ? undefined : idOf(piece);
    if (id !== undefined && id >= modelVocabSize)
      throw new TidalError('ERR_TIDAL_MODEL', `The ${field} '${piece}' of the tokenizer ${source} has id ${id}, but ${mismatch}`);
  }
  const addedOutside = outside(added);
  if (addedOutside.length > 0) {
    throw new TidalError('ERR_TIDAL_MODEL', `The tokenizer ${source} has special or added tokens outside the model (${describe(addedOutside)}): ${mismatch}`);
  }
  const vocabularyOutside = outside(vocabulary);
  if (vocabularyOutside.length > 0) {
    throw new TidalError(
      'ERR_TIDAL_MODEL',
      `The tokenizer ${source} has ${vocabulary.size} tokens, ${vocabularyOutside.length} of them with ids outside the model (${describe(vocabularyOutside)}): ${mismatch}`,
    );
  }
}

// The model's vocabulary size (config.json's vocab_size, a GGUF file's embedding rows), as the
// engine reads it; undefined when it cannot be read (loading the engine reports that itself).
function modelVocabSize(modelPath: string, reader: ModelReader | undefined): number | undefined {
  return reader?.inspectModel(modelPath).shape?.vocabSize;
}

function readJsonOrEmpty(file: string): Record<string, unknown> {
  return isFile(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
}

// Throws TokenizerLoadError (code ERR_TIDAL_MODEL) with a message that says what to do.
// `reader` defaults to the addon beside this bundle, where there is one.
export function tokenizerForModel(modelPath: string, tokenizerDir?: string, reader: ModelReader | undefined = bundledAddon().addon): TextTokenizer {
  if (tokenizerDir !== undefined || !isFile(modelPath)) {
    const dir = tokenizerDir ?? modelPath;
    const tokenizer = TextTokenizer.fromDirectory(dir);
    const file = path.join(dir, 'tokenizer.json');
    let tokenizerJson: unknown;
    let tokenizerConfig: TokenizerConfig;
    try {
      tokenizerJson = JSON.parse(readFileSync(file, 'utf8'));
      tokenizerConfig = readJsonOrEmpty(path.join(dir, 'tokenizer_config.json'));
    } catch (error) {
      throw new TidalError('ERR_TIDAL_MODEL', `The tokenizer in ${dir} could not be read: ${(error as Error).message}`);
    }
    checkTokenizerFitsModel(tokenizerJson, tokenizerConfig, modelVocabSize(modelPath, reader), file);
    return tokenizer;
  }
  if (!reader) {
    throw new TidalError(
      'ERR_TIDAL_MODEL',
      `The tokenizer of ${modelPath} is read by the native engine, which is not available here (${bundledAddon().error?.message ?? 'no addon'}). ` +
        "Put the tokenizer.json of the model beside the .gguf file, or use the model's Hugging Face folder.",
    );
  }
  try {
    const { tokenizerJson, tokenizerConfig } = convertGgufTokenizer(reader.readGgufTokenizer(modelPath));
    checkTokenizerFitsModel(tokenizerJson, tokenizerConfig, modelVocabSize(modelPath, reader), modelPath);
    return TextTokenizer.fromJson(tokenizerJson, tokenizerConfig);
  } catch (error) {
    if (error instanceof TidalError) throw error;
    // The addon's own (a GGUF file it cannot read) comes with the same code, as a TidalError.
    if (tidalErrorCode(error) === 'ERR_TIDAL_MODEL') throw new TidalError('ERR_TIDAL_MODEL', (error as Error).message);
    throw new TidalError('ERR_TIDAL_MODEL', `The tokenizer in ${modelPath} could not be read: ${(error as Error).message}`);
  }
}
