// Streaming detokenization: tokens arrive one at a time, text leaves only once it is complete.
// A byte-level BPE piece may hold part of a UTF-8 character (an emoji is often 3–4 tokens),
// and decoders that merge pieces (spaces, byte fallback) can change earlier text when a new
// token arrives. So the decoder re-decodes a short window of recent tokens and emits only the
// text that grew past what was already emitted and does not end in a replacement character.

export type DecodeTokens = (tokens: number[]) => string;

const REPLACEMENT_CHARACTER = '\uFFFD';

// Tokens kept before the read position as left context, so a decoder that strips a leading
// space (or merges across pieces) sees the same neighbourhood as in a full decode.
const CONTEXT_TOKENS = 4;

export class StreamDecoder {
  private readonly tokens: number[] = [];
  private prefixOffset = 0; // start of the window decoded as left context
  private readOffset = 0; // tokens before this have had their text emitted

  constructor(private readonly decodeTokens: DecodeTokens) {}

  // Adds one token; returns the newly completed text ('' while a character is still split).
  push(token: number): string {
    this.tokens.push(token);
    const emitted = this.decodeTokens(this.tokens.slice(this.prefixOffset, this.readOffset));
    const current = this.decodeTokens(this.tokens.slice(this.prefixOffset));
    if (current.length <= emitted.length || current.endsWith(REPLACEMENT_CHARACTER)) return '';
    return this.advance(current.slice(emitted.length));
  }

  // Text still held back at the end (an incomplete character); call once the stream ends.
  flush(): string {
    const emitted = this.decodeTokens(this.tokens.slice(this.prefixOffset, this.readOffset));
    const current = this.decodeTokens(this.tokens.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.tokens.length;
    return current.length > emitted.length ? current.slice(emitted.length) : '';
  }

  private advance(text: string): string {
    this.readOffset = this.tokens.length;
    this.prefixOffset = Math.max(0, this.readOffset - CONTEXT_TOKENS);
    return text;
  }
}
