// Prefix KV reuse. A slot is an engine sequence holding the KV of a recent prompt. A new prompt
// reuses what the slot already holds and computes only the rest:
//
// - The longest common token prefix is exact reuse: the slot is trimmed to it.
// - Block reuse: prompts made of repository blocks (one per file) name their blocks. When a
//   block changed or left (a saved file moves to the end of the layout), the blocks after it
//   are still in the slot, at positions that are now off by the removed length. With
//   `reuseShifted`, the slot is compacted instead of trimmed: the removed blocks are cut out
//   and the later blocks move down, their keys re-rotated to the new positions (the engine's
//   compactSequence). That reuse is approximate: the moved blocks' KV was computed next to
//   the old content.
//
// Requests generate directly on the slot and the slot is trimmed back to the prompt after
// (generated tokens sit after the prompt, so they never clobber the shared prefix): no KV is
// copied per request. A second slot (chat next to completions) is made by forking the first
// at the shared prefix, once; on a GPU that fork is a copy, so the slot count is bounded.
import type { AttentionOptions, CancelToken, NativeEngine } from '../native/addon';

export type PrefixEngine = Pick<NativeEngine, 'createSequence' | 'forkSequence' | 'trimSequence' | 'releaseSequence' | 'sequenceTokens'> & {
  prefill(sequence: number, tokens: ArrayLike<number>, options?: { cancel?: CancelToken; chunk?: number; attention?: AttentionOptions }): Promise<Float32Array>;
  /** Keeps only `ranges` ([start, count], ascending) of the sequence, moved down, keys re-rotated. */
  compactSequence(sequence: number, ranges: [number, number][]): Promise<void>;
};

/** One repository block of a prompt: tokens [start, start + length), named by `key`. */
export interface PromptBlock {
  key: string;
  start: number;
  length: number;
}

/**
 * A prompt's tokens and the named blocks inside it (ascending, non-overlapping). Tokens are an
 * Int32Array: a 100K-token prompt is assembled and compared per keystroke, and typed arrays
 * copy that in a fraction of a millisecond where plain arrays take tens.
 */
export interface PromptLayout {
  tokens: Int32Array;
  blocks: readonly PromptBlock[];
}

export interface PrepareOptions {
  cancel?: CancelToken;
  /** Reuse blocks after a changed one by moving them (approximate); default false. */
  reuseShifted?: boolean;
  /** Tokens per engine prefill pass; 0 or absent: the engine's default. */
  chunk?: number;
  /** Hold every token (a warm-up); by default the last token is left for generate. */
  holdAll?: boolean;
  /**
   * Called after each part of the prefill with the tokens computed so far and the tokens this
   * call computes in all. With it, a prefill of at least two parts of `progressTokens` runs as
   * several engine prefills of that size, each reported; a shorter one (or any prefill without
   * it) runs as one engine prefill and is not reported.
   */
  onProgress?: (done: number, total: number) => void;
  /** Tokens per reported part (rounded up to whole passes of `chunk`); default 4096. */
  progressTokens?: number;
  /**
   * Attention with sparsePrefill (tidal, quest): a short recompute after a long reuse (at most
   * SPARSE_PREFILL_MAX_TOKENS after at least SPARSE_PREFILL_MIN_BUDGETS token budgets, what a
   * keystroke recomputes) is prefilled under it. Its entries are approximate: finish() trims the slot back
   * to before them (PreparedPrompt.sparseFrom), so no later prompt reuses them.
   */
  attention?: AttentionOptions;
}

// The sparse prefill measured in bench/eval (tidal-eval --sparse-prefill): a few hundred tokens
// after a long exact context. Longer recomputes prefill densely, and so does a context of fewer
// than a few budgets, where sparse attention reads little less.
export const SPARSE_PREFILL_MAX_TOKENS = 512;
export const SPARSE_PREFILL_MIN_BUDGETS = 4;
const ENGINE_DEFAULT_TOKEN_BUDGET = 256; // AttentionOptions::token_budget's default

const DEFAULT_PROGRESS_TOKENS = 4096;

export interface PreparedPrompt {
  sequence: number; // the slot: holds the prompt minus its last token (generate on it, then finish())
  lastTokens: number[]; // the prompt tokens still to feed to generate (at least one unless holdAll)
  reusedTokens: number; // tokens whose KV came from the cache (exact or shifted)
  shiftedTokens: number; // of them, moved to a new position
  recomputedTokens: number; // tokens this request computes (prefill + the generate prompt)
  /** Where sparse-prefilled entries begin (pass it to finish() as keepAtMost); absent: none. */
  sparseFrom?: number;
  planMs: number; // host time spent matching and planning
  engineMs: number; // engine time: compaction, trim, prefill
}

export interface PrefixCacheStats {
  slots: number;
  cachedTokens: number;
  requests: number;
  tokensReused: number;
  tokensShifted: number;
  tokensRecomputed: number;
  forks: number;
  /** Duration of the last fork (a second slot made from the first), ms. */
  lastForkMs?: number;
  last?: { reusedTokens: number; shiftedTokens: number; recomputedTokens: number };
}

/** The blocks that lie wholly within the first `end` tokens. */
export function blocksWithin(blocks: readonly PromptBlock[], end: number): PromptBlock[] {
  return blocks.filter((block) => block.start + block.length <= end);
}

export function commonPrefixLength(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const limit = Math.min(a.length, b.length);
  let length = 0;
  while (length < limit && a[length] === b[length]) length++;
  return length;
}

// Fewer shared tokens than this start a new slot while there is room.
const MIN_SHARED_TOKENS = 8;
// A compaction must keep at least this many tokens more than the exact prefix to be worth it.
const MIN_SHIFT_GAIN = 32;
// A slot whose tokens after the shared prefix are fewer than this is simply trimmed; more, and
// a second slot is forked off instead (while there is room), so alternating chat and
// completions keeps both tails.
const MIN_TAIL_TO_KEEP = 64;
// A slot keeping at most this many tokens fewer than the best one is as good as the best.
const NEAR_BEST_TOKENS = 64;

interface Slot {
  sequence: number;
  tokens: Int32Array; // what the engine sequence holds
  blocks: PromptBlock[]; // named blocks the slot holds whole
  lastUsed: number;
}

/** What a slot can give a prompt: exact prefix, or the ranges a compaction keeps. */
export interface ReusePlan {
  exact: number;
  /** Compaction ranges over the slot's positions; undefined when the exact prefix is the plan. */
  ranges?: [number, number][];
  kept: number;
  shifted: number;
  /** The prompt's blocks the slot holds after the plan (whole). */
  blocks: PromptBlock[];
}

function equalSpan(a: ArrayLike<number>, aStart: number, b: ArrayLike<number>, bStart: number, length: number): boolean {
  if (aStart + length > a.length || bStart + length > b.length) return false;
  for (let i = 0; i < length; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

/**
 * How much of `prompt` a slot holding `held` (with its named blocks) can keep, up to `target`
 * tokens. Exact prefix first; with `shifted`, the prompt's blocks after the first one not
 * wholly in the prefix are looked up, in order, among the slot's later blocks (same key, same
 * tokens), and kept by compaction while they line up.
 */
export function planReuse(held: ArrayLike<number>, heldBlocks: readonly PromptBlock[], prompt: PromptLayout, target: number, shifted: boolean): ReusePlan {
  const exact = Math.min(commonPrefixLength(held, prompt.tokens), target);
  const exactPlan: ReusePlan = { exact, kept: exact, shifted: 0, blocks: blocksWithin(prompt.blocks, exact) };
  if (!shifted || heldBlocks.length === 0) return exactPlan;

  // The first prompt block not wholly inside the exact prefix: compaction starts at its start.
  let first = prompt.blocks.findIndex((block) => block.start + block.length > exact);
  if (first < 0) return exactPlan;
  const cut = prompt.blocks[first].start;
  if (cut > exact) return exactPlan; // the prefix ends before the blocks begin: nothing to move
  // The slot's blocks that begin at or after the cut, in position order.
  let candidate = heldBlocks.findIndex((block) => block.start >= cut);
  if (candidate < 0) return exactPlan;

  const ranges: [number, number][] = cut > 0 ? [[0, cut]] : [];
  const kept: PromptBlock[] = blocksWithin(prompt.blocks, cut);
  let length = cut;
  let moved = 0;
  for (; first < prompt.blocks.length; first++) {
    const want = prompt.blocks[first];
    if (want.start !== length) break; // something unnamed sits between blocks: stop here
    if (want.start + want.length > target) break;
    let found = -1;
    for (let i = candidate; i < heldBlocks.length; i++) {
      const have = heldBlocks[i];
      if (have.key === want.key && have.length === want.length && equalSpan(held, have.start, prompt.tokens, want.start, want.length)) {
        found = i;
        break;
      }
    }
    if (found < 0) break;
    const have = heldBlocks[found];
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last[0] + last[1] === have.start) last[1] += have.length;
    else ranges.push([have.start, have.length]);
    if (have.start !== want.start) moved += want.length;
    kept.push(want);
    length += want.length;
    candidate = found + 1;
  }
  if (moved === 0 || length < exact + MIN_SHIFT_GAIN) return exactPlan;
  return { exact, ranges, kept: length, shifted: moved, blocks: kept };
}

export class PrefixCache {
  private readonly slots: Slot[] = [];
  private clock = 0;
  private readonly totals = { requests: 0, tokensReused: 0, tokensShifted: 0, tokensRecomputed: 0, forks: 0 };
  private last: PrefixCacheStats['last'];
  private lastForkMs: number | undefined;

  constructor(
    private readonly engine: PrefixEngine,
    private maxSlots = 2,
  ) {
    if (maxSlots < 1) throw new RangeError('A prefix cache needs at least one slot.');
  }

  /** The tokens each slot holds, most recently used first. */
  cachedPrompts(): number[][] {
    return [...this.slots].sort((a, b) => b.lastUsed - a.lastUsed).map((slot) => Array.from(slot.tokens));
  }

  /** The best reuse any slot offers `prompt` (no engine call): for sizing a request before it runs. */
  bestReuse(prompt: PromptLayout, shifted: boolean): number {
    let best = 0;
    for (const slot of this.slots) best = Math.max(best, planReuse(slot.tokens, slot.blocks, prompt, prompt.tokens.length, shifted).kept);
    return best;
  }

  /** The slot holding the most tokens of `prompt` exactly (for warm-up progress and saving). */
  exactHolder(prompt: PromptLayout): { sequence: number; tokens: number; blocks: PromptBlock[] } | undefined {
    let best: Slot | undefined;
    let bestShared = 0;
    for (const slot of this.slots) {
      const shared = commonPrefixLength(slot.tokens, prompt.tokens);
      if (shared > bestShared) {
        best = slot;
        bestShared = shared;
      }
    }
    return best && { sequence: best.sequence, tokens: bestShared, blocks: blocksWithin(best.blocks, bestShared) };
  }

  /** Adopts a sequence restored from disk as a slot (replacing the least recently used one when full). */
  async adopt(sequence: number, tokens: Int32Array, blocks: PromptBlock[]): Promise<void> {
    if (this.slots.length >= this.maxSlots) await this.dropSlot(this.leastRecentlyUsed(this.slots));
    this.slots.push({ sequence, tokens, blocks: blocksWithin(blocks, tokens.length), lastUsed: ++this.clock });
  }

  /**
   * Brings a slot to hold prompt[0 .. n-1] (all n with holdAll), reusing what it can. Generate
   * on the returned sequence with `lastTokens`, then call finish() with the prompt.
   */
  async prepare(promptOrTokens: PromptLayout | ArrayLike<number>, options: PrepareOptions = {}): Promise<PreparedPrompt> {
    const prompt: PromptLayout = 'tokens' in promptOrTokens ? promptOrTokens : { tokens: Int32Array.from(promptOrTokens), blocks: [] };
    const tokens = prompt.tokens;
    if (tokens.length === 0) throw new RangeError('A prompt needs at least one token.');
    const planStarted = performance.now();
    const target = options.holdAll ? tokens.length : tokens.length - 1;
    let sparseFrom: number | undefined;
    const shifted = options.reuseShifted ?? false;
    let planMs = 0;
    let engineStarted = 0;
    const { slot, plan } = await this.chooseSlot(prompt, target, shifted, () => {
      planMs = performance.now() - planStarted;
      engineStarted = performance.now();
    });
    slot.lastUsed = ++this.clock;
    try {
      if (plan.ranges !== undefined) {
        await this.engine.compactSequence(slot.sequence, plan.ranges);
        slot.tokens = tokens.slice(0, plan.kept);
      } else if (plan.exact < slot.tokens.length) {
        await this.engine.trimSequence(slot.sequence, plan.exact);
        slot.tokens = tokens.slice(0, plan.exact);
      }
      if (plan.kept < target) {
        const total = target - plan.kept;
        const attention = options.attention;
        const budget = attention?.tokenBudget ?? ENGINE_DEFAULT_TOKEN_BUDGET;
        const sparse = attention?.sparsePrefill && (attention.mode ?? 'full') !== 'full';
        if (sparse && total <= SPARSE_PREFILL_MAX_TOKENS && plan.kept >= SPARSE_PREFILL_MIN_BUDGETS * budget) {
          sparseFrom = plan.kept;
        }
        const part = options.onProgress ? progressPart(options) : total;
        // Parts only where there are at least two: a keystroke's short prefill stays one call.
        const step = total >= 2 * part ? part : total;
        for (let at = plan.kept; at < target; at += step) {
          const end = Math.min(target, at + step);
          await this.engine.prefill(slot.sequence, tokens.slice(at, end), {
            cancel: options.cancel,
            ...(options.chunk ? { chunk: options.chunk } : {}),
            ...(sparseFrom !== undefined ? { attention } : {}),
          });
          slot.tokens = tokens.slice(0, end);
          if (step < total) {
            try {
              options.onProgress?.(end - plan.kept, total);
            } catch {
              // A progress listener that fails must not stop the prefill.
            }
          }
        }
      }
      slot.blocks = blocksWithin(prompt.blocks, slot.tokens.length);
    } catch (error) {
      // A cancelled or failed prefill may have left part of its tokens in the slot: re-read it.
      await this.resync(slot, prompt);
      throw error;
    }
    const engineMs = performance.now() - engineStarted;
    const recomputed = tokens.length - plan.kept;
    this.totals.requests++;
    this.totals.tokensReused += plan.kept;
    this.totals.tokensShifted += plan.shifted;
    this.totals.tokensRecomputed += recomputed;
    this.last = { reusedTokens: plan.kept, shiftedTokens: plan.shifted, recomputedTokens: recomputed };
    return {
      sequence: slot.sequence,
      lastTokens: Array.from(tokens.subarray(target)),
      reusedTokens: plan.kept,
      shiftedTokens: plan.shifted,
      recomputedTokens: recomputed,
      ...(sparseFrom !== undefined ? { sparseFrom } : {}),
      planMs,
      engineMs,
    };
  }

  /**
   * After generating on a prepared slot: trims it back to the prompt (the generated tokens are
   * dropped, the prompt's KV stays), or to `keepAtMost` tokens when fewer of them may be
   * reused. Call it whether the generation succeeded or not.
   */
  async finish(sequence: number, prompt: PromptLayout | ArrayLike<number>, keepAtMost = Infinity): Promise<void> {
    const slot = this.slots.find((candidate) => candidate.sequence === sequence);
    if (!slot) return;
    const layout: PromptLayout = 'tokens' in prompt ? prompt : { tokens: Int32Array.from(prompt), blocks: [] };
    try {
      const held = await this.engine.sequenceTokens(sequence);
      const keep = Math.min(commonPrefixLength(held, layout.tokens), layout.tokens.length, Math.max(0, keepAtMost));
      if (keep < held.length) await this.engine.trimSequence(sequence, keep);
      slot.tokens = held.slice(0, keep);
      slot.blocks = blocksWithin(layout.blocks, keep);
    } catch {
      await this.dropSlot(slot);
    }
  }

  /** Releases every slot but the most recently used (after the engine ran out of KV memory). */
  async shrink(): Promise<number> {
    const keep = this.slots.reduce<Slot | undefined>((a, b) => (a === undefined || b.lastUsed > a.lastUsed ? b : a), undefined);
    let released = 0;
    for (const slot of [...this.slots]) {
      if (slot === keep) continue;
      await this.dropSlot(slot);
      released++;
    }
    return released;
  }

  /** Caps the slot count (1 when memory is short). */
  setMaxSlots(maxSlots: number): void {
    this.maxSlots = Math.max(1, Math.floor(maxSlots));
  }

  stats(): PrefixCacheStats {
    const cachedTokens = this.slots.reduce((sum, slot) => sum + slot.tokens.length, 0);
    return { slots: this.slots.length, cachedTokens, ...this.totals, lastForkMs: this.lastForkMs, last: this.last };
  }

  /** Drops the cached KV (e.g. before unloading the model). */
  async clear(): Promise<void> {
    const slots = this.slots.splice(0);
    for (const slot of slots) await this.engine.releaseSequence(slot.sequence).catch(() => undefined);
  }

  private async chooseSlot(prompt: PromptLayout, target: number, shifted: boolean, planned: () => void): Promise<{ slot: Slot; plan: ReusePlan }> {
    let best: Slot | undefined;
    let bestPlan: ReusePlan | undefined;
    const plans = this.slots.map((slot) => ({ slot, plan: planReuse(slot.tokens, slot.blocks, prompt, target, shifted) }));
    for (const { slot, plan } of plans) {
      if (bestPlan === undefined || plan.kept > bestPlan.kept) {
        best = slot;
        bestPlan = plan;
      }
    }
    // Slots that give nearly as much (both hold the repository) are equals: take the least
    // recently used one, so the tail of the recent one (a completion's window while a chat
    // comes in) stays for its next request.
    if (bestPlan !== undefined && bestPlan.kept >= MIN_SHARED_TOKENS) {
      const floor = bestPlan.kept - NEAR_BEST_TOKENS;
      for (const { slot, plan } of plans) {
        if (plan.kept >= floor && plan.kept >= MIN_SHARED_TOKENS && slot.lastUsed < best!.lastUsed) {
          best = slot;
          bestPlan = plan;
        }
      }
    }
    planned();
    if (best === undefined || bestPlan === undefined || bestPlan.kept < MIN_SHARED_TOKENS) {
      // Nothing worth keeping: a fresh slot while there is room, else the one that keeps
      // something, else the least recently used.
      if (this.slots.length < this.maxSlots) return { slot: await this.newSlot(), plan: { exact: 0, kept: 0, shifted: 0, blocks: [] } };
      if (best !== undefined && bestPlan !== undefined && bestPlan.kept > 0) return { slot: best, plan: bestPlan };
      const oldest = this.leastRecentlyUsed(this.slots);
      return { slot: oldest, plan: plans.find((candidate) => candidate.slot === oldest)!.plan };
    }
    // The best slot would lose a long tail of its own (a chat after completions): fork a second
    // slot at the shared prefix, so both tails stay. When every slot is taken, a stale one (it
    // holds less than half of what the best one shares exactly) gives its place.
    const lost = best.tokens.length - bestPlan.exact;
    if (bestPlan.ranges === undefined && lost >= MIN_TAIL_TO_KEEP && this.maxSlots > 1) {
      if (this.slots.length >= this.maxSlots) {
        const shared = bestPlan.exact;
        const stale = plans.filter(({ slot, plan }) => slot !== best && plan.exact * 2 < shared).map(({ slot }) => slot);
        if (stale.length > 0) await this.dropSlot(this.leastRecentlyUsed(stale));
      }
      if (this.slots.length < this.maxSlots) {
        try {
          const forkStarted = performance.now();
          const sequence = await this.engine.forkSequence(best.sequence, bestPlan.exact);
          this.lastForkMs = performance.now() - forkStarted;
          this.totals.forks++;
          const slot: Slot = { sequence, tokens: best.tokens.slice(0, bestPlan.exact), blocks: bestPlan.blocks, lastUsed: 0 };
          this.slots.push(slot);
          return { slot, plan: bestPlan };
        } catch {
          // Out of KV memory for a copy: share the one slot instead.
        }
      }
    }
    return { slot: best, plan: bestPlan };
  }

  private leastRecentlyUsed(slots: readonly Slot[]): Slot {
    return slots.reduce((a, b) => (a.lastUsed < b.lastUsed ? a : b));
  }

  private async newSlot(): Promise<Slot> {
    const slot: Slot = { sequence: await this.engine.createSequence(), tokens: new Int32Array(0), blocks: [], lastUsed: 0 };
    this.slots.push(slot);
    return slot;
  }

  private async dropSlot(slot: Slot): Promise<void> {
    const index = this.slots.indexOf(slot);
    if (index >= 0) this.slots.splice(index, 1);
    await this.engine.releaseSequence(slot.sequence).catch(() => undefined);
  }

  private async resync(slot: Slot, prompt: PromptLayout): Promise<void> {
    try {
      slot.tokens = await this.engine.sequenceTokens(slot.sequence);
      const shared = commonPrefixLength(slot.tokens, prompt.tokens);
      slot.blocks = blocksWithin(prompt.blocks, shared);
    } catch {
      slot.tokens = new Int32Array(0);
      slot.blocks = [];
      await this.engine.trimSequence(slot.sequence, 0).catch(() => undefined);
    }
  }
}

/** Tokens per reported part of a prefill: `progressTokens`, in whole engine passes. */
function progressPart(options: PrepareOptions): number {
  const wanted = Math.max(1, Math.round(options.progressTokens ?? DEFAULT_PROGRESS_TOKENS));
  const pass = options.chunk && options.chunk > 0 ? options.chunk : 1;
  return Math.ceil(wanted / pass) * pass;
}
