// y[t][r] (+)= sum_c W[r][c] x[t][c] (+ bias[r]) for many tokens (prefill): a tiled product.
// A workgroup of 16 x 16 lanes computes a 64-row x 64-token tile; the columns go in steps of
// 16, each step's W and x pieces staged in workgroup memory, and each lane accumulates 4 rows x
// 4 tokens. Pieces past the matrix's edges are zeros. W is f32, or f16 / bf16 read as pairs.
import { groupIndex, paramsStruct } from './common';
import { linearBindings, WeightType } from './linear';
import { isQuantized, quantizedWgsl } from './quantized';

export const TILED_ROWS = 64;
export const TILED_TOKENS = 64;

function loadWeights(type: WeightType): string {
  if (isQuantized(type)) {
    return `
    for (var i = lane; i < 1024u; i += 256u) {
      let r = i / 16u;
      let c = i % 16u;
      var value = 0.0;
      if (first_row + r < p.rows && k + c < p.cols) { value = weight_value(first_row + r, k + c); }
      w_tile[r * 17u + c] = value;
    }`;
  }
  if (type === 'f32') {
    return `
    for (var i = lane; i < 1024u; i += 256u) {
      let r = i / 16u;
      let c = i % 16u;
      var value = 0.0;
      if (first_row + r < p.rows && k + c < p.cols) { value = w[(first_row + r) * p.cols + k + c]; }
      w_tile[r * 17u + c] = value;
    }`;
  }
  const unpack = type === 'f16' ? 'unpack2x16float(word)' : 'vec2f(bitcast<f32>(word << 16u), bitcast<f32>(word & 0xffff0000u))';
  return `
    for (var i = lane; i < 512u; i += 256u) {
      let r = i / 8u;
      let c = 2u * (i % 8u);
      var pair = vec2f(0.0, 0.0);
      if (first_row + r < p.rows && k + c < p.cols) {
        let word = w[((first_row + r) * p.cols + k + c) / 2u];
        pair = ${unpack};
      }
      w_tile[r * 17u + c] = pair.x;
      w_tile[r * 17u + c + 1u] = pair.y;
    }`;
}

export const linearTiledWgsl = (type: WeightType) => `
${linearBindings(type, 'f32', 'u32')}
var<workgroup> w_tile: array<f32, 1088>;  // [64 rows][16 + 1]
var<workgroup> x_tile: array<f32, 1088>;  // [64 tokens][16 + 1]
${groupIndex}
${isQuantized(type) ? quantizedWgsl(type) : ''}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row_tiles = (p.rows + 63u) / 64u;
  let index = group_index(wid, groups);
  if (index >= row_tiles * ((p.tokens + 63u) / 64u)) { return; }
  let first_row = (index % row_tiles) * 64u;
  let first_token = (index / row_tiles) * 64u;
  let lane_row = (lane % 16u) * 4u;
  let lane_token = (lane / 16u) * 4u;
  var acc: array<f32, 16>;
  for (var k = 0u; k < p.cols; k += 16u) {
    ${loadWeights(type)}
    for (var i = lane; i < 1024u; i += 256u) {
      let t = i / 16u;
      let c = i % 16u;
      var value = 0.0;
      if (first_token + t < p.tokens && k + c < p.cols) { value = x[p.x_offset + (first_token + t) * p.x_stride + k + c]; }
      x_tile[t * 17u + c] = value;
    }
    workgroupBarrier();
    for (var c = 0u; c < 16u; c++) {
      var ws: array<f32, 4>;
      var xs: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        ws[i] = w_tile[(lane_row + i) * 17u + c];
        xs[i] = x_tile[(lane_token + i) * 17u + c];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += ws[i] * xs[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      let r = first_row + lane_row + i;
      let t = first_token + lane_token + j;
      if (r < p.rows && t < p.tokens) {
        var value = acc[i * 4u + j];
        if (p.bias_id != 0u) { value += bias[p.bias_offset + r]; }
        let at = p.y_offset + t * p.y_stride + r;
        if (p.accumulate != 0u) { value = y[at] + value; }
        y[at] = value;
      }
    }
  }
}
`;
