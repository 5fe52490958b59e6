// The model's own tokenizer (tokenizer.json + tokenizer_config.json from the model folder),
// wrapped with the facts the prompt builder and the stop logic need.
import { readFileSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

import { StreamDecoder } from './streamDecoder';

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

export class TokenizerLoadError extends Error {
  readonly code = 'ERR_TIDAL_MODEL';
}

export function tokenContent(spec: TokenSpec): string | undefined {
  if (spec === null || spec === undefined) return undefined;
  return typeof spec === 'string' ? spec : spec.content;
}

export class TextTokenizer {
  readonly vocabSize: number;
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;

  private constructor(private readonly tokenizer: Tokenizer, readonly config: TokenizerConfig) {
    this.vocabSize = tokenizer.get_vocab(true).size;
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
      throw new TokenizerLoadError(
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
      if (error instanceof TokenizerLoadError) throw error;
      throw new TokenizerLoadError(`The tokenizer in ${dir} could not be read: ${(error as Error).message}`);
    }
  }

  static fromJson(tokenizerJson: object, config: TokenizerConfig = {}): TextTokenizer {
    return new TextTokenizer(new Tokenizer(tokenizerJson, config), config);
  }

  // Special tokens written in the text (e.g. <|im_start|>) become their single ids.
  // addSpecialTokens applies the tokenizer's post-processor (a leading BOS, for instance).
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
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
