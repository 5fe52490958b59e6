// The command tape the native WebGPU backend records (native/src/webgpu/webgpu_tape.h):
// 32-bit words, one command after another as [op][n][arg 0] ... [arg n-1].
export const TapeOp = {
  CreateBuffer: 1,
  FreeBuffer: 2,
  Upload: 3,
  Copy: 4,
  Read: 5,
  RmsNorm: 6,
  Linear: 7,
  QkvRope: 8,
  PageBounds: 9,
  Attend: 10,
  SelectTopK: 11,
  QuestPages: 12,
  Swiglu: 13,
  RotateKeys: 14,
} as const;

/** A 64-bit count or offset sent as (low word, high word). */
export function wide(words: Uint32Array, at: number): number {
  return words[at] + words[at + 1] * 0x1_0000_0000;
}

export interface TapeCommand {
  op: number;
  args: Uint32Array;
}

export function* commands(words: Uint32Array): Generator<TapeCommand> {
  let at = 0;
  while (at < words.length) {
    const op = words[at];
    const count = words[at + 1];
    if (at + 2 + count > words.length) throw new Error(`tape: command ${op} at word ${at} runs past the end`);
    yield { op, args: words.subarray(at + 2, at + 2 + count) };
    at += 2 + count;
  }
}
