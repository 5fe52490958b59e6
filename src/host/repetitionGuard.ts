// Stops an answer that repeats itself: the same clause or line written again and again, or a
// few tokens cycling. Small models fall into such loops under greedy decoding and would fill the
// whole token limit with them.
//
// The test, on token ids: the newest tokens form a cycle of period p when each of them equals
// the token p before it. run[p] counts how many of the newest tokens do so in a row; the
// periodic stretch at the end is then run[p] + p tokens long (the first cycle and its repeats).
// The guard fires when, for some p <= maxPeriod, that stretch covers at least minTokens tokens
// and at least minRepeats whole cycles:
//
//   run[p] + p >= max(minTokens, minRepeats * p)
//
// One comparison per period per token (maxPeriod of them), on a ring of the last maxPeriod
// tokens. Code with repetitive structure (a table of similar lines, a switch of similar cases)
// differs somewhere in every line (a name, a number), which resets run[p]; only an exact
// repeat that long stops an answer.
//
// A second test catches loops that are not exact: a few tokens over and over in no fixed order
// (` ```` ```` `````` ```` ` ...: three ids in 98% of the tokens, never periodic for long).
// Over the last varietyWindow tokens, the varietyFew most frequent ids make at least
// varietyShare of them. Code and prose use far more ids than that in a few lines (a table of
// numbers: the ten digits, separators and names); a degenerate answer does not.

export interface RepetitionLimits {
  /** Longest cycle looked for, in tokens. */
  maxPeriod: number;
  /** The repeated stretch covers at least this many tokens. */
  minTokens: number;
  /** ...and holds at least this many whole cycles. */
  minRepeats: number;
  /** The low-variety test (all three, or none: off): tokens looked at, the newest ones... */
  varietyWindow?: number;
  /** ...how many of the most frequent ids... */
  varietyFew?: number;
  /** ...and the share of the window they must make to stop the answer. */
  varietyShare?: number;
}

export const DEFAULT_REPETITION_LIMITS: RepetitionLimits = {
  maxPeriod: 128,
  minTokens: 200,
  minRepeats: 8,
  varietyWindow: 320,
  varietyFew: 4,
  varietyShare: 0.9,
};

/**
 * What the guard found: the cycle's length and the stretch it covers, in tokens; period 0 is
 * the low-variety test (tokens: its window).
 */
export interface Repetition {
  period: number;
  tokens: number;
}

interface VarietyLimits {
  window: number;
  few: number;
  share: number;
}

function varietyOf(limits: RepetitionLimits): VarietyLimits | undefined {
  const { varietyWindow: window, varietyFew: few, varietyShare: share } = limits;
  if (window === undefined && few === undefined && share === undefined) return undefined;
  if (!(window !== undefined && few !== undefined && share !== undefined && window >= 1 && few >= 1 && share > 0 && share <= 1)) {
    throw new RangeError('RepetitionGuard: varietyWindow >= 1, varietyFew >= 1 and 0 < varietyShare <= 1, all three or none.');
  }
  return { window, few, share };
}

/** Whether the `few` largest of `counts` add up to at least share x window. */
function fewDominate(counts: Iterable<number>, variety: VarietyLimits): boolean {
  const top: number[] = []; // descending, at most `few`
  for (const count of counts) {
    if (top.length === variety.few && count <= top[top.length - 1]) continue;
    let at = top.length;
    while (at > 0 && top[at - 1] < count) at--;
    top.splice(at, 0, count);
    if (top.length > variety.few) top.pop();
  }
  return top.reduce((sum, count) => sum + count, 0) >= variety.share * variety.window;
}

export class RepetitionGuard {
  private readonly recent: Int32Array; // ring of the last max(maxPeriod, varietyWindow) tokens
  private readonly run: Int32Array; // run[p]: newest tokens in a row equal to the one p before
  private count = 0;
  private found: Repetition | undefined;
  private readonly variety: VarietyLimits | undefined;
  private readonly windowCounts = new Map<number, number>(); // id -> count in the last varietyWindow tokens

  constructor(private readonly limits: RepetitionLimits = DEFAULT_REPETITION_LIMITS) {
    if (!(limits.maxPeriod >= 1 && limits.minRepeats >= 2 && limits.minTokens >= 1)) {
      throw new RangeError('RepetitionGuard: maxPeriod >= 1, minRepeats >= 2 and minTokens >= 1.');
    }
    this.variety = varietyOf(limits);
    this.recent = new Int32Array(Math.max(limits.maxPeriod, this.variety?.window ?? 0));
    this.run = new Int32Array(limits.maxPeriod + 1);
  }

  /** The repetition found so far (the first one), or undefined. */
  get repetition(): Repetition | undefined {
    return this.found;
  }

  /** Takes the next generated token; true once the answer repeats itself (and from then on). */
  push(token: number): boolean {
    if (this.found !== undefined) return true;
    const { maxPeriod, minTokens, minRepeats } = this.limits;
    const size = this.recent.length;
    const periods = Math.min(maxPeriod, this.count);
    for (let p = 1; p <= periods; p++) {
      const before = this.recent[(this.count - p) % size];
      this.run[p] = before === token ? this.run[p] + 1 : 0;
      if (this.found === undefined && this.run[p] + p >= Math.max(minTokens, minRepeats * p)) {
        this.found = { period: p, tokens: this.run[p] + p };
      }
    }
    if (this.variety !== undefined) this.pushVariety(token);
    this.recent[this.count % size] = token;
    this.count++;
    return this.found !== undefined;
  }

  // Before `token` enters the ring: the token leaving the window is still in it.
  private pushVariety(token: number): void {
    const { window } = this.variety!;
    const counts = this.windowCounts;
    if (this.count >= window) {
      const leaving = this.recent[(this.count - window) % this.recent.length];
      const left = counts.get(leaving)! - 1;
      if (left === 0) counts.delete(leaving);
      else counts.set(leaving, left);
    }
    counts.set(token, (counts.get(token) ?? 0) + 1);
    if (this.found === undefined && this.count + 1 >= window && fewDominate(counts.values(), this.variety!)) {
      this.found = { period: 0, tokens: window };
    }
  }
}

/**
 * The same test on a whole list, directly from the definition (no running counts): the first
 * index at which the tokens up to it end in a repetition, or -1. The unit tests check the guard
 * against it.
 */
export function firstRepetitionIndex(tokens: ArrayLike<number>, limits: RepetitionLimits = DEFAULT_REPETITION_LIMITS): number {
  const variety = varietyOf(limits);
  for (let end = 0; end < tokens.length; end++) {
    if (variety !== undefined && end + 1 >= variety.window) {
      const counts = new Map<number, number>();
      for (let i = end + 1 - variety.window; i <= end; i++) counts.set(tokens[i], (counts.get(tokens[i]) ?? 0) + 1);
      if (fewDominate(counts.values(), variety)) return end;
    }
    for (let p = 1; p <= limits.maxPeriod && p <= end; p++) {
      // The longest stretch ending at `end` in which every token equals the one p before it,
      // counting the first cycle: grow it to the left while the token left of it matches.
      let stretch = p;
      while (end - stretch >= 0 && tokens[end - stretch] === tokens[end - stretch + p]) stretch++;
      if (stretch >= Math.max(limits.minTokens, limits.minRepeats * p)) return end;
    }
  }
  return -1;
}
