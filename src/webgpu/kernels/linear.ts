// y[t][r] (+)= sum_c W[r][c] x[t][c] (+ bias[r]) for every token t and row r of a weight band.
// W is f32, or f16 / bf16 read as pairs from u32 words (no shader-f16 needed); activations are
// f32. A workgroup of 64 lanes computes 4 rows x 4 tokens: each lane sums a strided share of
// the columns, then a tree over the lanes adds the shares.
import { groupIndex, paramsStruct } from './common';
import { isQuantized, quantizedWgsl } from './quantized';

// The tape's weight types, by their number (TapeWeightType in native/src/webgpu/webgpu_tape.h).
export type WeightType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_k' | 'q6_k';
export const weightTypes: WeightType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_k', 'q6_k'];
export const LINEAR_ROWS = 4;
export const LINEAR_TOKENS = 4;

function columnLoop(type: WeightType): string {
  if (isQuantized(type)) {
    return `
  for (var c = lane; c < p.cols; c += 64u) {
    var xs: array<f32, 4>;
    for (var j = 0u; j < 4u; j++) { xs[j] = x[x_row[j] + c]; }
    for (var i = 0u; i < 4u; i++) {
      let wv = weight_value(w_row[i] / p.cols, c);
      for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += wv * xs[j]; }
    }
  }`;
  }
  if (type === 'f32') {
    return `
  for (var c = lane; c < p.cols; c += 64u) {
    var xs: array<f32, 4>;
    for (var j = 0u; j < 4u; j++) { xs[j] = x[x_row[j] + c]; }
    for (var i = 0u; i < 4u; i++) {
      let wv = w[w_row[i] + c];
      for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += wv * xs[j]; }
    }
  }`;
  }
  const unpack = type === 'f16' ? 'unpack2x16float(word)' : 'vec2f(bitcast<f32>(word << 16u), bitcast<f32>(word & 0xffff0000u))';
  return `
  let pairs = p.cols / 2u;
  for (var k = lane; k < pairs; k += 64u) {
    var xs: array<vec2f, 4>;
    for (var j = 0u; j < 4u; j++) { xs[j] = vec2f(x[x_row[j] + 2u * k], x[x_row[j] + 2u * k + 1u]); }
    for (var i = 0u; i < 4u; i++) {
      let word = w[w_row[i] / 2u + k];
      let wv = ${unpack};
      for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += wv.x * xs[j].x + wv.y * xs[j].y; }
    }
  }`;
}

/**
 * The linear command's parameters (as the tape lays them out) and the bindings every product
 * kernel reads: the weights as `f32Element` (f32 weights) or `packedElement` (16-bit and block
 * types), x, y and the bias.
 */
export const linearBindings = (type: WeightType, f32Element: string, packedElement: string) => `${paramsStruct([
  'w_id',
  'w_type',
  'rows',
  'cols',
  'x_id',
  'x_offset',
  'x_stride',
  'y_id',
  'y_offset',
  'y_stride',
  'tokens',
  'bias_id',
  'accumulate',
  'bias_offset',
])}
@group(0) @binding(1) var<storage, read> w: array<${type === 'f32' ? f32Element : packedElement}>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;`;

export const linearWgsl = (type: WeightType) => `
${linearBindings(type, 'f32', 'u32')}
var<workgroup> shares: array<f32, 1024>;
${groupIndex}
${isQuantized(type) ? quantizedWgsl(type) : ''}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row_groups = (p.rows + 3u) / 4u;
  let index = group_index(wid, groups);
  if (index >= row_groups * ((p.tokens + 3u) / 4u)) { return; }
  let first_row = (index % row_groups) * 4u;
  let first_token = (index / row_groups) * 4u;
  var w_row: array<u32, 4>;
  var x_row: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    // Rows and tokens past the end repeat the last one (their sums are not written).
    w_row[i] = min(first_row + i, p.rows - 1u) * p.cols;
    x_row[i] = p.x_offset + min(first_token + i, p.tokens - 1u) * p.x_stride;
  }
  var acc: array<f32, 16>;
  ${columnLoop(type)}
  for (var s = 0u; s < 16u; s++) { shares[s * 64u + lane] = acc[s]; }
  workgroupBarrier();
  for (var half = 32u; half > 0u; half >>= 1u) {
    if (lane < half) {
      for (var s = 0u; s < 16u; s++) { shares[s * 64u + lane] += shares[s * 64u + lane + half]; }
    }
    workgroupBarrier();
  }
  if (lane < 16u) {
    let r = first_row + lane / 4u;
    let t = first_token + lane % 4u;
    if (r < p.rows && t < p.tokens) {
      var value = shares[lane * 64u];
      if (p.bias_id != 0u) { value += bias[p.bias_offset + r]; }
      let at = p.y_offset + t * p.y_stride + r;
      if (p.accumulate != 0u) { value = y[at] + value; }
      y[at] = value;
    }
  }
}
`;
