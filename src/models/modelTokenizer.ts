// The tokenizer of a model path as the engine host loads it: a .gguf file's own tokenizer
// (converted from its metadata), else tokenizer.json in the folder (or tokenizerDir).
import { statSync } from 'node:fs';

import { TextTokenizer, TokenizerLoadError } from '../engine/tokenizer';
import { GgufFormatError } from './gguf';
import { GgufTokenizerError, loadGgufTokenizer } from './ggufTokenizer';

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

// Throws TokenizerLoadError (code ERR_TIDAL_MODEL) with a message that says what to do.
export function tokenizerForModel(modelPath: string, tokenizerDir?: string): TextTokenizer {
  if (tokenizerDir !== undefined) return TextTokenizer.fromDirectory(tokenizerDir);
  if (!isFile(modelPath)) return TextTokenizer.fromDirectory(modelPath);
  try {
    const { tokenizerJson, tokenizerConfig } = loadGgufTokenizer(modelPath);
    return TextTokenizer.fromJson(tokenizerJson, tokenizerConfig);
  } catch (error) {
    if (error instanceof GgufFormatError || error instanceof GgufTokenizerError) throw new TokenizerLoadError(error.message);
    throw new TokenizerLoadError(`The tokenizer in ${modelPath} could not be read: ${(error as Error).message}`);
  }
}
