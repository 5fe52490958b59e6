// Causal attention of a pass's tokens (prefill): token t of the pass (position start + t) over
// positions [0, start + t] of the cache, for one query head:
//   s_j = scale * q . K[j],  out = sum_j softmax(s)_j V[j]
// A workgroup takes 64 consecutive tokens of one query head, one lane per token, and walks
// the positions in tiles staged in workgroup memory (keys and values of `tile` positions), so
// each K/V row is read once per 64 tokens instead of once per token. Each lane keeps its q and
// its running max, sum and output in registers; a tile's scores are exponentiated against the
// tile's max once (the online softmax). Generated per head_dim (<= 128).
import { ATTEND_FIELDS } from './attention';
import { groupIndex, paramsStruct } from './common';

export const PREFILL_TOKENS = 64;
/** Positions per tile: keys and values of a tile take 16 KiB. */
export const prefillTile = (headDim: number) => Math.min(64, Math.floor(2048 / headDim));

export const prefillAttentionWgsl = (headDim: number) => {
  const tile = prefillTile(headDim);
  return `
${paramsStruct(ATTEND_FIELDS)}
const HD: u32 = ${headDim}u;
const TILE: u32 = ${tile}u;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> keys: array<f32>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
var<workgroup> k_tile: array<f32, ${tile * headDim}>;
var<workgroup> v_tile: array<f32, ${tile * headDim}>;
${groupIndex}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let blocks = (p.tokens + 63u) / 64u;
  let index = group_index(wid, groups);
  if (index >= blocks * p.heads) { return; }
  let h = index % p.heads;
  let first_token = (index / p.heads) * 64u;
  let base = (h / (p.heads / p.kv_heads)) * HD;
  let kv_size = p.kv_heads * HD;
  let width = (p.heads + 2u * p.kv_heads) * HD;
  let scale = bitcast<f32>(p.scale);
  let t = first_token + lane;
  let in_pass = t < p.tokens;
  let position = p.start + t;
  // The block's last visible position: the tiles walk up to it.
  let last = p.start + min(first_token + 64u, p.tokens) - 1u;
  var q: array<f32, ${headDim}>;
  var acc: array<f32, ${headDim}>;
  if (in_pass) {
    for (var d = 0u; d < HD; d++) { q[d] = qkv[t * width + h * HD + d]; }
  }
  var running_max = -3.0e38;
  var running_sum = 0.0;
  for (var first = 0u; first <= last; first += TILE) {
    for (var i = lane; i < TILE * HD; i += 64u) {
      let at = first + i / HD;
      var k = 0.0;
      var v = 0.0;
      if (at <= last) {
        k = keys[at * kv_size + base + i % HD];
        v = values[at * kv_size + base + i % HD];
      }
      k_tile[i] = k;
      v_tile[i] = v;
    }
    workgroupBarrier();
    if (in_pass && position >= first) {
      let visible = min(TILE, position + 1u - first);
      var s: array<f32, ${tile}>;
      var tile_max = -3.0e38;
      for (var j = 0u; j < visible; j++) {
        var dot = 0.0;
        for (var d = 0u; d < HD; d++) { dot += q[d] * k_tile[j * HD + d]; }
        s[j] = dot * scale;
        tile_max = max(tile_max, s[j]);
      }
      let next_max = max(running_max, tile_max);
      let correction = exp(running_max - next_max);
      running_sum *= correction;
      for (var d = 0u; d < HD; d++) { acc[d] *= correction; }
      for (var j = 0u; j < visible; j++) {
        let e = exp(s[j] - next_max);
        running_sum += e;
        for (var d = 0u; d < HD; d++) { acc[d] += e * v_tile[j * HD + d]; }
      }
      running_max = next_max;
    }
    workgroupBarrier();
  }
  if (in_pass) {
    for (var d = 0u; d < HD; d++) { out[t * p.heads * HD + h * HD + d] = acc[d] / running_sum; }
  }
}
`;
};
