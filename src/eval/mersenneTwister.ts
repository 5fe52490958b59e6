// The random numbers of `tidal-eval`: C++'s std::mt19937_64 seeded through std::seed_seq, both
// fixed bit for bit by the C++ standard ([rand.eng.mers], [rand.util.seedseq]). Samples drawn
// here are the ones the earlier C++ `tidal eval` drew, so saved records of either can be merged.

const N = 312;
const M = 156;
const MASK64 = (1n << 64n) - 1n;
const UPPER = 0xffffffff80000000n; // the top w - r = 33 bits
const LOWER = 0x7fffffffn; // the low r = 31 bits
const MATRIX = 0xb5026f5aa96619e9n;

// std::seed_seq{words...}.generate() filling `count` 32-bit words.
export function seedSequence(words: readonly number[], count: number): Uint32Array {
  const out = new Uint32Array(count).fill(0x8b8b8b8b);
  const n = count;
  const s = words.length;
  const t = n >= 623 ? 11 : n >= 68 ? 7 : n >= 39 ? 5 : n >= 7 ? 3 : (n - 1) >> 1;
  const p = (n - t) >> 1;
  const q = p + t;
  const m = Math.max(s + 1, n);
  const mix = (x: number) => (x ^ (x >>> 27)) >>> 0;
  for (let k = 0; k < m; k++) {
    const r1 = Math.imul(1664525, mix(out[k % n] ^ out[(k + p) % n] ^ out[(k + n - 1) % n])) >>> 0;
    const r2 = (r1 + (k === 0 ? s : k <= s ? (k % n) + (words[k - 1] >>> 0) : k % n)) >>> 0;
    out[(k + p) % n] += r1;
    out[(k + q) % n] += r2;
    out[k % n] = r2;
  }
  for (let k = m; k < m + n; k++) {
    const r3 = Math.imul(1566083941, mix((out[k % n] + out[(k + p) % n] + out[(k + n - 1) % n]) >>> 0)) >>> 0;
    const r4 = (r3 - (k % n)) >>> 0;
    out[(k + p) % n] ^= r3;
    out[(k + q) % n] ^= r4;
    out[k % n] = r4;
  }
  return out;
}

export class Mt19937_64 {
  private readonly state = new Array<bigint>(N);
  private index = N;

  private constructor() {}

  // std::mt19937_64(value): the integer seeding of the standard.
  static fromSeed(value: bigint): Mt19937_64 {
    const rng = new Mt19937_64();
    rng.state[0] = value & MASK64;
    for (let i = 1; i < N; i++) {
      const previous = rng.state[i - 1];
      rng.state[i] = (6364136223846793005n * (previous ^ (previous >> 62n)) + BigInt(i)) & MASK64;
    }
    return rng;
  }

  // std::mt19937_64(std::seed_seq{words...}).
  static fromSeedSequence(words: readonly number[]): Mt19937_64 {
    const rng = new Mt19937_64();
    const a = seedSequence(words, 2 * N);
    for (let i = 0; i < N; i++) rng.state[i] = BigInt(a[2 * i]) | (BigInt(a[2 * i + 1]) << 32n);
    // An all-zero state is replaced, as the standard says.
    if ((rng.state[0] & UPPER) === 0n && rng.state.slice(1).every((word) => word === 0n)) rng.state[0] = 1n << 63n;
    return rng;
  }

  // The next 64-bit output.
  next(): bigint {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++];
    y ^= (y >> 29n) & 0x5555555555555555n;
    y ^= (y << 17n) & 0x71d67fffeda60000n;
    y ^= (y << 37n) & 0xfff7eee000000000n;
    y ^= y >> 43n;
    return y;
  }

  private twist(): void {
    for (let i = 0; i < N; i++) {
      const y = (this.state[i] & UPPER) | (this.state[(i + 1) % N] & LOWER);
      this.state[i] = this.state[(i + M) % N] ^ (y >> 1n) ^ (y & 1n ? MATRIX : 0n);
    }
    this.index = 0;
  }
}

// One generator per sample, seeded from the run's seed and the sample's coordinates, so that
// runs split over machines (by --contexts or --shard) draw the same samples.
export function sampleRandom(seed: number, a: number, b: number, c: number): Mt19937_64 {
  const seed64 = BigInt(seed);
  const low32 = (value: bigint) => Number(value & 0xffffffffn);
  return Mt19937_64.fromSeedSequence([low32(seed64), low32(seed64 >> 32n), low32(BigInt(a)), low32(BigInt(b)), low32(BigInt(c))]);
}

// A uniform integer in [0, n), by rejection (unbiased, and the same as the C++ code drew).
export function uniformBelow(rng: Mt19937_64, n: number): number {
  const bound = BigInt(n);
  const limit = MASK64 - (MASK64 % bound);
  let value: bigint;
  do value = rng.next();
  while (value >= limit);
  return Number(value % bound);
}
