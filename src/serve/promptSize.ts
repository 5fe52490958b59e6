// A lower bound on a request's prompt tokens, found before the engine tokenizes the prompt:
// a prompt that provably cannot fit the context is refused without tokenizing megabytes on the
// event loop (see TextTokenizer.countTokensAtLeast for the bound and the slices).
import { buildFimPrompt, encodePromptParts, FimFormat } from '../core/prompt/fimPrompt';
import type { GenerateParams } from '../core/protocol/protocol';
import type { TextTokenizer } from '../core/tokenizer/tokenizer';

export type TokenCounter = Pick<TextTokenizer, 'countTokensAtLeast'>;

// Shorter prompts are tokenized by the engine in a few milliseconds: no need to count first.
export const PROMPT_CHECK_MIN_CHARS = 64 * 1024;

interface PromptText {
  text: string;
  standalone: boolean; // encoded on its own, not inside a longer text
}

// The texts the engine encodes for a request (see ModelSession.buildPrompt).
function promptTexts(params: GenerateParams, fimFormat: FimFormat | undefined): PromptText[] {
  switch (params.kind) {
    case 'raw':
      return [{ text: params.prompt ?? '', standalone: true }];
    case 'completion': {
      if (fimFormat === undefined) return [];
      const texts: PromptText[] = [];
      const parts = buildFimPrompt(fimFormat, {
        prefix: params.prefix ?? '',
        suffix: params.suffix ?? '',
        filePath: params.filePath,
        repoName: params.repoName,
        repositoryContext: params.repositoryContext,
      });
      encodePromptParts(
        parts,
        (text) => (texts.push({ text, standalone: true }), []),
        () => 0,
      );
      return texts;
    }
    case 'chat':
      // The repository's files (encoded as completions encode them), then the messages inside
      // the chat template, which may trim each message.
      return [
        ...(params.repositoryContext ?? []).map((file) => ({ text: file.content, standalone: true })),
        ...(params.messages ?? []).map((message) => ({ text: message.content.trim(), standalone: false })),
      ];
  }
}

/** At least this many prompt tokens (0 when the prompt is short or the tokenizer cannot tell); stops at stopAt. */
export async function promptTokensAtLeast(counter: TokenCounter, params: GenerateParams, fimFormat: FimFormat | undefined, stopAt: number): Promise<number> {
  const texts = promptTexts(params, fimFormat);
  if (texts.reduce((sum, { text }) => sum + text.length, 0) < PROMPT_CHECK_MIN_CHARS) return 0;
  let count = 0;
  for (const { text, standalone } of texts) {
    if (count >= stopAt) break;
    count += await counter.countTokensAtLeast(text, { stopAt: stopAt - count, standalone });
  }
  return count;
}
