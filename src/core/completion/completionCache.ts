// A small LRU of finished completions, keyed by document, the end of the prefix and the start
// of the suffix: re-typing the same prefix (or typing the first characters of a suggestion
// that was shown) answers at once, without a request to the engine.

export interface CacheKeyParts {
  documentKey: string;
  prefix: string;
  suffix: string;
}

export interface CompletionCacheOptions {
  maxEntries?: number;
  prefixTailChars?: number;
  suffixHeadChars?: number;
  /** How many characters typed into a cached completion are still answered from it. */
  maxTypedAhead?: number;
}

export class CompletionCache {
  private readonly entries = new Map<string, string>();
  private readonly maxEntries: number;
  private readonly prefixTailChars: number;
  private readonly suffixHeadChars: number;
  private readonly maxTypedAhead: number;

  constructor(options: CompletionCacheOptions = {}) {
    this.maxEntries = options.maxEntries ?? 64;
    this.prefixTailChars = options.prefixTailChars ?? 1024;
    this.suffixHeadChars = options.suffixHeadChars ?? 256;
    this.maxTypedAhead = options.maxTypedAhead ?? 32;
    if (this.maxEntries < 1) throw new RangeError('A completion cache needs room for one entry.');
  }

  get size(): number {
    return this.entries.size;
  }

  private key(documentKey: string, prefix: string, suffix: string): string {
    return `${documentKey}\u0000${prefix.slice(-this.prefixTailChars)}\u0000${suffix.slice(0, this.suffixHeadChars)}`;
  }

  set(parts: CacheKeyParts, completion: string): void {
    const key = this.key(parts.documentKey, parts.prefix, parts.suffix);
    this.entries.delete(key);
    this.entries.set(key, completion);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  /**
   * The completion for this prefix: stored for it exactly, or stored for a shorter prefix whose
   * completion begins with what was typed since (then the rest of it).
   */
  get(parts: CacheKeyParts): string | undefined {
    const exact = this.touch(this.key(parts.documentKey, parts.prefix, parts.suffix));
    if (exact !== undefined) return exact;
    const limit = Math.min(this.maxTypedAhead, parts.prefix.length);
    for (let typed = 1; typed <= limit; typed++) {
      const earlier = parts.prefix.slice(0, parts.prefix.length - typed);
      const completion = this.entries.get(this.key(parts.documentKey, earlier, parts.suffix));
      const typedText = parts.prefix.slice(parts.prefix.length - typed);
      if (completion !== undefined && completion.length > typed && completion.startsWith(typedText)) return completion.slice(typed);
    }
    return undefined;
  }

  clear(documentKey?: string): void {
    if (documentKey === undefined) return this.entries.clear();
    for (const key of [...this.entries.keys()]) if (key.startsWith(`${documentKey}\u0000`)) this.entries.delete(key);
  }

  private touch(key: string): string | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }
}
