// Each compute command of the tape as a kernel: its WGSL, the buffers it binds (after the
// parameters at binding 0), and how many workgroups it takes. Arguments are the command's words.
import { attentionWgsl } from './kernels/attention';
import { LINEAR_ROWS, LINEAR_TOKENS, linearWgsl, WeightType, weightTypes } from './kernels/linear';
import { linearOneTokenWgsl } from './kernels/linearOneToken';
import { linearTiledWgsl, TILED_ROWS, TILED_TOKENS } from './kernels/linearTiled';
import { pageBoundsWgsl } from './kernels/pageBounds';
import { PREFILL_TOKENS, prefillAttentionWgsl } from './kernels/prefillAttention';
import { qkvRopeWgsl } from './kernels/qkvRope';
import { questPagesWgsl } from './kernels/questPages';
import { rmsNormWgsl } from './kernels/rmsNorm';
import { rotateKeysWgsl } from './kernels/rotateKeys';
import { selectTopKWgsl } from './kernels/selectTopK';
import { swigluWgsl } from './kernels/swiglu';
import { TapeOp } from './tape';

/** A binding: a buffer id, or a placeholder for an absent optional buffer. */
export type Binding = number | 'absent-read' | 'absent-write';

export interface Kernel {
  key: (args: Uint32Array) => string;
  source: (key: string) => string;
  bindings: (args: Uint32Array) => Binding[];
  workgroups: (args: Uint32Array) => number;
}

const ceil = (a: number, b: number) => Math.ceil(a / b);
const optional = (id: number, absent: Binding): Binding => (id === 0 ? absent : id);
// The one-token kernel reads plain types (f32, f16, bf16: type numbers 0-2) in 16-byte pieces.
const linearKind = (a: Uint32Array) => (a[10] === 1 && a[3] % 8 === 0 && a[1] <= 2 ? 'linear1' : a[10] >= 16 ? 'linearTiled' : 'linear');
// Dense attention of several tokens (no kept scores, no lists).
const tiledPrefill = (a: Uint32Array) => a[1] > 1 && a[4] <= 128 && a[10] === 0 && a[12] === 0;
const single = (name: string, source: () => string) => ({ key: () => name, source: () => source() });

export const kernels: Record<number, Kernel> = {
  [TapeOp.RmsNorm]: {
    ...single('rmsNorm', rmsNormWgsl),
    bindings: (a) => [a[0], a[3], a[6]],
    workgroups: (a) => a[7],
  },
  [TapeOp.Linear]: {
    // One token with rows of whole 16-byte pieces: the decode product (linearOneToken.ts); many
    // tokens: the tiled product (linearTiled.ts); a few: linear.ts.
    key: (a) => `${linearKind(a)}-${weightTypes[a[1]]}`,
    source: (key) => {
      const [kind, type] = key.split('-');
      if (kind === 'linear1') return linearOneTokenWgsl(type as WeightType);
      return kind === 'linearTiled' ? linearTiledWgsl(type as WeightType) : linearWgsl(type as WeightType);
    },
    bindings: (a) => [a[0], a[4], a[7], optional(a[11], 'absent-read')],
    workgroups: (a) => {
      const kind = linearKind(a);
      if (kind === 'linear1') return ceil(a[2], 4);
      if (kind === 'linearTiled') return ceil(a[2], TILED_ROWS) * ceil(a[10], TILED_TOKENS);
      return ceil(a[2], LINEAR_ROWS) * ceil(a[10], LINEAR_TOKENS);
    },
  },
  [TapeOp.QkvRope]: {
    ...single('qkvRope', qkvRopeWgsl),
    bindings: (a) => [a[0], a[5], optional(a[6], 'absent-read'), a[9], a[10]],
    workgroups: (a) => a[1] * (a[2] + a[3]),
  },
  [TapeOp.PageBounds]: {
    ...single('pageBounds', pageBoundsWgsl),
    bindings: (a) => [a[0], a[1], a[2]],
    workgroups: (a) => ceil((a[6] - a[5]) * a[3] * a[4], 64),
  },
  [TapeOp.Attend]: {
    // Passes of several tokens with head_dim <= 128: the tiled prefill kernel; otherwise (and for
    // one token when the runner's split kernel does not apply) one workgroup per token and head.
    key: (a) => (tiledPrefill(a) ? `prefillAttention-${a[4]}` : 'attention'),
    source: (key) => (key === 'attention' ? attentionWgsl() : prefillAttentionWgsl(Number(key.split('-')[1]))),
    bindings: (a) => (tiledPrefill(a) ? [a[0], a[6], a[7], a[8]] : [a[0], a[6], a[7], a[8], optional(a[10], 'absent-write'), optional(a[12], 'absent-read')]),
    workgroups: (a) => (tiledPrefill(a) ? ceil(a[1], PREFILL_TOKENS) * a[2] : a[1] * a[2]),
  },
  [TapeOp.SelectTopK]: {
    ...single('selectTopK', selectTopKWgsl),
    bindings: (a) => [a[0], a[7]],
    workgroups: (a) => (a[6] === 0 ? a[1] : a[1] / a[2]),
  },
  [TapeOp.QuestPages]: {
    ...single('questPages', questPagesWgsl),
    bindings: (a) => [a[0], a[4], a[5], a[9], a[11]],
    workgroups: (a) => a[1],
  },
  [TapeOp.RotateKeys]: {
    ...single('rotateKeys', rotateKeysWgsl),
    bindings: (a) => [a[0], a[5]],
    workgroups: (a) => ceil(a[4] * a[1] * (a[2] / 2), 64),
  },
  [TapeOp.Swiglu]: {
    ...single('swiglu', swigluWgsl),
    bindings: (a) => [a[0], a[3]],
    workgroups: (a) => ceil(a[1] * a[2], 256),
  },
};
