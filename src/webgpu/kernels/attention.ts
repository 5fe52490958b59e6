// Attention of one query head of one token over cached positions: the visible prefix
// (dense, causal: token t of a pass sees positions [0, start + t]) or a list of positions
// (tidal selection, Quest pages).
//   s_i = scale * q . K[pos_i],  out = sum_i softmax(s)_i V[pos_i]
// One workgroup per (token, head); positions go in tiles of 128 with a running max and sum
// (the online softmax), so any context length fits. A dense one-token pass can keep every s_i
// for the selection that follows (scores [heads][positions]). head_dim <= 256.
import { groupIndex, paramsStruct } from './common';

/** The attend command's parameters, as the tape lays them out (every attention kernel reads them). */
export const ATTEND_FIELDS = [
  'qkv_id',
  'tokens',
  'heads',
  'kv_heads',
  'head_dim',
  'start',
  'k_id',
  'v_id',
  'out_id',
  'scale',
  'scores_id',
  'positions',
  'lists_id',
  'list_stride',
  'list_count',
];

export const attentionWgsl = () => `
${paramsStruct(ATTEND_FIELDS)}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> keys: array<f32>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;
@group(0) @binding(6) var<storage, read> lists: array<i32>;
var<workgroup> q: array<f32, 256>;
var<workgroup> weights: array<f32, 128>;
var<workgroup> tile_positions: array<u32, 128>;
var<workgroup> reduce: array<f32, 128>;
${groupIndex}

fn tree_max(lane: u32) -> f32 {
  for (var step = 64u; step > 0u; step >>= 1u) {
    if (lane < step) { reduce[lane] = max(reduce[lane], reduce[lane + step]); }
    workgroupBarrier();
  }
  return reduce[0];
}

fn tree_sum(lane: u32) -> f32 {
  for (var step = 64u; step > 0u; step >>= 1u) {
    if (lane < step) { reduce[lane] += reduce[lane + step]; }
    workgroupBarrier();
  }
  return reduce[0];
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let index = group_index(wid, groups);
  if (index >= p.tokens * p.heads) { return; }
  let t = index / p.heads;
  let h = index % p.heads;
  let kv_head = h / (p.heads / p.kv_heads);
  let kv_size = p.kv_heads * p.head_dim;
  let width = (p.heads + 2u * p.kv_heads) * p.head_dim;
  for (var d = lane; d < p.head_dim; d += 128u) { q[d] = qkv[t * width + h * p.head_dim + d]; }
  workgroupBarrier();
  let listed = p.lists_id != 0u;
  let count = select(p.start + t + 1u, p.list_count, listed);
  let scale = bitcast<f32>(p.scale);
  // Below every score (WGSL constants cannot be infinite); lanes past the end weigh 0.
  let negative_infinity = -3.0e38;
  let base = kv_head * p.head_dim;
  var running_max = negative_infinity;
  var running_sum = 0.0;
  var acc0 = 0.0;
  var acc1 = 0.0;
  for (var first = 0u; first < count; first += 128u) {
    let j = first + lane;
    var s = negative_infinity;
    var position = 0u;
    if (j < count) {
      position = select(j, u32(lists[h * p.list_stride + j]), listed);
      let row = position * kv_size + base;
      var dot = 0.0;
      for (var d = 0u; d < p.head_dim; d++) { dot += q[d] * keys[row + d]; }
      s = dot * scale;
      if (p.scores_id != 0u) { scores[h * p.positions + j] = s; }
    }
    tile_positions[lane] = position;
    reduce[lane] = s;
    workgroupBarrier();
    let next_max = max(running_max, tree_max(lane));
    workgroupBarrier();
    var e = 0.0;
    if (j < count) { e = exp(s - next_max); }
    weights[lane] = e;
    reduce[lane] = e;
    workgroupBarrier();
    let tile_sum = tree_sum(lane);
    let correction = exp(running_max - next_max);
    running_sum = running_sum * correction + tile_sum;
    acc0 *= correction;
    acc1 *= correction;
    let in_tile = min(128u, count - first);
    for (var i = 0u; i < in_tile; i++) {
      let row = tile_positions[i] * kv_size + base;
      let weight = weights[i];
      if (lane < p.head_dim) { acc0 += weight * values[row + lane]; }
      if (lane + 128u < p.head_dim) { acc1 += weight * values[row + lane + 128u]; }
    }
    running_max = next_max;
    workgroupBarrier();
  }
  let at = t * p.heads * p.head_dim + h * p.head_dim;
  if (lane < p.head_dim) { out[at + lane] = acc0 / running_sum; }
  if (lane + 128u < p.head_dim) { out[at + lane + 128u] = acc1 / running_sum; }
}
`;
