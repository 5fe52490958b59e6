// A stand-in engine for the prefix cache and the repository: sequences as token lists, every
// call recorded, a prefill that can fail part-way or take time per token.
import type { AttentionOptions, CancelToken } from '../../../src/native/addon';
import type { PrefixEngine } from '../../../src/host/prefixCache';

export class RecordingEngine implements PrefixEngine {
  readonly sequences = new Map<number, number[]>();
  readonly calls: string[] = [];
  failNextPrefillAfter: number | undefined; // keep this many tokens, then reject
  private next = 1;

  /** `msPerToken` > 0: a prefill takes that long per token (a warm-up has steps to yield between). */
  constructor(private readonly msPerToken = 0) {}

  /** Prefill calls that went through. */
  get prefills(): number {
    return this.calls.filter((call) => call.startsWith('prefill')).length;
  }

  async createSequence() {
    this.sequences.set(this.next, []);
    return this.next++;
  }
  async forkSequence(source: number, length?: number) {
    const tokens = this.sequences.get(source)!.slice(0, length);
    this.calls.push(`fork ${source} ${tokens.length}`);
    this.sequences.set(this.next, tokens);
    return this.next++;
  }
  async trimSequence(sequence: number, length: number) {
    this.calls.push(`trim ${sequence} ${length}`);
    this.sequences.set(sequence, this.sequences.get(sequence)!.slice(0, length));
  }
  async compactSequence(sequence: number, ranges: [number, number][]) {
    this.calls.push(`compact ${sequence} ${JSON.stringify(ranges)}`);
    const held = this.sequences.get(sequence)!;
    this.sequences.set(
      sequence,
      ranges.flatMap(([start, count]) => held.slice(start, start + count)),
    );
  }
  async releaseSequence(sequence: number) {
    this.sequences.delete(sequence);
  }
  async sequenceTokens(sequence: number) {
    return Int32Array.from(this.sequences.get(sequence)!);
  }
  async prefill(sequence: number, tokens: ArrayLike<number>, options?: { cancel?: CancelToken; attention?: AttentionOptions }) {
    const list = Array.from(tokens);
    // As the engine: a request cancelled before the prefill starts computes nothing.
    if (options?.cancel?.cancelled) throw Object.assign(new Error('cancelled'), { code: 'ERR_TIDAL_CANCELLED' });
    if (this.failNextPrefillAfter !== undefined) {
      this.sequences.get(sequence)!.push(...list.slice(0, this.failNextPrefillAfter));
      this.failNextPrefillAfter = undefined;
      throw Object.assign(new Error('cancelled'), { code: 'ERR_TIDAL_CANCELLED' });
    }
    this.calls.push(`prefill ${sequence} ${list.length}${options?.attention?.sparsePrefill ? ' sparse' : ''}`);
    if (this.msPerToken > 0) await new Promise((resolve) => setTimeout(resolve, Math.ceil(list.length * this.msPerToken)));
    this.sequences.get(sequence)!.push(...list);
    return new Float32Array(0);
  }
  /** What generate does to a slot: the last prompt token and the generated ones are appended. */
  generateOn(sequence: number, lastTokens: number[], generated: number[]) {
    this.sequences.get(sequence)!.push(...lastTokens, ...generated);
  }
  async saveSequence(): Promise<number> {
    throw new Error('not used');
  }
  async loadSequence(): Promise<number> {
    throw new Error('not used');
  }
}
