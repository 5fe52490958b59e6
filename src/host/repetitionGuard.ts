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

export interface RepetitionLimits {
  /** Longest cycle looked for, in tokens. */
  maxPeriod: number;
  /** The repeated stretch covers at least this many tokens. */
  minTokens: number;
  /** ...and holds at least this many whole cycles. */
  minRepeats: number;
}

export const DEFAULT_REPETITION_LIMITS: RepetitionLimits = { maxPeriod: 128, minTokens: 200, minRepeats: 8 };

/** What the guard found: the cycle's length and the stretch it covers, in tokens. */
export interface Repetition {
  period: number;
  tokens: number;
}

export class RepetitionGuard {
  private readonly recent: Int32Array; // ring of the last maxPeriod tokens
  private readonly run: Int32Array; // run[p]: newest tokens in a row equal to the one p before
  private count = 0;
  private found: Repetition | undefined;

  constructor(private readonly limits: RepetitionLimits = DEFAULT_REPETITION_LIMITS) {
    if (!(limits.maxPeriod >= 1 && limits.minRepeats >= 2 && limits.minTokens >= 1)) {
      throw new RangeError('RepetitionGuard: maxPeriod >= 1, minRepeats >= 2 and minTokens >= 1.');
    }
    this.recent = new Int32Array(limits.maxPeriod);
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
    this.recent[this.count % size] = token;
    this.count++;
    return this.found !== undefined;
  }
}

/**
 * The same test on a whole list, directly from the definition (no running counts): the first
 * index at which the tokens up to it end in a repetition, or -1. The unit tests check the guard
 * against it.
 */
export function firstRepetitionIndex(tokens: ArrayLike<number>, limits: RepetitionLimits = DEFAULT_REPETITION_LIMITS): number {
  for (let end = 0; end < tokens.length; end++) {
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
