// Prefix KV reuse. A base sequence in the engine holds the KV of a recent prompt. A new prompt
// shares its longest common token prefix with it: the base is trimmed to that prefix and only
// the remaining tokens are prefilled. Each request then generates on a fork of the base, so
// generated tokens never clobber the shared prefix (the repository context) that the next
// completion will reuse.
//
// Chat and completion prompts share no prefix, so the cache keeps a few bases (slots): a
// prompt goes to the slot it shares the most with, or to a fresh slot while there is room,
// else it replaces the least recently used one. Alternating chat and completions then keeps
// both warm.
import type { CancelToken, NativeEngine } from '../native/addon';

export type PrefixEngine = Pick<
  NativeEngine,
  'createSequence' | 'forkSequence' | 'trimSequence' | 'releaseSequence' | 'sequenceTokens' | 'prefill'
>;

export interface PreparedPrompt {
  sequence: number;         // a fork holding the prompt minus its last token; release it when done
  lastTokens: number[];     // the prompt tokens still to feed to generate (at least one)
  reusedTokens: number;     // tokens whose KV came from the cache
  recomputedTokens: number; // tokens this request computes (prefill + the generate prompt)
}

export interface PrefixCacheStats {
  slots: number;
  cachedTokens: number;
  requests: number;
  tokensReused: number;
  tokensRecomputed: number;
  last?: { reusedTokens: number; recomputedTokens: number };
}

export function commonPrefixLength(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const limit = Math.min(a.length, b.length);
  let length = 0;
  while (length < limit && a[length] === b[length]) length++;
  return length;
}

// Fewer shared tokens than this start a new slot while there is room.
const MIN_SHARED_TOKENS = 8;

interface Slot {
  sequence: number;
  tokens: number[]; // what the engine sequence holds
  lastUsed: number;
}

export class PrefixCache {
  private readonly slots: Slot[] = [];
  private clock = 0;
  private readonly totals = { requests: 0, tokensReused: 0, tokensRecomputed: 0 };
  private last: PrefixCacheStats['last'];

  constructor(private readonly engine: PrefixEngine, private readonly maxSlots = 2) {
    if (maxSlots < 1) throw new RangeError('A prefix cache needs at least one slot.');
  }

  // The tokens each slot holds, most recently used first.
  cachedPrompts(): number[][] {
    return [...this.slots].sort((a, b) => b.lastUsed - a.lastUsed).map((slot) => [...slot.tokens]);
  }

  // Brings a base sequence to prompt[0 .. n-1] (reusing what matches) and forks it.
  async prepare(prompt: ArrayLike<number>, cancel?: CancelToken): Promise<PreparedPrompt> {
    if (prompt.length === 0) throw new RangeError('A prompt needs at least one token.');
    const tokens = Array.from(prompt);
    // The last token always goes through generate, which needs at least one prompt token.
    const target = tokens.length - 1;
    const slot = await this.chooseSlot(tokens);
    slot.lastUsed = ++this.clock;
    const reused = Math.min(commonPrefixLength(slot.tokens, tokens), target);
    try {
      if (reused < slot.tokens.length) {
        await this.engine.trimSequence(slot.sequence, reused);
        slot.tokens = tokens.slice(0, reused);
      }
      if (reused < target) {
        await this.engine.prefill(slot.sequence, tokens.slice(reused, target), { cancel });
        slot.tokens = tokens.slice(0, target);
      }
    } catch (error) {
      // A cancelled or failed prefill may have left part of its tokens in the base: re-read it.
      await this.resync(slot);
      throw error;
    }
    const sequence = await this.engine.forkSequence(slot.sequence, target);
    const recomputed = tokens.length - reused;
    this.totals.requests++;
    this.totals.tokensReused += reused;
    this.totals.tokensRecomputed += recomputed;
    this.last = { reusedTokens: reused, recomputedTokens: recomputed };
    return { sequence, lastTokens: tokens.slice(target), reusedTokens: reused, recomputedTokens: recomputed };
  }

  stats(): PrefixCacheStats {
    const cachedTokens = this.slots.reduce((sum, slot) => sum + slot.tokens.length, 0);
    return { slots: this.slots.length, cachedTokens, ...this.totals, last: this.last };
  }

  // Drops the cached KV (e.g. before unloading the model).
  async clear(): Promise<void> {
    const slots = this.slots.splice(0);
    for (const slot of slots) await this.engine.releaseSequence(slot.sequence).catch(() => undefined);
  }

  private async chooseSlot(tokens: number[]): Promise<Slot> {
    let best: Slot | undefined;
    let bestShared = 0;
    for (const slot of this.slots) {
      const shared = commonPrefixLength(slot.tokens, tokens);
      if (shared > bestShared) {
        best = slot;
        bestShared = shared;
      }
    }
    // A shared BOS or a few template tokens are not worth evicting another prompt's KV for.
    if (best !== undefined && (bestShared >= MIN_SHARED_TOKENS || this.slots.length >= this.maxSlots)) return best;
    if (this.slots.length < this.maxSlots) {
      const slot = { sequence: await this.engine.createSequence(), tokens: [], lastUsed: 0 };
      this.slots.push(slot);
      return slot;
    }
    return this.slots.reduce((oldest, slot) => (slot.lastUsed < oldest.lastUsed ? slot : oldest));
  }

  private async resync(slot: Slot): Promise<void> {
    try {
      slot.tokens = Array.from(await this.engine.sequenceTokens(slot.sequence));
    } catch {
      slot.tokens = [];
      await this.engine.trimSequence(slot.sequence, 0).catch(() => undefined);
    }
  }
}
